/**
 * Makes the database available as `app.database` (driver, ping, close) and `app.db` (Drizzle),
 * and, per request, `request.database`: the heavy routes' own pool on a route that declares
 * `config: { heavy: true }` (exports, imports, reports, audit verify, discrepancies), the main one
 * elsewhere — so that no number of heavy requests, fast or slow, takes the connections everything
 * else needs. The same flag gives those routes the heavy rate limit (plugins/protection.ts).
 *
 * The app owns the database it is given: closing the app closes the pools, after in-flight
 * requests have finished.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Database, Db } from '../db/client.js'

declare module 'fastify' {
  interface FastifyInstance {
    database: Database
    db: Db
  }
  interface FastifyRequest {
    /** The database this route runs on: the heavy pool for heavy routes, else the main one. */
    readonly database: Database
  }
  interface FastifyContextConfig {
    /** Streams, loads whole files or scans many rows: the heavy pool and the heavy rate limit. */
    heavy?: boolean
  }
}

export default fp(
  async function databasePlugin(app: FastifyInstance, options: { database: Database }) {
    const { database } = options
    app.decorate<Database>('database', database)
    app.decorate('db', database.db)
    app.decorateRequest('database', {
      getter(this: FastifyRequest) {
        return this.routeOptions.config.heavy ? database.heavy : database
      },
    })
    app.addHook('onClose', async () => {
      await database.close()
    })
  },
  { name: 'database' },
)
