/** `npm run migrate`: applies pending migrations to the configured database and exits. */
import { loadConfig } from '../config.js'
import { openDatabase } from '../db/client.js'
import { migrateDatabase } from '../db/migrate.js'

const config = loadConfig()
const database = await openDatabase(config)
try {
  await migrateDatabase(config, database)
  process.stdout.write(`migrations applied (${database.driver === 'pglite' ? `PGlite in ${config.DATA_DIR}` : 'PostgreSQL'})\n`)
} finally {
  await database.close()
}
