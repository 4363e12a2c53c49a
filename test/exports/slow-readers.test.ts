/**
 * Slow clients of the FOI export, over a real listening server and raw sockets that read a KB at a
 * time: they hold only the heavy routes' pool, so everyone else's requests and readiness still
 * answer; a heavy request that finds that pool busy waits DB_CONNECT_TIMEOUT_MS, then gets a 503
 * with Retry-After; and an export that outlives EXPORT_MAX_SECONDS is ended however steadily its
 * client reads, its connection given back.
 */
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { connectPostgres, type Database, type PostgresOptions } from '../../src/db/client.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { createMigratedPostgresDatabase, createTestDatabase, driverUnderTest, testPoolOptions } from '../helpers/database.js'
import { insertDevice } from '../helpers/fixtures.js'
import { waitUntil } from '../helpers/wait.js'
import { bulkInsertIncidents, SlowReader } from './helpers.js'

/**
 * About 11 MB of CSV (PostgreSQL) or 10 MB of JSON (PGlite): far more than the sockets between
 * server and client hold (a loopback connection's send buffer grows to 4 MB), so a slow reader
 * keeps its export running.
 */
const ROWS = driverUnderTest === 'postgres' ? 150_000 : 40_000
const EXPORT_PATH = '/v1/exports/foi/lost-stolen?year=2023'
/** A few KB a second. */
const SLOW = { bytes: 1024, everyMs: 250 }

/** Connections of this pool checked out now (PostgreSQL). */
const inUse = (database: Database) => (database.driver === 'postgres' ? database.pool.totalCount - database.pool.idleCount : 0)

const root = t
let sharedUrl: Promise<string> | undefined

/**
 * A database holding the rows, with these pool settings. On PostgreSQL the rows are inserted once,
 * into a database every test of this file opens its own pools on (an app closes its pools, not the
 * database; it is dropped when the file ends); PGlite has no connection to share, so each test
 * fills its own.
 */
async function databaseWithRows(t: Test, pool: Partial<Omit<PostgresOptions, 'url'>> = {}): Promise<Database> {
  if (driverUnderTest !== 'postgres') {
    const database = await createTestDatabase(t)
    await bulkInsertIncidents(database, ROWS)
    return database
  }
  sharedUrl ??= (async () => {
    const { url } = await createMigratedPostgresDatabase(root)
    const filler = connectPostgres(testPoolOptions(url))
    try {
      await bulkInsertIncidents(filler, ROWS)
    } finally {
      await filler.close()
    }
    return url
  })()
  const database = connectPostgres({ ...testPoolOptions(await sharedUrl), ...pool })
  t.teardown(() => database.close())
  return database
}

async function serve(t: Test, options: Parameters<typeof buildTestApp>[1]): Promise<TestApp & { port: number }> {
  const built = await buildTestApp(t, options)
  await built.app.listen({ port: 0, host: '127.0.0.1' })
  return { ...built, port: (built.app.server.address() as AddressInfo).port }
}

function readers(t: Test, count: number, port: number, headers: Record<string, string>, path = EXPORT_PATH) {
  const list = Array.from({ length: count }, () => new SlowReader(port, path, headers, SLOW))
  // Before the app closes (teardowns run last-added first): an open export would hold its close.
  t.teardown(() => list.forEach((reader) => reader.destroy()))
  return list
}

const skip = driverUnderTest === 'postgres' ? false : 'needs PostgreSQL: PGlite has one embedded connection and no pools'

