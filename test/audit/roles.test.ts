/**
 * Two database roles (DATABASE_MIGRATION_URL): the migrations run as the owner, the service as a
 * runtime role that may append to the audit trail but never change, empty or unprotect it. The
 * service still does everything a working day needs as that role; the role itself is refused each
 * way of rewriting the trail by PostgreSQL's privileges, not only by the triggers.
 */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { configWith } from '../../src/config.js'
import { connectPostgres, type PostgresDatabase } from '../../src/db/client.js'
import { migrateDatabase } from '../../src/db/migrate.js'
import { grantRuntimeRole } from '../../src/db/roles.js'
import { IMPORT_COLUMNS } from '../../src/modules/devices/import/parse.js'
import { buildTestApp } from '../helpers/app.js'
import { postgresUrlFor, TEST_DATABASE_URL, testPoolOptions, withAdmin } from '../helpers/database.js'
import { createLoginRole, createTwoRoleDatabase, type TwoRoleDatabase } from '../helpers/roles.js'

if (!TEST_DATABASE_URL) {
  t.comment('skipped: two database roles need PostgreSQL (TEST_DATABASE_URL); PGlite has one role for everything')
}
const skip = TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL: PGlite has one role for everything'

interface Teardown {
  teardown(fn: () => unknown): void
}

const APPEND_ONLY = ['audit_events', 'audit_chain', 'audit_checkpoints'] as const

/** What the runtime role may do, by table; every other table of schema public: read and write. */
const EXPECTED: Record<string, string[]> = {
  audit_events: ['INSERT', 'SELECT'],
  audit_chain: ['INSERT', 'SELECT'],
  audit_checkpoints: ['INSERT', 'SELECT'],
  audit_personal_values: ['DELETE', 'INSERT', 'SELECT'],
  audit_unlinked: ['DELETE', 'INSERT', 'SELECT'],
  data_upgrades: [],
}
const READ_WRITE = ['DELETE', 'INSERT', 'SELECT', 'UPDATE']

/** A pool as the runtime role, closed when the test ends (before the database is dropped). */
function runtimePool(t: Teardown, roles: TwoRoleDatabase): PostgresDatabase {
  const database = connectPostgres(testPoolOptions(roles.runtime.url))
  t.teardown(() => database.close())
  return database
}

const configFor = (roles: TwoRoleDatabase) => configWith({ DATABASE_URL: roles.runtime.url, DATABASE_MIGRATION_URL: roles.owner.url })

/** A query as the owner, on a connection of its own. */
async function asOwner<T extends pg.QueryResultRow>(roles: TwoRoleDatabase, text: string): Promise<T[]> {
  const owner = new pg.Client({ connectionString: roles.owner.url })
  await owner.connect()
  try {
    return (await owner.query<T>(text)).rows
  } finally {
    await owner.end()
  }
}

/** The runtime role's effective privileges on every table of public and drizzle, as `schema.table` → sorted list. */
async function privilegesOf(role: string, database: string): Promise<Record<string, string[]>> {
  const client = new pg.Client({ connectionString: postgresUrlFor(database) })
  await client.connect()
  try {
    const { rows } = await client.query<{ name: string; privileges: string[] }>(
      `SELECT n.nspname || '.' || c.relname AS name,
          array(SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
                WHERE has_table_privilege($1::name, c.oid, p) ORDER BY p) AS privileges
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'drizzle') AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1`,
      [role],
    )
    return Object.fromEntries(rows.map((row) => [row.name, row.privileges]))
  } finally {
    await client.end()
  }
}

function expectedPrivileges(tables: string[]): Record<string, string[]> {
  return Object.fromEntries(
    tables.map((name) => {
      const [schema, table] = name.split('.') as [string, string]
      return [name, schema === 'drizzle' ? [] : (EXPECTED[table] ?? READ_WRITE)]
    }),
  )
}

