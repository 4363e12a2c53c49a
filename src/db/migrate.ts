/**
 * Applies the drizzle-kit migrations in `drizzle/`, idempotently.
 *
 * On PostgreSQL the run holds a session advisory lock, so several instances starting at once
 * apply each migration exactly once: the first migrates, the others wait and then find nothing
 * to do. PGlite is single-process, so it needs no lock.
 */
import { fileURLToPath } from 'node:url'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import type { Database } from './client.js'

export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url))

/** Any constant shared by every instance; only this service takes it. */
const MIGRATION_LOCK_KEY = 727_274_101

/** `folder` is for tests that stop at an earlier migration; the service always runs them all. */
export async function runMigrations(database: Database, folder = migrationsFolder): Promise<void> {
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
