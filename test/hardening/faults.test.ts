/**
 * The database failing under the service: cut connections, terminated backends, lock waits past
 * the statement timeout, a database that stops answering. Each must give 503 problem+json with
 * Retry-After (never a 500, never a crash, never a half-written create), and the service must
 * recover by itself once the database is back.
 *
 * A TCP proxy (test/helpers/tcp-proxy.ts) sits between the app's pool and PostgreSQL so the
 * "database" can go away without disturbing the shared server. An admin connection straight to
 * the test database holds locks (to keep a request waiting, in flight) and terminates backends.
 * PostgreSQL only: PGlite runs in-process and has no connection to cut.
 */
import pg from 'pg'
import t, { type Test } from 'tap'
import { connectPostgres, type PostgresOptions } from '../../src/db/client.js'
import { buildTestApp } from '../helpers/app.js'
import { createMigratedPostgresDatabase, TEST_DATABASE_URL, testPoolOptions } from '../helpers/database.js'
import { closeAuditGate, installAuditGate, openAuditGate } from '../helpers/audit-gate.js'
import { assertProblem } from '../helpers/problem.js'
import { startTcpProxy } from '../helpers/tcp-proxy.js'
import { onClient, waitForLockWaiters, waitUntil } from '../helpers/wait.js'

const skip = TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL: PGlite has no connection to cut'
if (skip) t.comment(`faults: skipped (${skip})`)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function setup(t: Test, pool: Partial<PostgresOptions> = {}) {
  const { name, url } = await createMigratedPostgresDatabase(t)
  const target = new URL(url)
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432))
  t.teardown(() => proxy.close())
  const database = connectPostgres({ ...testPoolOptions(proxy.urlFor(url)), ...pool })
  const test = await buildTestApp(t, { database })
  const admin = new pg.Client({ connectionString: url })
  // The database is dropped WITH (FORCE) at teardown, which may cut this connection first.
  admin.on('error', () => {})
  await admin.connect()
  t.teardown(() => admin.end().catch(() => {}))
  await installAuditGate(admin)
  const headers = await test.auth('security')
  // async: inject() is lazy until awaited, and a request in flight must start right away.
  const create = async (name: string) =>
    test.app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name } })
  return { ...test, name, proxy, admin, headers, create }
}

type Setup = Awaited<ReturnType<typeof setup>>

/** Holds an exclusive lock on custodians, so creates (and reads) wait: requests in flight. */
async function lockCustodians(admin: pg.Client) {
  await admin.query('BEGIN')
  await admin.query('LOCK TABLE custodians IN ACCESS EXCLUSIVE MODE')
}

/**
 * Terminates the app's backends: all of them, or only those waiting on a lock (the requests in
 * flight). An idle pooled connection terminated too may be handed to the next request before its
 * client has read the termination, and that request gets a 503: a test of "the next request
 * succeeds" terminates only the one it hit.
 */
