/**
 * Makes the database available as `app.database` (driver, ping, close) and `app.db` (Drizzle).
 * The app owns the database it is given: closing the app closes the pool, after in-flight
 * requests have finished.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Database, Db } from '../db/client.js'

declare module 'fastify' {
  interface FastifyInstance {
    database: Database
    db: Db
  }
}

export default fp(
  async function databasePlugin(app: FastifyInstance, options: { database: Database }) {
    app.decorate<Database>('database', options.database)
    app.decorate('db', options.database.db)
    app.addHook('onClose', async () => {
      await options.database.close()
    })
  },
  { name: 'database' },
)
