/**
 * The heavy routes' database (src/db/client.ts): on PostgreSQL a pool of its own, of
 * DB_HEAVY_POOL_MAX, with the main pool's limits, closed with it; on PGlite the one embedded
 * database. Test databases have the same shape.
 */
import t from 'tap'
import { configWith } from '../../src/config.js'
import { openDatabase } from '../../src/db/client.js'
import { createMigratedPostgresDatabase, createTestDatabase, driverUnderTest } from '../helpers/database.js'

const skip = driverUnderTest === 'postgres' ? false : 'needs PostgreSQL: PGlite has no pools'

t.test('PostgreSQL: the heavy pool is its own, sized by DB_HEAVY_POOL_MAX, with the same limits, closed with the main one', { skip }, async (t) => {
  const { url } = await createMigratedPostgresDatabase(t)
  const config = configWith({ DATABASE_URL: url, DB_POOL_MAX: '3', DB_HEAVY_POOL_MAX: '4', DB_CONNECT_TIMEOUT_MS: '1234', DB_STATEMENT_TIMEOUT_MS: '4321' })
  const database = await openDatabase(config)
  t.teardown(() => database.close())
  if (database.driver !== 'postgres') throw new Error('expected PostgreSQL')
  const { heavy } = database
  t.not(heavy, database, 'a database of its own')
  t.not(heavy.pool, database.pool, 'on a pool of its own')
  t.equal(heavy.heavy, heavy, "the heavy database's heavy database is itself")
  t.equal(database.pool.options.max, 3)
  t.equal(heavy.pool.options.max, 4, 'DB_HEAVY_POOL_MAX')
  t.equal(heavy.pool.options.connectionTimeoutMillis, 1234, 'the same connect timeout')

  const settings = "SELECT current_setting('statement_timeout') AS statement, current_setting('application_name') AS name"
  const [main] = await database.query<{ statement: string; name: string }>(settings)
  const [own] = await heavy.query<{ statement: string; name: string }>(settings)
  t.equal(own!.statement, main!.statement, 'the same statement timeout')
  t.equal(own!.statement, '4321ms')
  t.not(own!.name, main!.name, 'told apart in pg_stat_activity')
  t.match(own!.name, /heavy/)
  t.ok(heavy.pool.listenerCount('error') > 0 && heavy.pool.listenerCount('connect') > 0, 'the same guards against dropped connections')

  await database.close()
  t.ok(database.pool.ended, 'closing the database ends its pool')
  t.ok(heavy.pool.ended, 'and the heavy pool')
})

t.test('the test databases have the same shape as the service', async (t) => {
  const database = await createTestDatabase(t)
  if (database.driver === 'postgres') {
    t.not(database.heavy.pool, database.pool, 'PostgreSQL: a heavy pool of its own')
    t.equal(database.heavy.pool.options.max, configWith().DB_HEAVY_POOL_MAX, 'of the default size')
  } else {
    t.equal(database.heavy, database, 'PGlite: one embedded connection, so the heavy routes share it')
  }
  t.same(await database.heavy.query('SELECT 1 AS one'), [{ one: 1 }])
})
