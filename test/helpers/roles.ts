/**
 * Databases with two roles, as DATABASE_MIGRATION_URL runs the service (src/db/roles.ts): an owner
 * and a runtime role of their own, made for one test on the test server and dropped after it.
 * PostgreSQL only (TEST_DATABASE_URL).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { createEmptyPostgresDatabase, postgresUrlFor, withAdmin } from './database.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface RoleLogin {
  role: string
  /** A connection URL for this role to the test database. */
  url: string
}

export interface TwoRoleDatabase {
  name: string
  owner: RoleLogin
  runtime: RoleLogin
}

/** A role that may log in and nothing else, with a random password; dropped when the test ends (after its databases). */
export async function createLoginRole(t: Teardown, prefix: string): Promise<{ role: string; password: string }> {
  const role = `${prefix}_${randomBytes(5).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  await withAdmin((admin) => admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`))
  // Registered before any database it owns or may use, so it runs after their DROP DATABASE.
  t.teardown(() => withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS ${role}`)))
  return { role, password }
}

/** `url` (of the test server) as `role`, to `database`. */
export function urlAs(role: string, password: string, database: string): string {
  const url = new URL(postgresUrlFor(database))
  url.username = role
  url.password = password
  return url.toString()
}

/**
 * An empty database owned (with its schema public) by a new owner role, and a new runtime role
 * that may only connect to it: what a DBA sets up for DATABASE_MIGRATION_URL (README, "Two roles").
 */
export async function createTwoRoleDatabase(t: Teardown): Promise<TwoRoleDatabase> {
  const owner = await createLoginRole(t, 'dlr_owner')
  const runtime = await createLoginRole(t, 'dlr_app')
  const name = await createEmptyPostgresDatabase(t)
  await withAdmin(async (admin) => {
    await admin.query(`ALTER DATABASE ${name} OWNER TO ${owner.role}`)
    await admin.query(`REVOKE ALL ON DATABASE ${name} FROM PUBLIC`)
    await admin.query(`GRANT CONNECT ON DATABASE ${name} TO ${owner.role}, ${runtime.role}`)
  })
  // Before PostgreSQL 15 schema public belonged to the bootstrap superuser, whatever the database's owner.
  const inside = new pg.Client({ connectionString: postgresUrlFor(name) })
  await inside.connect()
  try {
    await inside.query(`ALTER SCHEMA public OWNER TO ${owner.role}`)
    await inside.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC')
  } finally {
    await inside.end()
  }
  return {
    name,
    owner: { role: owner.role, url: urlAs(owner.role, owner.password, name) },
    runtime: { role: runtime.role, url: urlAs(runtime.role, runtime.password, name) },
  }
}
