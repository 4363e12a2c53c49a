/**
 * The stack's limit for the device read, as a process of its own: Fastify (no logger) and one
 * route, `GET /devices/:id`, doing `SELECT * FROM devices WHERE id = $1` on a pg pool of the
 * service's default size, the row returned as JSON. No auth, validation, schema serialiser,
 * security headers, rate limit or logging: what is left is Fastify, pg and the database.
 *
 *   DATABASE_URL=postgres://… node --import tsx bench/bare-route.ts [port]   (or PORT=…)
 *
 * `bench/read.ts` starts it beside the service. It prints one line, `listening on <url>`, once it
 * listens, and exits on SIGTERM or SIGINT after closing the pool (so `--cpu-prof` writes its profile).
 */
import Fastify from 'fastify'
import pg from 'pg'
import { loadConfig } from '../src/config.js'

const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const port = Number(process.argv[2] ?? process.env.PORT ?? 0)
// The service's pool size: DB_POOL_MAX, or its default when unset, read the way the service reads it.
const { DB_POOL_MAX: poolMax } = loadConfig({ DATABASE_URL: url, DB_POOL_MAX: process.env.DB_POOL_MAX })

const pool = new pg.Pool({ connectionString: url, max: poolMax })
pool.on('error', () => {}) // an idle connection dropped: the pool replaces it

const app = Fastify({ logger: false })
app.get('/devices/:id', async (request, reply) => {
  const { rows } = await pool.query('SELECT * FROM devices WHERE id = $1', [(request.params as { id: string }).id])
  return rows[0] ?? reply.code(404).send()
})

await app.listen({ port, host: '127.0.0.1' })
const address = app.server.address()
process.stdout.write(`listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : port} (pool of ${poolMax})\n`)

let stopping = false
const stop = () => {
  if (stopping) return
  stopping = true
  void app
    .close()
    .then(() => pool.end())
    .finally(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
