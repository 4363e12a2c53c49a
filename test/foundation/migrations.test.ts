import t from 'tap'
import { connectPostgres } from '../../src/db/client.js'
import { runMigrations } from '../../src/db/migrate.js'
import { buildTestApp } from '../helpers/app.js'
import { createEmptyPostgresDatabase, createTestDatabase, driverUnderTest, postgresUrlFor, testPoolOptions } from '../helpers/database.js'

t.test('migrations apply twice without error and change nothing the second time', async (t) => {
  const database = await createTestDatabase(t)
  const count = 'SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations'
  const [before] = await database.query<{ n: number }>(count)
  await runMigrations(database)
  const [after] = await database.query<{ n: number }>(count)
  t.same(after, before)
  t.ok(before!.n >= 2, 'both migrations recorded')
})

t.test('the audit trail and its chain refuse UPDATE, DELETE and TRUNCATE at the database', async (t) => {
  const database = await createTestDatabase(t)
  await database.query(
    `WITH e AS (
       INSERT INTO audit_events (at, actor, action, entity_type, entity_id)
       VALUES (now(), 'x', 'test', 'custodian', gen_random_uuid()) RETURNING id)
     INSERT INTO audit_chain (seq, event_id, prev_hash, hash) SELECT 1, id, NULL, repeat('a', 64) FROM e`,
  )
  for (const table of ['audit_events', 'audit_chain']) {
    for (const statement of [`UPDATE ${table} SET ${table === 'audit_events' ? "actor = 'y'" : "hash = repeat('b', 64)"}`, `DELETE FROM ${table}`, `TRUNCATE ${table} CASCADE`]) {
      await t.rejects(database.query(statement), { code: '42501', message: new RegExp(`^${table} is append-only`) }, statement)
    }
  }
  t.same(await database.query('SELECT actor FROM audit_events'), [{ actor: 'x' }])
  t.same(await database.query('SELECT seq::int AS seq, hash FROM audit_chain'), [{ seq: 1, hash: 'a'.repeat(64) }])
})

t.test('two instances starting at once against one empty database both come up', { skip: driverUnderTest !== 'postgres' && 'PGlite is single-process: one instance per data directory' }, async (t) => {
  const name = await createEmptyPostgresDatabase(t)
  const first = connectPostgres(testPoolOptions(postgresUrlFor(name)))
  const second = connectPostgres(testPoolOptions(postgresUrlFor(name)))
  await Promise.all([runMigrations(first), runMigrations(second)])
  const apps = await Promise.all([buildTestApp(t, { database: first }), buildTestApp(t, { database: second })])
  for (const { app } of apps) {
    const response = await app.inject({ method: 'GET', url: '/readyz' })
    t.equal(response.statusCode, 200)
  }
  const [applied] = await first.query<{ n: number }>('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations')
  t.ok(applied!.n >= 2, 'each migration recorded once')
  const duplicates = await first.query('SELECT hash FROM drizzle.__drizzle_migrations GROUP BY hash HAVING count(*) > 1')
  t.same(duplicates, [], 'no migration applied twice')
})

t.test('right after migrating a new embedded database, enum arrays can be sent as parameters', async (t) => {
  // PGlite learns array types when it opens; a register started on an empty DATA_DIR migrates
  // afterwards, and bulk inserts (import, scans) send enum[] parameters.
  const database = await createTestDatabase(t, { driver: 'pglite', migrated: false })
  await runMigrations(database)
  const rows = await database.query<{ kinds: string[] }>('SELECT $1::device_kind[] AS kinds', [['laptop', 'phone']])
  t.same(rows, [{ kinds: ['laptop', 'phone'] }])
})
