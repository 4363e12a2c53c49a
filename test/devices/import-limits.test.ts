/**
 * The import under hostile and heavy use: a file of bad rows is answered with its first 100
 * errors and the count of all, in time that follows its size and without holding its errors in
 * memory; a file that is not UTF-8 is refused naming its line, never stored with U+FFFD.
 */
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import t from 'tap'
import { IMPORT_COLUMNS } from '../../src/modules/devices/import/parse.js'
import { buildTestApp } from '../helpers/app.js'
import { driverUnderTest } from '../helpers/database.js'
import { assertProblem } from '../helpers/problem.js'

const HEADER = IMPORT_COLUMNS.join(',')
const MiB = 1024 * 1024

/** A well-formed line of the file whose kind no device has: one error. */
const badLine = (n: number) => `PA-B${n},toaster,Dell,Latitude 7440,SN-B${n},,true,false,official,2023-04-01,99900`
const goodLine = (n: number) => `PA-G${n},laptop,Dell,Latitude 7440,SN-G${n},,true,false,official,2023-04-01,99900`

/**
 * A file of exactly `bytes` bytes: the header, then bad lines (line 2 onwards), the last padded to
 * fit. Written straight into one buffer, so that building it leaves little behind to be collected.
 */
function fileOfBadLines(bytes: number): { file: Buffer; lines: number } {
  const file = Buffer.alloc(bytes, ' ')
  let size = file.write(`${HEADER}\n`)
  let lines = 0
  for (let n = 1; ; n++) {
    const line = `${badLine(n)}\n`
    if (size + line.length > bytes) break
    size += file.write(line, size)
    lines++
  }
  // Blanks after the last cell are trimmed by the reader: the last line is the same error.
  file.write(' ', size - 1)
  file.write('\n', bytes - 1)
  return { file, lines }
}

/** Garbage collection on demand, for memory figures that mean what is kept rather than what is yet to be collected. */
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const counts = async (database: Awaited<ReturnType<typeof buildTestApp>>['database']) =>
  (await database.query<{ devices: number; events: number }>(
    'SELECT (SELECT count(*) FROM devices)::int AS devices, (SELECT count(*) FROM audit_events)::int AS events',
  ))[0]

t.test('a 64 MiB file of bad rows: the first 100 errors and the count of all, little memory, nothing written', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'content-type': 'text/csv' }
  const { file, lines } = fileOfBadLines(64 * MiB)
  t.equal(file.length, 64 * MiB, 'exactly the import\'s body limit')

  // Only what the test needs is kept of the response: the injected response holds on to the request.
  const send = async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload: file })
    return { problem: assertProblem(t, response, 422), size: response.body.length }
  }
  const live = () => process.memoryUsage().heapUsed + process.memoryUsage().external
  gc()
  const before = process.memoryUsage().rss
  const liveBefore = live()
  let peak = before
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
  const started = performance.now()
  const { problem, size } = await send()
  const seconds = (performance.now() - started) / 1000
  clearInterval(sampler)
  // A Buffer's memory goes back once its finaliser has run, after a collection: a tick, then another.
  gc()
  await new Promise((resolve) => setTimeout(resolve, 100))
  gc()
  const growth = process.memoryUsage().rss - before
  const liveGrowth = live() - liveBefore

  t.equal(problem.errors.length, 100, 'exactly 100 errors listed')
  t.same(problem.errors.map((e: { row: number }) => e.row), Array.from({ length: 100 }, (_, i) => i + 2), 'the first, in file order')
  t.match(problem.errors[0], { path: 'body.line[2].kind', row: 2, column: 'kind', message: /./ })
  t.equal(problem.errorCount, lines, 'every bad line counted')
  t.match(problem.detail, new RegExp(`^${lines} line\\(s\\) .* The first 100 of its ${lines} errors are listed\\.$`))
  t.ok(size < 64 * 1024, `a short answer (${size} bytes)`)
  t.ok(growth < 100 * MiB, `resident memory grew ${(growth / MiB).toFixed(0)} MB (under 100 MB)`)
  // What is still in use (heap and buffers) after a collection: the errors kept, not pages the allocator has yet to give back.
  t.ok(liveGrowth < 16 * MiB, `memory in use grew ${(liveGrowth / MiB).toFixed(1)} MB (under 16 MB)`)
  t.comment(`${lines} bad lines (64 MiB) in ${seconds.toFixed(1)} s (${driverUnderTest}); RSS ${(before / MiB).toFixed(0)} MB before, peak +${((peak - before) / MiB).toFixed(0)} MB, after +${(growth / MiB).toFixed(0)} MB; in use after +${(liveGrowth / MiB).toFixed(1)} MB`)
  t.same(await counts(database), { devices: 0, events: 0 }, 'nothing written')
})

