/**
 * Two database roles: the owner, which runs the migrations and owns every object, and the runtime
 * role the service runs as, which gets only what the service needs (`DATABASE_MIGRATION_URL`).
 *
 * The runtime role may read and write the register's tables, but only append to the audit trail
 * (`audit_events`, `audit_chain`, `audit_checkpoints`), erase personal values and work the linker's
 * queue, and nothing of the data upgrades or the migrations' own bookkeeping. Owning nothing, it
 * cannot disable or drop the triggers that keep the trail append-only: a compromised service can
 * add to the trail, not rewrite it.
 *
 * Run as the owner after every migration run, so tables a migration adds get their grants at once.
 * Idempotent: every run revokes everything and grants the same again, so a privilege granted by
 * hand, or by an older version of this file, does not outlive the next start. What is still there
 * afterwards (granted to PUBLIC, by another grantor, or through another role) is refused.
 */
import { sql } from 'drizzle-orm'
import { type Db, rowsOf, type Tx } from './client.js'

/** Any constant shared by every instance; only this service takes it (the migrations take 727_274_101). */
const GRANT_LOCK_KEY = 727_274_102

const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'] as const
type TablePrivilege = (typeof TABLE_PRIVILEGES)[number]

/** What the runtime role may do to a table of schema public, unless the table is listed below. */
const READ_WRITE: readonly TablePrivilege[] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE']

/** The tables the runtime role gets less on. UPDATE and TRUNCATE are refused by triggers as well. */
export const RESTRICTED_TABLES: Readonly<Record<string, readonly TablePrivilege[]>> = {
  audit_events: ['SELECT', 'INSERT'],
  audit_chain: ['SELECT', 'INSERT'],
  audit_checkpoints: ['SELECT', 'INSERT'],
  // Erasure deletes a custodian's or an incident's values; the event keeps their digests.
  audit_personal_values: ['SELECT', 'INSERT', 'DELETE'],
  // The linker's work queue: an event waits here until it is in the chain.
  audit_unlinked: ['SELECT', 'INSERT', 'DELETE'],
  // Run once by the owner, after the migrations.
  data_upgrades: [],
}

export const expectedTablePrivileges = (table: string): readonly TablePrivilege[] => RESTRICTED_TABLES[table] ?? READ_WRITE

/**
 * Gives `runtimeRole` exactly the privileges the service needs in the database `ownerDb` is
 * connected to, as its owner. Nothing to do when the runtime role is the owner itself (one role
 * for both: development, PGlite). Throws, naming the problem, when the runtime role could do more
 * than it is granted: a superuser, a role that may create roles, or one that owns or may act as the
 * owner of the database, its schemas or anything in them.
 */
