/**
 * A fresh, migrated database for each test that asks for one.
 *
 * - `TEST_DATABASE_URL` set (real PostgreSQL): the migrations run once into a template database
 *   named after a hash of `drizzle/`, and each test gets `CREATE DATABASE … TEMPLATE` (a file
 *   copy, ~100 ms), dropped when the test ends.
 * - unset (embedded PGlite): the migrations run once into a PGlite whose data directory is dumped
 *   to the system temp folder; each test loads that dump into a new in-memory PGlite.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { connectPglite, connectPostgres, type Database } from '../../src/db/client.js'
import { migrationsFolder, runMigrations } from '../../src/db/migrate.js'

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

/** Connection settings for a test pool: small, with the service's own timeouts. */
export function testPoolOptions(url: string) {
  return { url, poolMax: 10, connectTimeoutMs: 5_000, statementTimeoutMs: 30_000, idleInTransactionTimeoutMs: 30_000 }
}

const TEMPLATE_LOCK_KEY = 727_274_999

/** Runs `fn` with an admin connection holding the template lock (one test process at a time). */
async function withAdminLock<T>(fn: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await admin.connect()
  try {
    await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK_KEY])
    return await fn(admin)
  } finally {
    await admin.end()
  }
}

/** Creates an empty database on the test server and drops it when the test ends. */
export async function createEmptyPostgresDatabase(t: Teardown, prefix = 'dlr_test'): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`
  await withAdminLock((admin) => admin.query(`CREATE DATABASE ${name}`))
  t.teardown(() => dropPostgresDatabase(name))
  return name
}

async function dropPostgresDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await admin.connect()
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
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

/**
 * A fresh migrated PostgreSQL database (from the template) with no pool opened on it, for tests
 * that connect their own way (through a proxy, from a child process); dropped when the test ends.
 */
export async function createMigratedPostgresDatabase(t: Teardown): Promise<{ name: string; url: string }> {
  const name = `dlr_test_${randomBytes(6).toString('hex')}`
  await withAdminLock(async (admin) => {
    const template = await ensurePostgresTemplate(admin)
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`)
  })
  t.teardown(() => dropPostgresDatabase(name))
  return { name, url: postgresUrlFor(name) }
}

async function createPostgresTestDatabase(t: Teardown): Promise<Database> {
  const name = `dlr_test_${randomBytes(6).toString('hex')}`
  await withAdminLock(async (admin) => {
    const template = await ensurePostgresTemplate(admin)
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`)
  })
  const database = connectPostgres(testPoolOptions(postgresUrlFor(name)))
  t.teardown(async () => {
    await database.close()
    await dropPostgresDatabase(name)
  })
  return database
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

async function createPgliteTestDatabase(t: Teardown): Promise<Database> {
  pgliteDump ??= migratedPgliteDump()
  const database = await connectPglite({ loadDataDir: await pgliteDump })
  t.teardown(() => database.close())
  return database
}

/** A fresh migrated database of the driver under test, closed and removed when the test ends. */
export function createTestDatabase(t: Teardown): Promise<Database> {
  return TEST_DATABASE_URL ? createPostgresTestDatabase(t) : createPgliteTestDatabase(t)
}
