/**
 * Graceful drain: the real server (a child process, as `npm start` runs it) gets SIGTERM while
 * 20 creates are in flight. Every one of them must finish with its normal 201, a new connection
 * must be refused (or get 503), and the process must exit 0 within SHUTDOWN_GRACE_MS.
 *
 * The creates are held in flight for about a second by an admin connection closing the audit gate
 * (test/helpers/audit-gate.ts). PostgreSQL only: the gate needs a second connection to the same
 * database, which embedded PGlite cannot take.
 */
import { request as httpRequest } from 'node:http'
import pg from 'pg'
import t from 'tap'
import { signToken } from '../../src/auth/authenticator.js'
import { TEST_JWT_SECRET } from '../helpers/app.js'
import { closeAuditGate, installAuditGate, openAuditGate } from '../helpers/audit-gate.js'
import { createMigratedPostgresDatabase, TEST_DATABASE_URL } from '../helpers/database.js'
import { startServer } from '../helpers/server-process.js'

const skip = TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL: holding a lock needs a second connection to the database'
if (skip) t.comment(`drain: skipped (${skip})`)

const GRACE_MS = 15_000
const IN_FLIGHT = 20
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A request on a connection of its own (no keep-alive pool): what a new client would see. */
function freshRequest(url: string): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const request = httpRequest(`${url}/healthz`, { agent: false }, (response) => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode ?? 0 }))
    })
    request.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }))
    request.end()
  })
}

t.test('SIGTERM under load: requests in flight finish, new ones are refused, exit 0', { skip }, async (t) => {
  const { name, url: databaseUrl } = await createMigratedPostgresDatabase(t)
  const server = await startServer({
    DATABASE_URL: databaseUrl,
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    SHUTDOWN_GRACE_MS: String(GRACE_MS),
    LOG_LEVEL: 'warn',
  })
  t.teardown(() => server.stop('SIGKILL'))
  const admin = new pg.Client({ connectionString: databaseUrl })
  admin.on('error', () => {})
  await admin.connect()
  t.teardown(() => admin.end().catch(() => {}))
  await installAuditGate(admin)

  const token = await signToken(new TextEncoder().encode(TEST_JWT_SECRET), { sub: 'drain', roles: ['security'], ttl: '5m' })
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  const create = async (name: string) => {
    const response = await fetch(`${server.url}/v1/custodians`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ kind: 'staff', name }),
    })
    return { status: response.status, body: await response.text() }
  }
  t.equal((await create('Before the drain')).status, 201, 'served before the drain')

  await closeAuditGate(admin)
  const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) => create(`In flight ${i}`))
  // At least one waits in the database; the others are in the pool's queue or about to be.
  for (let i = 0; ; i++) {
    const { rows } = await admin.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
      [name],
    )
    if (rows[0]!.n >= 1) break
    if (i > 500) throw new Error('no request ever reached the lock')
    await sleep(10)
  }
  await sleep(200)

  const signalledAt = performance.now()
  const exited = server.stop('SIGTERM')
  await sleep(200)
  const fresh = await freshRequest(server.url)
  t.ok(
    'error' in fresh ? fresh.error === 'ECONNREFUSED' || fresh.error === 'ECONNRESET' : fresh.status === 503,
    `a new connection during the drain is refused or gets 503 (${JSON.stringify(fresh)})`,
  )
  t.equal(server.child.exitCode, null, 'still running while requests are in flight')

  await sleep(800)
  await openAuditGate(admin)
  const responses = await Promise.all(inFlight)
  t.same(
    responses.map((r) => r.status),
    Array(IN_FLIGHT).fill(201),
    'every request in flight finished with its normal 201',
  )
  const code = await exited
  const drainMs = Math.round(performance.now() - signalledAt)
  t.equal(code, 0, 'exit code 0')
  t.comment(`drained ${IN_FLIGHT} requests and exited ${drainMs} ms after SIGTERM (grace ${GRACE_MS} ms)`)
  t.notMatch(server.output(), /killed by timeout|unexpected error/, 'no forced exit, no unexpected error')

  const { rows } = await admin.query<{ rows: number; events: number }>(`
    SELECT (SELECT count(*)::int FROM custodians) AS rows,
           (SELECT count(*)::int FROM audit_events WHERE action = 'custodian.created') AS events`)
  t.same(rows[0], { rows: IN_FLIGHT + 1, events: IN_FLIGHT + 1 }, 'every acknowledged create is stored with its audit event')
})
