/**
 * A fresh, migrated database for each test that asks for one.
 *
 * - `TEST_DATABASE_URL` set (real PostgreSQL): the migrations run once into a template database
 *   named after a hash of `drizzle/`, and each test gets `CREATE DATABASE … TEMPLATE` (a file
 *   copy, ~100 ms), dropped when the test ends.
 * - unset (embedded PGlite): the migrations run once into a PGlite whose data directory is dumped
 *   to the system temp folder; each test loads that dump into a new in-memory PGlite.
 *
 * Every test database (empty or migrated, with or without a pool) is made by newPostgresDatabase
 * or createTestDatabase below.
 */
import { createHash, randomBytes } from 'node:crypto'
import { cp, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { connectPglite, connectPostgres, type Database, type PostgresOptions } from '../../src/db/client.js'
import { migrationsFolder, runMigrations } from '../../src/db/migrate.js'
import { TEMPLATE_LOCK } from './locks.js'

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined
export const driverUnderTest: Database['driver'] = TEST_DATABASE_URL ? 'postgres' : 'pglite'

interface Teardown {
  teardown(fn: () => unknown): void
}

async function migrationsHash(): Promise<string> {
  const hash = createHash('sha256')
  const files = (await readdir(migrationsFolder, { recursive: true })).sort()
  for (const file of files) {
    if (!file.endsWith('.sql') && !file.endsWith('_journal.json')) continue
    hash.update(file).update(await readFile(path.join(migrationsFolder, file)))
  }
  return hash.digest('hex').slice(0, 12)
}

export function postgresUrlFor(database: string): string {
  const url = new URL(TEST_DATABASE_URL!)
  url.pathname = `/${database}`
  return url.toString()
}

/** Connection settings for a test pool: small, with the service's own timeouts, and a heavy pool beside it as the service has. */
export function testPoolOptions(url: string): PostgresOptions {
  return { url, poolMax: 10, heavyPoolMax: 2, connectTimeoutMs: 5_000, statementTimeoutMs: 30_000, idleInTransactionTimeoutMs: 30_000 }
}

/**
 * Runs `fn` on an admin connection to the test server, holding the template lock if asked (so one
 * test process at a time creates databases and builds the template).
 */
export async function withAdmin<T>(fn: (admin: pg.Client) => Promise<T>, { lock = false } = {}): Promise<T> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await admin.connect()
  try {
    if (lock) await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK])
    return await fn(admin)
  } finally {
    await admin.end()
  }
}

async function ensurePostgresTemplate(admin: pg.Client): Promise<string> {
  const template = `dlr_template_${await migrationsHash()}`
  const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template])
  if (exists.rowCount) return template
  // Templates of older migration sets are useless now.
  const stale = await admin.query("SELECT datname FROM pg_database WHERE datname LIKE 'dlr\\_template\\_%'")
  for (const row of stale.rows as { datname: string }[]) {
    await admin.query(`DROP DATABASE IF EXISTS ${row.datname} WITH (FORCE)`)
  }
  const building = `${template}_building`
  await admin.query(`DROP DATABASE IF EXISTS ${building} WITH (FORCE)`)
  await admin.query(`CREATE DATABASE ${building}`)
  const database = connectPostgres(testPoolOptions(postgresUrlFor(building)))
  try {
    await runMigrations(database)
  } finally {
    await database.close()
  }
  // Renamed only once complete, so a crash mid-migration never leaves a half-built template.
  await admin.query(`ALTER DATABASE ${building} RENAME TO ${template}`)
  return template
}

/** Every test database on the server comes from here: empty, or a copy of the migrated template; dropped when the test ends. */
async function newPostgresDatabase(t: Teardown, migrated: boolean): Promise<{ name: string; url: string }> {
  const name = `dlr_test_${randomBytes(6).toString('hex')}`
  await withAdmin(
    async (admin) => admin.query(`CREATE DATABASE ${name}${migrated ? ` TEMPLATE ${await ensurePostgresTemplate(admin)}` : ''}`),
    { lock: true },
  )
  t.teardown(() => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
  return { name, url: postgresUrlFor(name) }
}

/** An empty database on the test server (no migrations, no pool), for tests that migrate it themselves. */
export async function createEmptyPostgresDatabase(t: Teardown): Promise<string> {
  return (await newPostgresDatabase(t, false)).name
}

/**
 * A fresh migrated PostgreSQL database (from the template) with no pool opened on it, for tests
 * that connect their own way (through a proxy, from a child process).
 */
export function createMigratedPostgresDatabase(t: Teardown): Promise<{ name: string; url: string }> {
  return newPostgresDatabase(t, true)
}

let pgliteDump: Promise<Blob> | undefined

async function migratedPgliteDump(): Promise<Blob> {
  const file = path.join(tmpdir(), `dlr-pglite-${await migrationsHash()}.tar.gz`)
  try {
    return new Blob([await readFile(file)])
  } catch {
    // Not cached yet: build it below.
  }
  const database = await connectPglite({})
  await runMigrations(database)
  const dump = await database.client.dumpDataDir('gzip')
  await database.close()
  const partial = `${file}.${process.pid}.partial`
  await writeFile(partial, Buffer.from(await dump.arrayBuffer()))
  await rename(partial, file)
  return dump
}

/**
 * A fresh database of the driver under test (or of `driver`), migrated unless `migrated: false`,
 * closed and removed when the test ends: the factory every test's database comes from. `pool`
 * changes the PostgreSQL pools' settings (sizes, timeouts); PGlite has none.
 */
export async function createTestDatabase(
  t: Teardown,
  {
    driver = driverUnderTest,
    migrated = true,
    pool = {},
  }: { driver?: Database['driver']; migrated?: boolean; pool?: Partial<Omit<PostgresOptions, 'url'>> } = {},
): Promise<Database> {
  const database =
    driver === 'postgres'
      ? connectPostgres({ ...testPoolOptions((await newPostgresDatabase(t, migrated)).url), ...pool })
      : await connectPglite(migrated ? { loadDataDir: await (pgliteDump ??= migratedPgliteDump()) } : {})
  // tap runs teardowns last-added first: the pool is closed before its database is dropped.
  t.teardown(() => database.close())
  return database
}

/**
 * A fresh database of the driver under test with the migrations before `tag` applied (`'0002'`:
 * 0000 and 0001), to show that a later migration keeps what an earlier schema held. Run
 * `runMigrations(database)` for the rest.
 */
export async function createDatabaseMigratedBefore(t: Teardown, tag: string): Promise<Database> {
  // A copy of drizzle/ with a shorter journal.
  const folder = await mkdtemp(path.join(tmpdir(), 'dlr-migrations-'))
  t.teardown(() => rm(folder, { recursive: true, force: true }))
  await cp(migrationsFolder, folder, { recursive: true })
  const journalFile = path.join(folder, 'meta', '_journal.json')
  const journal = JSON.parse(await readFile(journalFile, 'utf8')) as { entries: { tag: string }[] }
  journal.entries = journal.entries.filter((entry) => entry.tag < tag)
  await writeFile(journalFile, JSON.stringify(journal))
  const database = await createTestDatabase(t, { migrated: false })
  await runMigrations(database, folder)
  return database
}
