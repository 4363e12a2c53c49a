/**
 * Applies the drizzle-kit migrations in `drizzle/`, idempotently.
 *
 * On PostgreSQL the run holds a session advisory lock, so several instances starting at once
 * apply each migration exactly once: the first migrates, the others wait and then find nothing
 * to do. PGlite is single-process, so it needs no lock.
 *
 * `migrateDatabase` is what the service and `npm run migrate` call: with `DATABASE_MIGRATION_URL`
 * the migrations run as that role (the owner) and the runtime role (DATABASE_URL's) is then
 * granted only what it needs (roles.ts); without it, as now, one role does both.
 */
import { fileURLToPath } from 'node:url'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { connectPostgres, type Database } from './client.js'
import { upgradeAuditTrail } from '../modules/audit/upgrade.js'
import { grantRuntimeRole } from './roles.js'

export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url))

/** Any constant shared by every instance; only this service takes it. */
const MIGRATION_LOCK_KEY = 727_274_101

/**
 * `folder` is for tests that stop at an earlier migration; the service always runs them all, and
 * then the data upgrades that need the service's own code (the audit trail's hashing), once each.
 */
export async function runMigrations(database: Database, folder = migrationsFolder): Promise<void> {
  await applyMigrations(database, folder)
  if (folder === migrationsFolder) await upgradeAuditTrail(database.db)
}

async function applyMigrations(database: Database, folder: string): Promise<void> {
  if (database.driver === 'pglite') {
    await migratePglite(drizzlePglite(database.client), { migrationsFolder: folder })
    // PGlite learns the array types (our enums' arrays among them) when it opens; types that the
    // migrations just created must be learnt again, or enum[] parameters are sent malformed.
    await database.client.refreshArrayTypes()
    return
  }
  // A dedicated connection: an advisory lock belongs to the session that took it.
  const client = await database.pool.connect()
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    try {
      await migratePg(drizzlePg(client), { migrationsFolder: folder })
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
    }
  } finally {
    client.release()
  }
}

/** What migrateDatabase reads of the configuration. */
export interface MigrationConfig {
  DATABASE_MIGRATION_URL?: string | undefined
  DB_CONNECT_TIMEOUT_MS: number
  DB_STATEMENT_TIMEOUT_MS: number
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: number
}

/**
 * Migrates the database the service runs on (`database`, DATABASE_URL's role): as the owner on a
 * small pool of its own when DATABASE_MIGRATION_URL is set, then grants the runtime role what the
 * service needs; otherwise on `database` itself.
 */
export async function migrateDatabase(config: MigrationConfig, database: Database): Promise<void> {
  if (!config.DATABASE_MIGRATION_URL) return runMigrations(database)
  if (database.driver !== 'postgres') throw new Error('DATABASE_MIGRATION_URL needs DATABASE_URL (PostgreSQL), not the embedded database')
  // Asked first: a runtime role that cannot connect, or another database, fails before anything changes.
  const [runtime] = await database.query<{ role: string; database: string }>('SELECT current_user AS role, current_database() AS database')
  // Two connections: the migrations hold one for their lock, and what runs after them may need another.
  const owner = connectPostgres({
    url: config.DATABASE_MIGRATION_URL,
    poolMax: 2,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
  })
  try {
    const [target] = await owner.query<{ database: string }>('SELECT current_database() AS database')
    if (target!.database !== runtime!.database) {
      throw new Error(
        `DATABASE_MIGRATION_URL names database ${JSON.stringify(target!.database)} and DATABASE_URL ${JSON.stringify(runtime!.database)}: they must name the same one`,
      )
    }
    await runMigrations(owner)
    await grantRuntimeRole(owner.db, runtime!.role)
  } finally {
    await owner.close()
  }
}