t.test('the service works as the runtime role, which can append to the audit trail but never rewrite it', { skip }, async (t) => {
  const roles = await createTwoRoleDatabase(t)
  const runtime = runtimePool(t, roles)
  await migrateDatabase(configFor(roles), runtime)

  const tables = Object.keys(await privilegesOf(roles.runtime.role, roles.name))
  t.ok(tables.includes('public.audit_events') && tables.includes('drizzle.__drizzle_migrations'), 'migrated as the owner')
  t.same(await privilegesOf(roles.runtime.role, roles.name), expectedPrivileges(tables), 'each table: exactly what the service needs')
  const [owned] = await runtime.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid) + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
        + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) + (SELECT count(*) FROM pg_type WHERE typowner = r.oid) AS n
      FROM pg_roles r WHERE rolname = current_user`,
  )
  t.equal(Number(owned!.n), 0, 'the runtime role owns nothing')

  // A working day, as the runtime role.
  const { app, auth } = await buildTestApp(t, { database: runtime })
  const assets = await auth('asset_manager', 'asset-manager')
  const security = await auth('security', 'security-officer')
  const answered = (response: { statusCode: number; body: string }, status: number, what: string) =>
    t.equal(response.statusCode, status, what, { body: response.body })
  const post = (url: string, headers: Record<string, string>, payload?: unknown) =>
    app.inject({ method: 'POST', url, headers: { ...headers, 'idempotency-key': randomUUID() }, ...(payload === undefined ? {} : { payload: payload as object }) })

  const custodian = await post('/v1/custodians', assets, { kind: 'mp', name: 'Alex Morgan', house: 'commons', constituency: 'Bristol North West' })
  answered(custodian, 201, 'custodian created')
  const device = await post('/v1/devices', assets, {
    assetTag: 'HOC-LT-000001', kind: 'laptop', make: 'Dell', model: 'Latitude 7440', serialNumber: 'CN0001',
    encrypted: true, mdmEnrolled: true, classification: 'official',
  })
  answered(device, 201, 'device created')
  const deviceId = device.json().id as string
  const assigned = await post(`/v1/devices/${deviceId}/assignment`, assets, { custodianId: custodian.json().id })
  answered(assigned, 201, 'device assigned')

  const reportAt = new Date(Date.now() - 60 * 60 * 1000).toISOString()
  const report = (id: string) => ({
    deviceId: id, kind: 'lost', reportedAt: reportAt, location: { category: 'transit', description: 'Jubilee line' },
    circumstances: 'Left on a train.', personalDataAtRisk: true,
  })
  const incident = await post('/v1/incidents', security, report(deviceId))
  answered(incident, 201, 'incident reported')
  const incidentId = incident.json().id as string
  const note = await post(`/v1/incidents/${incidentId}/notes`, security, { text: 'The custodian called back.' })
  answered(note, 201, 'note added')
  const recovered = await post(`/v1/incidents/${incidentId}/recovery`, security, {
    recoveredAt: new Date(Date.now() - 60_000).toISOString(), condition: 'intact', notes: 'Handed in.',
  })
  answered(recovered, 200, 'device recovered')

  const cells = (tag: string, serial: string) => ({ asset_tag: tag, kind: 'phone', make: 'Apple', model: 'iPhone 15', serial_number: serial, imei: '', encrypted: 'true', mdm_enrolled: 'true', classification: 'official', purchased_on: '', cost_pence: '' })
  const csv = [IMPORT_COLUMNS.join(','), ...[cells('HOC-PH-000002', 'CN0002'), cells('HOC-PH-000003', 'CN0003')].map((row) => IMPORT_COLUMNS.map((column) => row[column]).join(','))].join('\n') + '\n'
  const imported = await post('/v1/devices/import', { ...assets, 'content-type': 'text/csv' }, csv)
  answered(imported, 201, 'CSV imported')
  t.same(imported.json(), { created: 2 }, 'two devices imported')

  const phones = (await app.inject({ method: 'GET', url: '/v1/devices?kind=phone', headers: assets })).json().items as { id: string; assetTag: string }[]
  t.equal(phones.length, 2, 'both listed')
  const second = await post('/v1/incidents', security, report(phones[0]!.id))
  answered(second, 201, 'second incident reported')
  const closed = await post(`/v1/incidents/${second.json().id}/close`, security, { reason: 'Written off' })
  answered(closed, 200, 'incident closed')

  const stocktake = await post('/v1/stocktakes', assets, { name: 'Count' })
  answered(stocktake, 201, 'stocktake opened')
  const scans = await post(`/v1/stocktakes/${stocktake.json().id}/scans`, assets, { scans: [{ assetTag: phones[1]!.assetTag, seenAt: new Date(Date.now() - 60_000).toISOString() }] })
  answered(scans, 200, 'scan recorded')
  const counted = await post(`/v1/stocktakes/${stocktake.json().id}/close`, assets)
  answered(counted, 200, 'stocktake closed')

  const year = new Date().getUTCFullYear()
  const foi = await app.inject({ method: 'GET', url: `/v1/exports/foi/lost-stolen?year=${year}`, headers: await auth('foi_officer') })
  t.equal(foi.statusCode, 200, 'the FOI export (PostgreSQL COPY) runs as the runtime role')

  const events = await app.inject({ method: 'GET', url: '/v1/audit-events?limit=200', headers: security })
  answered(events, 200, 'audit events listed')
  const actions = new Set((events.json().items as { action: string }[]).map((event) => event.action))
  for (const action of ['custodian.created', 'device.created', 'incident.reported', 'incident.note_added', 'incident.recovered', 'incident.closed', 'stocktake.created', 'stocktake.closed']) {
    t.ok(actions.has(action), `${action} is in the trail`)
  }
  const verified = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: security })
  answered(verified, 200, 'audit trail verified')
  t.match(verified.json(), { ok: true, firstBadId: null }, 'the chain is intact')
  t.ok(verified.json().checked >= actions.size, 'every event checked')

  // Now the runtime role itself, on a connection of its own.
  const client = new pg.Client({ connectionString: roles.runtime.url })
  await client.connect()
  t.teardown(() => client.end())
  const refused = async (statement: string) =>
    t.rejects(client.query(statement), { code: '42501', message: /permission denied|must be owner/ }, statement)
  for (const table of APPEND_ONLY) {
    const [trigger] = (
      await client.query<{ name: string }>(
        `SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY tgname`,
        [table],
      )
    ).rows
    t.ok(trigger, `${table} has its append-only triggers`)
    await refused(`UPDATE ${table} SET ${{ audit_events: 'actor = actor', audit_chain: 'hash = hash', audit_checkpoints: 'signature = signature' }[table]}`)
    await refused(`DELETE FROM ${table}`)
    await refused(`TRUNCATE ${table}`)
    await refused(`ALTER TABLE ${table} DISABLE TRIGGER ALL`)
    await refused(`DROP TRIGGER ${trigger!.name} ON ${table}`)
  }
  await refused('UPDATE audit_personal_values SET value = value')
  await refused('TRUNCATE audit_personal_values')
  await refused('ALTER TABLE audit_personal_values DISABLE TRIGGER ALL')
  await refused('SELECT * FROM data_upgrades')
  await refused('CREATE TABLE public.mine (id int)')
  await refused('SELECT * FROM drizzle.__drizzle_migrations')
  // What erasure and the linker need stays allowed.
  await client.query('DELETE FROM audit_personal_values WHERE false')
  await client.query('DELETE FROM audit_unlinked WHERE false')

  const [kept] = await asOwner<{ n: number }>(roles, 'SELECT count(*)::int AS n FROM audit_events')
  t.equal(kept!.n, verified.json().checked, 'nothing was removed from the trail')
})

t.test('migrating twice changes nothing; two instances migrating at once both succeed', { skip }, async (t) => {
  const roles = await createTwoRoleDatabase(t)
  const first = runtimePool(t, roles)
  const second = runtimePool(t, roles)
  await Promise.all([migrateDatabase(configFor(roles), first), migrateDatabase(configFor(roles), second)])
  const privileges = await privilegesOf(roles.runtime.role, roles.name)
  t.same(privileges, expectedPrivileges(Object.keys(privileges)), 'both ran; the runtime role holds what it should')
  const count = async () =>
    (await asOwner<{ n: number; distinct: number }>(roles, 'SELECT count(*)::int AS n, count(DISTINCT hash)::int AS distinct FROM drizzle.__drizzle_migrations'))[0]!
  const applied = await count()
  t.equal(applied.n, applied.distinct, 'no migration applied twice')

  await migrateDatabase(configFor(roles), first)
  t.same(await count(), applied, 'the second run applies nothing')
  t.same(await privilegesOf(roles.runtime.role, roles.name), privileges, 'and grants the same')

  // A privilege granted by hand does not outlive the next run.
  await asOwner(roles, `GRANT UPDATE, TRUNCATE ON audit_events TO ${roles.runtime.role}`)
  await migrateDatabase(configFor(roles), first)
  t.same(await privilegesOf(roles.runtime.role, roles.name), privileges, 'a hand-made grant is revoked again')

  const { app } = await buildTestApp(t, { database: first })
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'the service is ready as the runtime role')
})

t.test('a runtime role that could rewrite the trail is refused, naming why', { skip }, async (t) => {
  const roles = await createTwoRoleDatabase(t)
  const runtime = runtimePool(t, roles)
  await migrateDatabase(configFor(roles), runtime)
  const owner = connectPostgres(testPoolOptions(roles.owner.url))
  t.teardown(() => owner.close())

  await grantRuntimeRole(owner.db, roles.owner.role)
  t.pass('the owner as its own runtime role: one role for both, nothing granted')

  const admin = await withAdmin(async (client) => (await client.query<{ name: string; super: boolean }>('SELECT current_user AS name, rolsuper AS super FROM pg_roles WHERE rolname = current_user')).rows[0]!)
  if (admin.super) await t.rejects(grantRuntimeRole(owner.db, admin.name), /is a superuser/, 'a superuser')
  await t.rejects(grantRuntimeRole(owner.db, `nobody_${randomUUID().slice(0, 8)}`), /does not exist/, 'a role that does not exist')

  const member = await createLoginRole(t, 'dlr_member')
  await withAdmin((client) => client.query(`GRANT ${roles.owner.role} TO ${member.role}`))
  await t.rejects(grantRuntimeRole(owner.db, member.role), /member of the owner of/, 'a member of the owner')

  const creator = await createLoginRole(t, 'dlr_creator')
  await withAdmin((client) => client.query(`ALTER ROLE ${creator.role} CREATEROLE`))
  await t.rejects(grantRuntimeRole(owner.db, creator.role), /CREATEROLE/, 'a role that may create roles')

  // Another database than the owner's URL names.
  const elsewhere = await createTwoRoleDatabase(t)
  const stray = runtimePool(t, elsewhere)
  await t.rejects(
    migrateDatabase(configWith({ DATABASE_URL: elsewhere.runtime.url, DATABASE_MIGRATION_URL: roles.owner.url }), stray),
    /must name the same one/,
    'DATABASE_URL and DATABASE_MIGRATION_URL on different databases',
  )
})