export async function grantRuntimeRole(ownerDb: Db, runtimeRole: string): Promise<void> {
  const [current] = await rowsOf<{ owner: string }>(ownerDb, sql`SELECT current_user AS owner`)
  const owner = current!.owner
  if (runtimeRole === owner) return

  const role = sql.identifier(runtimeRole)
  await ownerDb.transaction(async (tx) => {
    // Instances that start at once would otherwise change the same ACLs side by side ("tuple
    // concurrently updated"); the lock ends with the transaction.
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${GRANT_LOCK_KEY})`)
    await refuseTooPowerful(tx, runtimeRole)

    await tx.execute(sql`GRANT USAGE ON SCHEMA public TO ${role}`)
    await tx.execute(sql`REVOKE CREATE ON SCHEMA public FROM ${role}`)
    await tx.execute(sql`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`)
    await tx.execute(sql`GRANT ${sql.raw(READ_WRITE.join(', '))} ON ALL TABLES IN SCHEMA public TO ${role}`)
    const tables = await rowsOf<{ name: string }>(tx, sql`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`)
    for (const { name } of tables) {
      const privileges = RESTRICTED_TABLES[name]
      if (!privileges) continue
      const table = sql`${sql.identifier('public')}.${sql.identifier(name)}`
      await tx.execute(sql`REVOKE ALL ON ${table} FROM ${role}`)
      if (privileges.length > 0) await tx.execute(sql`GRANT ${sql.raw(privileges.join(', '))} ON ${table} TO ${role}`)
    }
    await tx.execute(sql`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ${role}`)
    await tx.execute(sql`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role}`)

    // The migrations' own bookkeeping (drizzle.__drizzle_migrations): nothing.
    const [drizzleSchema] = await rowsOf<{ found: boolean }>(tx, sql`SELECT to_regnamespace('drizzle') IS NOT NULL AS found`)
    if (drizzleSchema?.found) {
      await tx.execute(sql`REVOKE ALL ON ALL TABLES IN SCHEMA drizzle FROM ${role}`)
      await tx.execute(sql`REVOKE ALL ON ALL SEQUENCES IN SCHEMA drizzle FROM ${role}`)
      await tx.execute(sql`REVOKE ALL ON SCHEMA drizzle FROM ${role}`)
    }

    await refuseLeftovers(tx, runtimeRole)
  })
}

async function refuseTooPowerful(tx: Tx, runtimeRole: string): Promise<void> {
  const [found] = await rowsOf<{ rolsuper: boolean; rolcreaterole: boolean }>(
    tx,
    sql`SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = ${runtimeRole}`,
  )
  const named = `the runtime role ${JSON.stringify(runtimeRole)} (DATABASE_URL's)`
  if (!found) throw new Error(`${named} does not exist`)
  if (found.rolsuper) throw new Error(`${named} is a superuser: it could rewrite the audit trail; give the service a role of its own without SUPERUSER`)
  // Before PostgreSQL 16, CREATEROLE may grant itself membership in any role but a superuser: the owner's included.
  if (found.rolcreaterole) throw new Error(`${named} has CREATEROLE: it could make itself a member of the owner; give the service a role without it`)

  const owned = await rowsOf<{ object: string }>(
    tx,
    sql`WITH runtime AS (SELECT ${runtimeRole}::name AS name)
      SELECT 'role ' || quote_ident(current_user) AS object FROM runtime WHERE pg_has_role(runtime.name, current_user, 'MEMBER')
      UNION ALL
      SELECT 'database ' || quote_ident(datname) FROM pg_database, runtime
        WHERE datname = current_database() AND pg_has_role(runtime.name, datdba, 'MEMBER')
      UNION ALL
      SELECT 'schema ' || quote_ident(nspname) FROM pg_namespace, runtime
        WHERE nspname IN ('public', 'drizzle') AND pg_has_role(runtime.name, nspowner, 'MEMBER')
      UNION ALL
      SELECT 'relation ' || c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, runtime
        WHERE n.nspname IN ('public', 'drizzle') AND pg_has_role(runtime.name, c.relowner, 'MEMBER')
      UNION ALL
      SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, runtime
        WHERE n.nspname = 'public' AND pg_has_role(runtime.name, p.proowner, 'MEMBER')
      UNION ALL
      SELECT 'type ' || t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace, runtime
        WHERE n.nspname = 'public' AND t.typrelid = 0 AND t.typelem = 0 AND pg_has_role(runtime.name, t.typowner, 'MEMBER')`,
  )
  if (owned.length > 0) {
    const list = owned.slice(0, 5).map((row) => row.object).join(', ')
    throw new Error(
      `${named} owns, or is a member of the owner of, ${list}${owned.length > 5 ? ` and ${owned.length - 5} more` : ''}: ` +
        'it could disable or drop the audit triggers; it must own nothing (ALTER … OWNER TO the owner, REVOKE the membership)',
    )
  }
}

/** After the grants: anything more than expected came from elsewhere (PUBLIC, another grantor, another role). */
async function refuseLeftovers(tx: Tx, runtimeRole: string): Promise<void> {
  const held = await rowsOf<{ name: string; privilege: TablePrivilege }>(
    tx,
    sql`SELECT c.relname AS name, p.privilege
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
        unnest(${sql.raw(`ARRAY[${TABLE_PRIVILEGES.map((p) => `'${p}'`).join(', ')}]`)}) AS p(privilege)
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        AND has_table_privilege(${runtimeRole}::name, c.oid, p.privilege)`,
  )
  const extra = held.filter((row) => !expectedTablePrivileges(row.name).includes(row.privilege)).map((row) => `${row.privilege} on ${row.name}`)
  const [migrations] = await rowsOf<{ readable: boolean }>(
    tx,
    sql`SELECT CASE WHEN to_regclass('drizzle.__drizzle_migrations') IS NULL THEN false
      ELSE has_table_privilege(${runtimeRole}::name, 'drizzle.__drizzle_migrations', 'SELECT') END AS readable`,
  )
  if (migrations?.readable) extra.push('SELECT on drizzle.__drizzle_migrations')
  const [schema] = await rowsOf<{ create: boolean }>(tx, sql`SELECT has_schema_privilege(${runtimeRole}::name, 'public', 'CREATE') AS create`)
  if (schema?.create) extra.push('CREATE on schema public (PostgreSQL 14 and earlier grant it to PUBLIC: REVOKE CREATE ON SCHEMA public FROM PUBLIC)')
  if (extra.length > 0) {
    throw new Error(
      `the runtime role ${JSON.stringify(runtimeRole)} still holds ${extra.join(', ')} after the grants: ` +
        'granted to PUBLIC, by another role, or through a role it belongs to; revoke it there',
    )
  }
}