t.test('ten slow FOI readers hold only the heavy pool: others are answered, readiness stays 200, heavy routes get 503 in time', { skip }, async (t) => {
  const CONNECT_TIMEOUT_MS = 1_000
  // A main pool of 2: the two exports the heavy pool admits would have taken all of it.
  const database = await databaseWithRows(t, { poolMax: 2, heavyPoolMax: 2, connectTimeoutMs: CONNECT_TIMEOUT_MS })
  t.not(database.heavy, database, 'the heavy routes have a pool of their own')
  const { app, auth, port } = await serve(t, { database })
  const device = await insertDevice(database)
  const asset = await auth('asset_manager')
  const stocktake = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers: asset, payload: { name: 'Count' } })).json().id as string

  const slow = readers(t, 10, port, await auth('foi_officer'))
  await waitUntil('two exports to be streaming', () => slow.filter((reader) => reader.status === 200).length === 2)
  t.equal(inUse(database.heavy), 2, 'they hold the heavy pool')

  // While they read: another user's read, readiness, and every heavy route (each on the heavy pool).
  const url = (path: string) => `http://127.0.0.1:${port}${path}`
  const timed = async (path: string, init: RequestInit = {}) => {
    const started = performance.now()
    const response = await fetch(url(path), init)
    await response.arrayBuffer()
    return { status: response.status, retryAfter: response.headers.get('retry-after'), type: response.headers.get('content-type'), ms: performance.now() - started }
  }
  const security = await auth('security')
  const csv = 'asset_tag,kind,make,model,serial_number,imei,encrypted,mdm_enrolled,classification,purchased_on,cost_pence\nPA-H00001,laptop,Dell,X,SN-H00001,,true,true,official,,\n'
  const heavy = Promise.all([
    timed('/v1/reports/risk-summary?year=2023', { headers: security }),
    timed('/v1/reports/risk-summary.svg?year=2023', { headers: security }),
    timed('/v1/audit-events/verify', { headers: security }),
    timed(`/v1/stocktakes/${stocktake}/discrepancies`, { headers: asset }),
    timed(`/v1/stocktakes/${stocktake}/discrepancies/missing`, { headers: asset }),
    timed('/v1/devices/import', { method: 'POST', headers: { ...asset, 'content-type': 'text/csv' }, body: csv }),
  ])
  const light = []
  for (let i = 0; i < 3; i++) {
    light.push(await timed(`/v1/devices/${device.id}`, { headers: asset }), await timed('/readyz'))
  }
  t.equal(inUse(database.heavy), 2, 'the two exports still hold the heavy pool while the others are answered')
  for (const answer of light) {
    t.equal(answer.status, 200, 'a device read and readiness answer 200')
    t.ok(answer.ms < 1_000, `in ${Math.round(answer.ms)} ms (< 1 s)`)
  }

  for (const answer of await heavy) {
    t.equal(answer.status, 503, 'a heavy route finds the heavy pool busy: 503')
    t.equal(answer.retryAfter, '5', 'with Retry-After')
    t.match(answer.type, /^application\/problem\+json/)
    t.ok(answer.ms >= CONNECT_TIMEOUT_MS * 0.9 && answer.ms < CONNECT_TIMEOUT_MS + 4_000, `after waiting about DB_CONNECT_TIMEOUT_MS (${Math.round(answer.ms)} ms)`)
  }
  await waitUntil('the queued exports to be refused', () => slow.filter((reader) => reader.status === 503).length === 8)
  const refused = slow.filter((reader) => reader.status === 503)
  t.equal(refused.length, 8, 'the eight exports the heavy pool could not take: 503')
  t.ok(refused.every((reader) => reader.header('retry-after') === '5' && /^application\/problem\+json/.test(reader.header('content-type') ?? '')), 'problem+json with Retry-After')
  t.ok(refused.every((reader) => reader.answeredAfterMs! < CONNECT_TIMEOUT_MS + 4_000), 'each within about DB_CONNECT_TIMEOUT_MS')
  t.equal(slow.filter((reader) => reader.status === 200).length, 2, 'two exports are being read')
  t.equal(inUse(database), 0, 'the main pool holds no export')

  // Readers that go away give the connections back.
  slow.forEach((reader) => reader.destroy())
  await waitUntil('the heavy pool to be free', () => inUse(database.heavy) === 0)
  t.equal((await app.inject({ method: 'GET', url: `/v1/stocktakes/${stocktake}/discrepancies/missing`, headers: asset })).statusCode, 200, 'and heavy routes answer again')
})

// PGlite streams both as rows encoded here; the JSON is the larger of the two.
for (const accept of driverUnderTest === 'postgres' ? ['text/csv', 'application/json'] : ['application/json']) {
  t.test(`an export (${accept}) read steadily but slowly is ended at EXPORT_MAX_SECONDS, its connection given back`, async (t) => {
    // Two seconds: on a busy machine the first bytes can take most of one to arrive.
    const { database, auth, port } = await serve(t, { database: await databaseWithRows(t), config: { EXPORT_MAX_SECONDS: '2' } })
    const [reader] = readers(t, 1, port, { ...(await auth('foi_officer')), accept })
    const heavy = database.heavy
    await waitUntil('the export to start', () => reader!.status !== undefined)
    t.equal(reader!.status, 200)

    // The export holds its connection (PostgreSQL: checked out of the heavy pool; PGlite: the one
    // connection, so a query waits) until the deadline ends it.
    if (heavy.driver === 'postgres') {
      t.equal(inUse(heavy), 1, 'the export holds a heavy connection')
      await waitUntil('the export to give its connection back', () => inUse(heavy) === 0, { intervalMs: 20 })
    } else {
      await database.query('SELECT 1')
    }
    const freedAfterMs = performance.now() - reader!.startedAt
    t.ok(freedAfterMs >= 1_900, `not before the deadline (${Math.round(freedAfterMs)} ms)`)
    t.ok(freedAfterMs < 6_000, `soon after it, though the client kept reading and never stalled (${Math.round(freedAfterMs)} ms)`)
    t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }], 'the database answers')

    await reader!.drain()
    t.ok(reader!.closedAfterMs! < 10_000, 'the server ended the response')
    t.notOk(reader!.text.endsWith('\r\n0\r\n\r\n'), 'ended short: no last chunk, so the client cannot take it for complete')
    t.comment(`${accept}: ${reader!.receivedBytes} bytes received before the deadline ended it, freed after ${Math.round(freedAfterMs)} ms`)
  })
}