async function terminateAppBackends(admin: pg.Client, database: string, which: 'all' | 'waiting' = 'all'): Promise<number> {
  await admin.query('SELECT pg_stat_clear_snapshot()')
  const { rowCount } = await admin.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
       ${which === 'waiting' ? "AND wait_event_type = 'Lock'" : ''}`,
    [database],
  )
  return rowCount ?? 0
}

/** Every custodian row has its custodian.created event and every such event its row. */
async function assertNoHalfWrites(t: Test, { admin }: Setup) {
  const { rows } = await admin.query<{ rows: string[]; events: string[] }>(`
    SELECT (SELECT coalesce(array_agg(id::text ORDER BY id), '{}') FROM custodians) AS rows,
           (SELECT coalesce(array_agg(entity_id::text ORDER BY entity_id), '{}') FROM audit_events
             WHERE action = 'custodian.created') AS events`)
  t.same(rows[0]!.events, rows[0]!.rows, 'each custodian row has exactly its creation event, and no event lacks a row')
  return rows[0]!.rows
}

function assertUnavailable(t: Test, response: Parameters<typeof assertProblem>[1], what: string) {
  t.comment(what)
  assertProblem(t, response, 503)
  t.match(String(response.headers['retry-after']), /^\d+$/, `${what}: Retry-After in seconds`)
}

t.test('database goes down: 503 with Retry-After, readyz 503, healthz 200; back up: served again', { skip }, async (t) => {
  const setupResult = await setup(t)
  const { app, proxy, admin, name, create } = setupResult
  const before = await create('Before the outage')
  t.equal(before.statusCode, 201, 'served before the outage')

  await lockCustodians(admin)
  const inFlight = create('Caught in flight')
  await waitForLockWaiters(onClient(admin), name, 1)
  await proxy.down()
  assertUnavailable(t, await inFlight, 'the request in flight gets 503')
  await admin.query('ROLLBACK')

  assertUnavailable(t, await create('While down'), 'a new create gets 503')
  assertUnavailable(t, await app.inject({ method: 'GET', url: '/v1/custodians', headers: setupResult.headers }), 'a read gets 503')
  assertUnavailable(t, await app.inject({ method: 'GET', url: '/readyz' }), 'readyz is 503')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'healthz stays 200')

  await proxy.up()
  const after = await create('After the outage')
  t.equal(after.statusCode, 201, 'the next request after the database is back succeeds, no restart')
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'readyz is 200 again')

  const ids = await assertNoHalfWrites(t, setupResult)
  t.same(ids.sort(), [before.json().id, after.json().id].sort(), 'only the two acknowledged creates were written')
})

t.test('pg_terminate_backend mid-request: 503 for the request it hit, the next one succeeds', { skip }, async (t) => {
  const setupResult = await setup(t)
  const { app, admin, name, create } = setupResult
  t.equal((await create('Warm the pool')).statusCode, 201)

  await lockCustodians(admin)
  const inFlight = create('Terminated mid-request')
  await waitForLockWaiters(onClient(admin), name, 1)
  t.equal(await terminateAppBackends(admin, name, 'waiting'), 1, 'terminated the backend of the request in flight')
  await admin.query('ROLLBACK')
  assertUnavailable(t, await inFlight, 'the hit request gets 503')

  const next = await create('After the termination')
  t.equal(next.statusCode, 201, 'the next request succeeds')
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  const ids = await assertNoHalfWrites(t, setupResult)
  t.equal(ids.length, 2, 'the terminated create left nothing behind')
})

t.test('creates cut off at random points leave the row and its audit event, or neither', { skip }, async (t) => {
  const setupResult = await setup(t)
  const { admin, name, proxy, create } = setupResult
  const outcomes: Record<string, number> = {}
  const acknowledged: string[] = []
  t.equal((await create('Warm the pool')).statusCode, 201)
  acknowledged.push(...(await assertNoHalfWrites(t, setupResult)))
  // Round 1 cuts the proxy, round 2 terminates the backends; each just after a burst of creates
  // (10 at a time: the pool's size) was let through the audit gate (test/helpers/audit-gate.ts), so the cut lands between row
  // and audit event, during COMMIT and after it.
  for (const [round, cut] of [
    ['proxy down', () => proxy.down()],
    ['backends terminated', () => terminateAppBackends(admin, name)],
  ] as const) {
    t.comment(round)
    await closeAuditGate(admin)
    const burst = Array.from({ length: 20 }, (_, i) => create(`${round} ${i}`))
    await waitForLockWaiters(onClient(admin), name, 10)
    await openAuditGate(admin)
    await sleep(5)
    await cut()
    const responses = await Promise.all(burst)
    await proxy.up()
    for (const response of responses) {
      const key = `${round}: ${response.statusCode}`
      outcomes[key] = (outcomes[key] ?? 0) + 1
      if (response.statusCode === 201) acknowledged.push(response.json().id)
      else t.equal(response.statusCode, 503, `${round}: a create that failed failed with 503`)
    }
  }
  t.comment(`outcomes: ${JSON.stringify(outcomes)}`)
  const stored = await assertNoHalfWrites(t, setupResult)
  for (const id of acknowledged) t.ok(stored.includes(id), `acknowledged create ${id} is stored`)
  t.equal(new Set(stored).size, stored.length)
})

t.test('a statement that waits past statement_timeout is 503, not a hung request', { skip }, async (t) => {
  const setupResult = await setup(t, { statementTimeoutMs: 200 })
  const { app, admin, headers, create } = setupResult
  await lockCustodians(admin)
  try {
    const started = performance.now()
    assertUnavailable(t, await create('Waits on a lock'), 'a create blocked by a lock gets 503')
    assertUnavailable(t, await app.inject({ method: 'GET', url: '/v1/custodians', headers }), 'a read blocked by a lock gets 503')
    t.comment(`both answered after ${Math.round(performance.now() - started)} ms (statement_timeout 200 ms)`)
  } finally {
    await admin.query('ROLLBACK')
  }
  t.equal((await create('After the lock')).statusCode, 201, 'served once the lock is gone')
  t.equal((await assertNoHalfWrites(t, setupResult)).length, 1, 'the timed-out create wrote nothing')
})

t.test('a database that accepts connections but never answers: connect timeout gives 503', { skip }, async (t) => {
  const { app, proxy, create } = await setup(t, { connectTimeoutMs: 300 })
  await proxy.down() // no pooled connection survives: the next request must connect
  await proxy.up()
  proxy.stall()
  assertUnavailable(t, await create('Never connects'), 'a create gets 503 when the pool cannot connect in time')
  assertUnavailable(t, await app.inject({ method: 'GET', url: '/readyz' }), 'readyz is 503')
  await proxy.down()
  await proxy.up()
  t.equal((await create('Connected again')).statusCode, 201, 'served again once the database answers')
})

t.test('a connection lost at BEGIN does not leak its pool slot (pool of one)', { skip, timeout: 30_000 }, async (t) => {
  // Drizzle's BEGIN sits outside its try/finally; without the guard in src/db/client.ts the one
  // client would stay checked out for ever and every later request would wait for a connection.
  const { app, proxy, create } = await setup(t, { poolMax: 1, connectTimeoutMs: 1_000 })
  t.equal((await create('Warm the pool')).statusCode, 201)
  await app.auditLinker.link() // linked now, not by a run that would take the one connection mid-fault
  proxy.stall()
  const cut = create('BEGIN never answered')
  await waitUntil('BEGIN to reach the silent database', () => proxy.dropped > 0)
  await proxy.down()
  assertUnavailable(t, await cut, 'the request whose connection was cut at BEGIN gets 503')
  await proxy.up()
  t.equal((await create('After the cut')).statusCode, 201, 'the single pool slot serves again')
})

t.test('a connection that goes silent: the client-side timeout gives 503, the pool recovers', { skip, timeout: 30_000 }, async (t) => {
  // query_timeout is the statement timeout + 5 s (src/db/client.ts): the backstop for a database
  // that stops answering without closing the connection. The silent connection must be closed,
  // not handed to the next request.
  const { app, headers, proxy, create } = await setup(t, { statementTimeoutMs: 200, poolMax: 1, connectTimeoutMs: 1_000 })
  t.equal((await create('Warm the pool')).statusCode, 201)
  await app.auditLinker.link() // linked now, not by a run that would take the one connection mid-fault
  proxy.stall()
  const started = performance.now()
  assertUnavailable(t, await create('Goes silent'), 'a create on a silent connection gets 503')
  t.comment(`answered after ${Math.round(performance.now() - started)} ms`)
  await proxy.up() // forwarding again; the silent connection's lost answer never arrives
  t.equal((await create('Recovered')).statusCode, 201, 'the next request gets a working connection')
  t.equal((await app.inject({ method: 'GET', url: '/v1/custodians', headers })).statusCode, 200)
})
