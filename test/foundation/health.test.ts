import t from 'tap'
import { connectPostgres } from '../../src/db/client.js'
import { buildTestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'

t.test('healthz and readyz answer 200 without a token', async (t) => {
  const { app } = await buildTestApp(t)
  for (const url of ['/healthz', '/readyz']) {
    const response = await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 200, url)
    t.same(response.json(), { status: 'ok' })
  }
})

t.test('readyz is 503 while the database does not answer; healthz stays 200', async (t) => {
  // Nothing listens on port 1: every connection attempt is refused at once.
  const unreachable = connectPostgres({
    url: 'postgres://postgres@127.0.0.1:1/none',
    poolMax: 1,
    connectTimeoutMs: 500,
    statementTimeoutMs: 1_000,
    idleInTransactionTimeoutMs: 1_000,
  })
  const { app } = await buildTestApp(t, { database: unreachable })
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  assertProblem(t, ready, 503)
  t.ok(ready.headers['retry-after'], 'Retry-After is set')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
})

t.test('every response carries its request id; a plain client id is kept, a hostile one replaced', async (t) => {
  const { app } = await buildTestApp(t)
  const kept = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } })
  t.equal(kept.headers['x-request-id'], 'abc-123')
  const replaced = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'bad id\nforged log line' } })
  t.match(String(replaced.headers['x-request-id']), /^[0-9a-f-]{36}$/)
})
