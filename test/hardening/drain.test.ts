/**
 * Graceful drain: the real server (a child process, as `npm start` runs it) gets SIGTERM while
 * 20 creates are in flight. Every one of them must finish with its normal 201, a new connection
 * must be refused (or get 503), and the process must exit 0 within SHUTDOWN_GRACE_MS.
 *
 * Nothing here waits on the clock. The creates are held in the database by an admin connection
 * closing the audit gate (test/helpers/audit-gate.ts), and SIGTERM is sent only once all 20 are
 * seen waiting there: each is then certainly in the server's hands, not still connecting (a
 * connection the server has accepted but not read a request from counts as idle, and is closed at
 * the drain's start). After SIGTERM the test waits for the server's own "stopping" log line, then
 * for a fresh connection to be turned away; the gate opens only then, so the server cannot have
 * finished early. Timeouts are only outer bounds, far past what an idle machine needs.
 *
 * PostgreSQL only: the gate needs a second connection to the same database, which embedded PGlite
 * cannot take.
 */
import { request as httpRequest } from 'node:http'
import pg from 'pg'
import t from 'tap'
import { signToken } from '../../src/auth/authenticator.js'
import { TEST_JWT_SECRET } from '../helpers/app.js'
import { closeAuditGate, installAuditGate, openAuditGate } from '../helpers/audit-gate.js'
import { createMigratedPostgresDatabase, TEST_DATABASE_URL } from '../helpers/database.js'
import { startServer } from '../helpers/server-process.js'
import { onClient, waitForLockWaiters, waitUntil } from '../helpers/wait.js'

const skip = TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL: holding a lock needs a second connection to the database'
if (skip) t.comment(`drain: skipped (${skip})`)

const GRACE_MS = 60_000
const IN_FLIGHT = 20

type Outcome = { status: number } | { error: string }

/** A request on a connection of its own (no keep-alive pool): what a new client would see. */
function freshRequest(url: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const request = httpRequest(`${url}/healthz`, { agent: false }, (response) => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode ?? 0 }))
    })
    request.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }))
    request.end()
  })
}

const turnedAway = (outcome: Outcome) =>
  'error' in outcome ? outcome.error === 'ECONNREFUSED' || outcome.error === 'ECONNRESET' : outcome.status === 503

t.test('SIGTERM under load: requests in flight finish, new ones are refused, exit 0', { skip }, async (t) => {
  const { name, url: databaseUrl } = await createMigratedPostgresDatabase(t)
  const server = await startServer({
    DATABASE_URL: databaseUrl,
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    SHUTDOWN_GRACE_MS: String(GRACE_MS),
    // A connection for every create, so each one is seen waiting in the database.
    DB_POOL_MAX: String(IN_FLIGHT + 5),
    // Load shedding is tested elsewhere; on a busy machine it would refuse the creates here.
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    PRESSURE_MAX_HEAP_MB: '0',
    // info: the "stopping" line is the server's word that the drain has begun.
    LOG_LEVEL: 'info',
  })
  t.teardown(() => server.stop('SIGKILL'))
  const admin = new pg.Client({ connectionString: databaseUrl })
  admin.on('error', () => {})
  await admin.connect()
  t.teardown(() => admin.end().catch(() => {}))
  await installAuditGate(admin)

  const token = await signToken(new TextEncoder().encode(TEST_JWT_SECRET), { sub: 'drain', roles: ['security'], ttl: '5m' })
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  const create = async (name: string): Promise<Outcome> => {
    try {
      const response = await fetch(`${server.url}/v1/custodians`, { method: 'POST', headers, body: JSON.stringify({ kind: 'staff', name }) })
      await response.text()
      return { status: response.status }
    } catch (error) {
      return { error: String((error as Error).cause ?? error) }
    }
  }
  t.same(await create('Before the drain'), { status: 201 }, 'served before the drain')

  await closeAuditGate(admin)
  const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) => create(`In flight ${i}`))
  await waitForLockWaiters(onClient(admin), name, IN_FLIGHT)

  const signalledAt = performance.now()
  const exited = server.stop('SIGTERM')
  await waitUntil('the server to log that it is stopping', () => /stopping: finishing requests in flight/.test(server.output()))
  let fresh: Outcome | undefined
  await waitUntil(
    () => `a fresh connection to be turned away after SIGTERM (last: ${JSON.stringify(fresh)})`,
    async () => turnedAway((fresh = await freshRequest(server.url))),
  )
  t.pass(`a new connection during the drain is refused or gets 503 (${JSON.stringify(fresh)})`)
  t.equal(server.child.exitCode, null, 'still running while requests are in flight')

  await openAuditGate(admin)
  t.same(await Promise.all(inFlight), Array(IN_FLIGHT).fill({ status: 201 }), 'every request in flight finished with its normal 201')
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
