/**
 * The export streams: memory stays flat however many rows, and a client that goes away mid-way
 * releases the cursor. 200,000 rows on PostgreSQL (TEST_DATABASE_URL); 5,000 on PGlite, where the
 * memory bound is not asserted (the embedded database's own WebAssembly heap grows and never shrinks).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { driverUnderTest } from '../helpers/database.js'
import { waitUntil } from '../helpers/wait.js'
import { bulkInsertIncidents } from './helpers.js'

const ROWS = driverUnderTest === 'postgres' ? 200_000 : 5_000
const MB = 1024 * 1024

/** A full garbage collection on demand, without needing node --expose-gc on the command line. */
function collector(): () => void {
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}

async function serve(t: Parameters<typeof buildTestApp>[0]) {
  const built = await buildTestApp(t)
  await built.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = built.app.server.address() as AddressInfo
  return { ...built, port }
}

t.test(`a ${ROWS}-row export streams in flat memory`, async (t) => {
  const { database, auth, port } = await serve(t)
  await bulkInsertIncidents(database, ROWS)
  const { authorization } = await auth('foi_officer')

  // Without collections V8 lets garbage pile up (the rows are garbage the moment they are sent), so
  // "peak RSS" would measure the collector's laziness, not what the export keeps. Collect every
  // 250 ms and take the peak after each collection: that is what the export holds on to.
  const gc = collector()
  gc()
  const before = process.memoryUsage()
  let peakRss = before.rss
  let peakHeap = before.heapUsed
  const sampler = setInterval(() => {
    gc()
    const now = process.memoryUsage()
    peakRss = Math.max(peakRss, now.rss)
    peakHeap = Math.max(peakHeap, now.heapUsed)
  }, 250)
  const started = Date.now()
  const { bytes, lines, status, first, last } = await new Promise<{ bytes: number; lines: number; status: number; first: string; last: string }>(
    (resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', path: '/v1/exports/foi/lost-stolen?year=2023', headers: { authorization } }, (response) => {
          let bytes = 0
          let lines = 0
          let first = ''
          let tail = ''
          response.on('data', (chunk: Buffer) => {
            bytes += chunk.length
            const text = chunk.toString('latin1')
            if (first.length < 300) first += text.slice(0, 300)
            for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines++
            tail = (tail + text).slice(-200)
          })
          response.on('end', () => resolve({ bytes, lines, status: response.statusCode ?? 0, first, last: tail.trimEnd().split('\r\n').at(-1)! }))
          response.on('error', reject)
        })
        .on('error', reject)
    },
  )
  clearInterval(sampler)
  const elapsed = Date.now() - started
  t.equal(status, 200)
  t.equal(lines, ROWS + 1, 'header and every row')
  t.match(first, /^reference,date_reported,[^\n]*\r\nINC-2023-000001,2023-01-01,laptop,stolen,transit,yes,no,requested,no,,closed\r\n/)
  t.equal(last, `INC-2023-${String(ROWS).padStart(6, '0')},${ROWS === 200_000 ? '2023-12-14' : '2023-01-09'},laptop,lost,transit,yes,no,requested,no,,closed`)
  const rssGrowth = (peakRss - before.rss) / MB
  const heapGrowth = (peakHeap - before.heapUsed) / MB
  t.comment(`${ROWS} rows, ${(bytes / MB).toFixed(1)} MB of CSV in ${elapsed} ms on ${driverUnderTest}`)
  t.comment(`after each collection: peak RSS growth ${rssGrowth.toFixed(1)} MB, peak heap growth ${heapGrowth.toFixed(1)} MB`)
  if (driverUnderTest === 'postgres') {
    t.ok(rssGrowth < 50, `RSS grew ${rssGrowth.toFixed(1)} MB (< 50 MB) for ${(bytes / MB).toFixed(1)} MB of output`)
  }
})

t.test('a client that goes away mid-export releases the cursor and its transaction', async (t) => {
  const { database, auth, port, app } = await serve(t)
  await bulkInsertIncidents(database, 5_000)
  const { authorization } = await auth('foi_officer')
  await new Promise<void>((resolve, reject) => {
    const request = http.get({ port, host: '127.0.0.1', path: '/v1/exports/foi/lost-stolen?year=2023', headers: { authorization } }, (response) => {
      response.once('data', () => {
        request.destroy()
        resolve()
      })
    })
    request.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve() : reject(error)))
  })
  // PGlite has one connection: a transaction left open would block the next query forever (test timeout).
  const openTransactions = async () =>
    driverUnderTest === 'postgres'
      ? (await database.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`,
        ))[0]!.n
      : 0
  await waitUntil('the export to give its connection back', async () => (await openTransactions()) === 0, { intervalMs: 100 })
  t.equal(await openTransactions(), 0, 'no transaction left open')
  const again = await app.inject({ method: 'GET', url: '/v1/exports/foi/lost-stolen?from=2023-01-01&to=2023-01-02', headers: { authorization } })
  t.equal(again.statusCode, 200, 'the next export works')
  t.equal(again.body.split('\r\n').length - 2, 575, 'a day of rows at 150 s intervals (from 00:02:30)')
})