t.test('a 1 MiB file of bad rows answers quickly', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'content-type': 'text/csv' }
  const { file, lines } = fileOfBadLines(MiB)
  const started = performance.now()
  const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload: file })
  const milliseconds = performance.now() - started
  t.equal(assertProblem(t, response, 422).errorCount, lines)
  t.comment(`${lines} bad lines (1 MiB) answered in ${milliseconds.toFixed(0)} ms (${driverUnderTest})`)
})

t.test('a file of two million one-cell lines (4 MiB) is counted in full, and answered quickly', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'content-type': 'text/csv' }
  const lines = 2_097_152
  const payload = Buffer.concat([Buffer.from(`${HEADER}\n`), Buffer.alloc(2 * lines, 'a\n')])
  const started = performance.now()
  const problem = assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload }), 422)
  t.comment(`${lines} one-cell lines (4 MiB) answered in ${(performance.now() - started).toFixed(0)} ms (${driverUnderTest})`)
  t.equal(problem.errorCount, lines)
  t.equal(problem.errors.length, 100)
  t.same(problem.errors[99], { path: 'body.line[101]', row: 101, column: '', message: `has 1 cells; expected ${IMPORT_COLUMNS.length}` })
  t.same(await counts(database), { devices: 0, events: 0 })
})

t.test('registered identifiers and bad lines together: the first 100 of both, in file order', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'content-type': 'text/csv' }
  const registered = Array.from({ length: 150 }, (_, i) => goodLine(i))
  t.equal((await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload: `${[HEADER, ...registered].join('\n')}\n` })).statusCode, 201)

  // Lines 2, 4, 6, …: registered already (tag and serial, two errors); lines 3, 5, 7, …: a bad kind.
  const file = `${[HEADER, ...registered.flatMap((line, i) => [line, badLine(i)])].join('\n')}\n`
  const problem = assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload: file }), 422)
  t.equal(problem.errorCount, 450, '150 lines of two errors, 150 of one')
  t.equal(problem.errors.length, 100)
  const expected = Array.from({ length: 34 }, (_, i) => [[2 * i + 2, 'asset_tag'], [2 * i + 2, 'serial_number'], [2 * i + 3, 'kind']]).flat().slice(0, 100)
  t.same(problem.errors.map((e: { row: number; column: string }) => [e.row, e.column]), expected)
  t.match(problem.errors[0].message, /already registered/)
  t.match(problem.detail, /^300 line\(s\)/)
  t.same(await counts(database), { devices: 150, events: 150 }, 'only the first import')
})

t.test('a file that is not UTF-8 is 422 naming its line, and nothing is stored', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'content-type': 'text/csv' }
  // A Windows-1252 export: "Zürich" on line 3, its ü the single byte 0xFC.
  const text = `${HEADER}\n${goodLine(1)}\n${goodLine(2).replace('Dell', 'Zürich')}\n${goodLine(3)}\n`
  const payload = Buffer.from(text, 'latin1')
  const problem = assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload }), 422)
  t.same(problem.errors, [{ path: 'body.line[3]', row: 3, column: '', message: 'is not valid UTF-8 text (save the file as UTF-8)' }])
  t.equal(problem.errorCount, 1)
  t.same(await counts(database), { devices: 0, events: 0 })

  // The same file in UTF-8 goes in, the make as written.
  t.equal((await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload: Buffer.from(text, 'utf8') })).statusCode, 201)
  t.same(await database.query("SELECT make FROM devices WHERE asset_tag = 'PA-G2'"), [{ make: 'Zürich' }])
})
