/**
 * `npm run bench [-- --quick] [-- --dry-run]`: the performance benchmark of issue 9. A tool, not
 * a test: it creates its own database on DATABASE_URL's server (dropped at the end), loads a
 * generated data set (bench/dataset.ts), starts the service as `npm start` runs it (compiled, its own
 * process) on a loopback port, measures it with wrk (bench/wrk.ts) and writes bench/results.json
 * and a table on stdout.
 *
 * --quick   a tenth of the data and 3-second load runs (a run of about two minutes)
 * --dry-run everything but the load and the measurement loops: a tiny data set, each endpoint
 *           hit once, every figure's name printed; results.json is left alone. The test
 *           test/bench/bench-dry-run.test.ts runs it so that this file cannot rot.
 * --keep    leave the database behind (its URL is printed), to EXPLAIN what was slow; drop it by hand.
 *
 * Each figure is the median of three runs (one in a dry run), after a warm-up.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { drizzle } from 'drizzle-orm/node-postgres'
import Fastify from 'fastify'
import pg from 'pg'
import { type Role, signToken } from '../src/auth/authenticator.js'
import { loadConfig } from '../src/config.js'
import { connectPostgres, type Db } from '../src/db/client.js'
import { runMigrations } from '../src/db/migrate.js'
import * as schema from '../src/db/schema.js'
import { encodeCursor } from '../src/http/pagination.js'
import { type Period, resolvePeriod } from '../src/modules/reports/periods.js'
import { riskSummary } from '../src/modules/reports/risk-summary.js'
import { datasetSize, loadDataset } from './dataset.js'
import { BENCH_SERVER_URL, freePort, runProcess, serviceEnv, urlOn } from './processes.js'
import { haveWrk, okPerSecond, requestsPerSecond, runWrk, type WrkResult } from './wrk.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const args = new Set(process.argv.slice(2))
const QUICK = args.has('--quick')
const KEEP = args.has('--keep')
const DRY = args.has('--dry-run')
const SCALE = DRY ? 0.001 : QUICK ? 0.1 : 1
const RUNS = DRY ? 1 : 3
const SECONDS = QUICK ? 2 : 10
const THREADS = 2
const SECRET = randomBytes(32).toString('hex')
const SERVER_URL = BENCH_SERVER_URL
const SERVICE_ENV = serviceEnv(SECRET)

const out = (line = '') => process.stdout.write(`${line}\n`)

export interface Figure {
  name: string
  value: number | null
  unit: string
  /** The stack's own limit on this machine, where the issue asks for one. */
  reference?: number
  target: string
  met?: boolean
  note?: string
}

const figures: Figure[] = []
function figure(entry: Figure) {
  figures.push(entry)
  const value = entry.value === null ? 'dry-run' : round(entry.value)
  const reference = entry.reference === undefined ? '' : ` (reference ${round(entry.reference)})`
  out(`  ${entry.name}: ${value} ${entry.unit}${reference}`)
}

const round = (value: number) => (Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 100) / 100)
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const ms = (started: number) => performance.now() - started

/** One request; fails the run on an unexpected status, so a dry run proves each endpoint answers. */
async function call(base: string, route: string, options: { token?: string; method?: string; body?: string; type?: string; expect?: number; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token) headers.authorization = `Bearer ${options.token}`
  if (options.type) headers['content-type'] = options.type
  const started = performance.now()
  const response = await fetch(`${base}${route}`, { method: options.method ?? 'GET', headers, ...(options.body !== undefined ? { body: options.body } : {}) })
  const text = await response.text()
  const elapsed = ms(started)
  const expected = options.expect ?? 200
  if (response.status !== expected) throw new Error(`${options.method ?? 'GET'} ${route}: ${response.status} (expected ${expected}): ${text.slice(0, 500)}`)
  return { text, ms: elapsed }
}

async function main() {
  if (!DRY && !haveWrk()) throw new Error('wrk is not installed (apt-get install wrk); --dry-run works without it')
  // The spawned servers run dist/server.js, as `npm start` does: build it first (incremental, so
  // a fraction of a second when src/ has not changed), so a fresh clone and a dry run work too.
  const build = await runProcess('npm', ['--prefix', ROOT, 'run', '-s', 'build'])
  if (build.code !== 0) throw new Error(`npm run build failed: ${build.output}`)
  const mode = DRY ? 'dry run' : QUICK ? 'quick' : 'full'
  const size = datasetSize(SCALE)
  out(`device loss register benchmark (${mode}): ${size.devices} devices, ${size.custodians} custodians, ${size.incidents} incidents, ${size.stocktakes * size.scansPerStocktake} scans`)
  // Everything here shares the machine: a busy one (other test runs) skews every figure.
  const loadAtStart = loadavg()[0]!
  out(`machine: ${cpus().length} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, load average ${loadAtStart.toFixed(2)}`)

  const name = `dlr_bench_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: SERVER_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  out(`database ${name} created on ${new URL(SERVER_URL).host}`)
  const cleanups: (() => Promise<unknown>)[] = []
  let cleaned = false
  const cleanup = async () => {
    if (cleaned) return
    cleaned = true
    for (const step of cleanups.reverse()) await step().catch((error: unknown) => out(`cleanup: ${String(error)}`))
    if (KEEP) out(`database ${name} kept (--keep): ${urlOn(SERVER_URL, name)}`)
    else {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      out(`database ${name} dropped`)
    }
    await admin.end()
  }
  process.once('SIGINT', () => {
    out('interrupted: cleaning up')
    cleanup().finally(() => process.exit(130))
  })
  try {
    await measureAll(urlOn(SERVER_URL, name), size, cleanups)
  } finally {
    await cleanup()
  }

  figure({ name: 'machine: load average at start', value: loadAtStart, unit: '', target: `report (${cpus().length} CPUs)` })
  figure({ name: 'machine: load average at end', value: loadavg()[0]!, unit: '', target: `report (${cpus().length} CPUs)` })
  if (!DRY) {
    const file = path.join(ROOT, 'bench', 'results.json')
    await writeFile(file, `${JSON.stringify(figures, null, 2)}\n`)
    out(`wrote ${path.relative(ROOT, file)}`)
  }
  printTable()
}

function printTable() {
  out()
  out(DRY ? 'DRY RUN: single requests, not measurements' : 'results (median of 3 runs)')
  const rows = figures.map((f) => [
    f.name,
    f.value === null ? '-' : String(round(f.value)),
    f.unit,
    f.reference === undefined ? '' : String(round(f.reference)),
    f.target,
    f.met === undefined ? '' : f.met ? 'yes' : 'NO',
  ])
  const header = ['figure', 'value', 'unit', 'reference', 'target', 'met']
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`
  out(line(header))
  out(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const row of rows) out(line(row))
}

async function measureAll(url: string, size: ReturnType<typeof datasetSize>, cleanups: (() => Promise<unknown>)[]) {
  const config = loadConfig({ ...SERVICE_ENV, DATABASE_URL: url, LOG_LEVEL: 'info' })
  const database = connectPostgres({
    url,
    poolMax: config.DB_POOL_MAX,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: 600_000,
    idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
  })
  cleanups.push(() => database.close())
  const pool = database.pool
  await runMigrations(database)

  // ---- load
  out('loading the data set')
  const client = await pool.connect()
  const loadStarted = performance.now()
  let steps
  let foreignKeysChecked
  try {
    ;({ steps, foreignKeysChecked } = await loadDataset(client, size))
  } finally {
    client.release()
  }
  const loadMs = ms(loadStarted)
  const loadedRows = steps.reduce((sum, step) => sum + step.rows, 0)
  for (const step of steps) out(`  ${step.table}: ${step.rows} rows in ${Math.round(step.ms)} ms (${Math.round(step.rows / (step.ms / 1000))} rows/s)`)
  const analyzeStarted = performance.now()
  await pool.query('VACUUM ANALYZE')
  out(`  VACUUM ANALYZE: ${Math.round(ms(analyzeStarted))} ms`)
  figure({ name: 'load: rows/s', value: loadedRows / (loadMs / 1000), unit: 'rows/s', target: 'report', note: `${loadedRows} rows in ${Math.round(loadMs)} ms, indexes in place, foreign-key triggers ${foreignKeysChecked ? 'on' : 'off (session_replication_role = replica)'}; VACUUM ANALYZE after: ${Math.round(ms(analyzeStarted))} ms` })

  // ---- the service as `npm start` runs it (compiled, a process of its own), logging at info
  const service = await spawnServer({ DATABASE_URL: url, LOG_LEVEL: 'info' })
  cleanups.push(() => service.stop())
  const base = service.base
  const secret = new TextEncoder().encode(SECRET)
  const token = (role: Role) => signToken(secret, { sub: 'bench', roles: [role], ttl: '2h' })
  const security = await token('security')
  const foiOfficer = await token('foi_officer')

  // The stack's limit: the same query on the same pool, no auth, validation, serialiser or logging.
  const bare = Fastify({ logger: false })
  bare.get('/bare/devices/:id', async (request, reply) => {
    const { rows } = await pool.query('SELECT * FROM devices WHERE id = $1', [(request.params as { id: string }).id])
    return rows[0] ?? reply.code(404).send()
  })
  await bare.listen({ port: 0, host: '127.0.0.1' })
  cleanups.push(() => bare.close())
  const bareBase = `http://127.0.0.1:${(bare.server.address() as AddressInfo).port}`

  const work = await mkdtemp(path.join(tmpdir(), 'dlr-bench-'))
  cleanups.push(() => rm(work, { recursive: true, force: true }))
  const wrk = (base: string, script: 'get.lua' | 'post-incidents.lua', env: Record<string, string>, seconds = SECONDS, connections = 32) =>
    runWrk({ url: base, script, connections, threads: THREADS, seconds, env })
  const median3 = async (fn: (run: number) => Promise<WrkResult>) => {
    const results: WrkResult[] = []
    for (let run = 0; run < RUNS; run++) results.push(await fn(run))
    return results
  }

  // ---- 1. GET /v1/devices/{id} at 32 connections, beside the bare route
  out('1. device read')
  const sample = await pool.query<{ id: string }>(`SELECT id FROM devices ORDER BY random() LIMIT ${DRY ? 10 : 10_000}`)
  const idsFile = path.join(work, 'device-ids.txt')
  await writeFile(idsFile, sample.rows.map((row) => row.id).join('\n'))
  if (DRY) {
    await call(base, `/v1/devices/${sample.rows[0]!.id}`, { token: security })
    await call(bareBase, `/bare/devices/${sample.rows[0]!.id}`)
    figure({ name: 'device read: requests/s', value: null, unit: 'req/s', target: '>= 0.6 x bare' })
    figure({ name: 'device read: p99', value: null, unit: 'ms', target: '< 25 ms' })
    figure({ name: 'device read: ratio to bare route', value: null, unit: 'x', target: '>= 0.6' })
  } else {
    const serviceEnv = { BENCH_PREFIX: '/v1/devices/', BENCH_IDS: idsFile, BENCH_TOKEN: security }
    const bareEnv = { BENCH_PREFIX: '/bare/devices/', BENCH_IDS: idsFile, BENCH_TOKEN: '' }
    await wrk(base, 'get.lua', serviceEnv, 2)
    await wrk(bareBase, 'get.lua', bareEnv, 2)
    const service: WrkResult[] = []
    const limit: WrkResult[] = []
    for (let run = 0; run < RUNS; run++) {
      service.push(await wrk(base, 'get.lua', serviceEnv))
      limit.push(await wrk(bareBase, 'get.lua', bareEnv))
    }
    assertClean('device read', service)
    assertClean('bare read', limit)
    const rps = median(service.map(requestsPerSecond))
    const bareRps = median(limit.map(requestsPerSecond))
    const p99 = median(service.map((r) => r.p99Us / 1000))
    figure({ name: 'device read: requests/s', value: rps, unit: 'req/s', reference: bareRps, target: '>= 0.6 x bare', met: rps >= 0.6 * bareRps })
    figure({ name: 'device read: p99', value: p99, unit: 'ms', reference: median(limit.map((r) => r.p99Us / 1000)), target: '< 25 ms', met: p99 < 25 })
    figure({ name: 'device read: ratio to bare route', value: rps / bareRps, unit: 'x', target: '>= 0.6', met: rps / bareRps >= 0.6 })
  }

  // ---- 2. list, first page and a page deep in the list (a cursor 90% of the way along)
  out('2. device list')
  const [{ count: assigned } = { count: 0 }] = (await pool.query<{ count: number }>(`SELECT count(*)::int AS count FROM devices WHERE status = 'assigned'`)).rows
  const deep = await pool.query<{ id: string }>(`SELECT id FROM devices WHERE status = 'assigned' ORDER BY id OFFSET $1 LIMIT 1`, [Math.floor(assigned * 0.9)])
  const firstPath = '/v1/devices?status=assigned&limit=50'
  const deepPath = `${firstPath}&cursor=${encodeCursor([deep.rows[0]!.id])}`
  for (const [label, route] of [['first', firstPath], ['deep', deepPath]] as const) {
    const name = `device list ${label} page: p99`
    if (DRY) {
      const { text } = await call(base, route, { token: security })
      if ((JSON.parse(text) as { items: unknown[] }).items.length === 0) throw new Error(`${name}: empty page`)
      figure({ name, value: null, unit: 'ms', target: '< 30 ms' })
      continue
    }
    // At 4 connections: the target is a latency, not a queue length.
    const env = { BENCH_PREFIX: route, BENCH_IDS: '', BENCH_TOKEN: security }
    await wrk(base, 'get.lua', env, 1, 4)
    const results = await median3(() => wrk(base, 'get.lua', env, SECONDS, 4))
    assertClean(name, results)
    const p99 = median(results.map((r) => r.p99Us / 1000))
    figure({ name, value: p99, unit: 'ms', target: '< 30 ms', met: p99 < 30, note: `4 connections, ${round(median(results.map(requestsPerSecond)))} req/s` })
  }

  // ---- 3. POST /v1/incidents, one in-stock device each (security tokens left for the stocktake)
  out('3. incident create')
  const perRun = DRY ? 1 : QUICK ? 6_000 : 20_000
  const candidates = await pool.query<{ id: string }>(
    `SELECT id FROM devices WHERE status = 'in_stock' AND kind <> 'security_token' ORDER BY random() LIMIT $1`,
    [perRun * (RUNS + 1)],
  )
  const batches = Array.from({ length: RUNS + 1 }, (_, i) => candidates.rows.slice(i * perRun, (i + 1) * perRun).map((row) => row.id))
  if (DRY) {
    await call(base, '/v1/incidents', {
      token: security,
      method: 'POST',
      type: 'application/json',
      expect: 201,
      headers: { 'idempotency-key': 'bench-dry-run' },
      body: JSON.stringify({ deviceId: batches[0]![0], kind: 'lost', location: { category: 'transit' }, circumstances: 'Benchmark.', personalDataAtRisk: false }),
    })
    figure({ name: 'incident create: creates/s', value: null, unit: 'creates/s', target: '>= 1000' })
  } else {
    const runFile = async (run: number) => {
      const file = path.join(work, `create-${run}.txt`)
      await writeFile(file, batches[run]!.join('\n'))
      return { BENCH_IDS: file, BENCH_TOKEN: security, BENCH_RUN: `run${run}-${randomBytes(3).toString('hex')}` }
    }
    await wrk(base, 'post-incidents.lua', await runFile(0), 1)
    const results = await median3(async (run) => wrk(base, 'post-incidents.lua', await runFile(run + 1)))
    const rate = median(results.map(okPerSecond))
    const failed = results.reduce((sum, r) => sum + r.non2xx, 0)
    figure({ name: 'incident create: creates/s', value: rate, unit: 'creates/s', target: '>= 1000', met: rate >= 1000, note: `32 connections; ${failed} non-2xx over the runs (device ids reused when a run outpaces its batch); p99 ${round(median(results.map((r) => r.p99Us / 1000)))} ms` })
  }

  // ---- 4. risk summary, one year and ten years, beside the same SQL replayed on the pool
  out('4. risk summary')
  // The creates' audit events are still being hashed and linked for a few seconds after the last
  // one answered: reading the trail waits for that, so the summary is not timed beside it.
  await call(base, '/v1/audit-events?limit=1', { token: security })
  // The creates just added up to half as many incidents again, all open. With autovacuum on (it is
  // off on this machine's server) PostgreSQL would have analysed the table within a minute; with
  // the statistics of before, the planner read every open incident to find one year's.
  if (!DRY) await pool.query('ANALYZE')
  const today = new Date().toISOString().slice(0, 10)
  const tenYearsAgo = `${Number(today.slice(0, 4)) - 10}${today.slice(4)}`
  const lastYear = String(new Date().getUTCFullYear() - 1)
  for (const [label, query] of [
    ['1 year', { year: lastYear }],
    ['10 years', { from: tenYearsAgo, to: nextDay(today) }],
  ] as const) {
    const period = resolvePeriod(query)
    const route = `/v1/reports/risk-summary?${new URLSearchParams(query as Record<string, string>).toString()}`
    const captured = await captureRiskSql(pool, period)
    const viaService = async () => (await call(base, route, { token: security })).ms
    const direct = async () => {
      const session = await pool.connect()
      const started = performance.now()
      try {
        for (const q of captured) await session.query(q.query, q.params)
      } finally {
        session.release()
      }
      return ms(started)
    }
    await viaService()
    await direct()
    const service: number[] = []
    const sql: number[] = []
    for (let run = 0; run < RUNS; run++) {
      service.push(await viaService())
      sql.push(await direct())
    }
    const latency = median(service)
    const reference = median(sql)
    const target = label === '1 year' ? '< 150 ms, <= 1.5 x SQL' : 'report'
    figure({
      name: `risk summary ${label}: latency`,
      value: DRY ? null : latency,
      unit: 'ms',
      reference: DRY ? undefined : reference,
      target,
      met: DRY || label !== '1 year' ? undefined : latency < 150,
      note: `${captured.length} statements replayed (begin … commit) for the reference`,
    })
    figure({
      name: `risk summary ${label}: ratio to direct SQL`,
      value: DRY ? null : latency / reference,
      unit: 'x',
      target: label === '1 year' ? '<= 1.5' : 'report',
      met: DRY || label !== '1 year' ? undefined : latency / reference <= 1.5,
    })
  }

  // ---- 5. FOI export of every incident: rows/s and peak RSS, beside COPY of the raw table.
  // Served by a separate `npm start` process, so that its RSS is the service's alone (not this
  // harness's), and read by curl.
  out('5. FOI export')
  const exportQuery = { from: `${Number(today.slice(0, 4)) - 11}-01-01`, to: nextDay(today) }
  const exportRoute = `/v1/exports/foi/lost-stolen?${new URLSearchParams(exportQuery).toString()}`
  const [{ count: exportRows } = { count: 0 }] = (
    await pool.query<{ count: number }>('SELECT count(*)::int AS count FROM incidents')
  ).rows
  const exporter = await spawnServer({ DATABASE_URL: url, LOG_LEVEL: 'info' })
  cleanups.push(() => exporter.stop())
  const foiExport = async () => {
    const started = performance.now()
    const { code, output } = await runProcess('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '-H', `Authorization: Bearer ${foiOfficer}`, `${exporter.base}${exportRoute}`])
    if (code !== 0 || !output.startsWith('200 ')) throw new Error(`FOI export failed: ${output}`)
    return ms(started)
  }
  // The service's CSV is PostgreSQL's own COPY of the export's query, so the reference is COPY of
  // the raw table (every column of every incident): not the service's own statement again.
  const copySql = 'SELECT * FROM incidents'
  const copy = async () => {
    const started = performance.now()
    const { code, output } = await runProcess('psql', [url, '-X', '-q', '-o', '/dev/null', '-c', `COPY (${copySql}) TO STDOUT WITH (FORMAT csv, HEADER)`])
    if (code !== 0) throw new Error(`COPY failed: ${output}`)
    return ms(started)
  }
  // Start-up (loading the modules, migrations) has its own peak: reset the high-water mark after it.
  await call(exporter.base, '/readyz')
  const resetPeak = await writeFile(`/proc/${exporter.pid}/clear_refs`, '5').then(() => true, () => false)
  const idle = await memoryOf(exporter.pid)
  await foiExport()
  await copy()
  const exports: number[] = []
  const copies: number[] = []
  for (let run = 0; run < RUNS; run++) {
    exports.push(await foiExport())
    copies.push(await copy())
  }
  const peakMb = (await memoryOf(exporter.pid)).peakMb
  await exporter.stop()
  const exportRate = exportRows / (median(exports) / 1000)
  const copyRate = exportRows / (median(copies) / 1000)
  figure({ name: 'FOI export: rows/s', value: DRY ? null : exportRate, unit: 'rows/s', reference: DRY ? undefined : copyRate, target: '>= 0.5 x COPY', met: DRY ? undefined : exportRate >= 0.5 * copyRate, note: `${exportRows} rows as CSV, read by curl; reference: psql COPY (SELECT * FROM incidents) TO STDOUT CSV, the raw table` })
  figure({ name: 'FOI export: ratio to COPY', value: DRY ? null : exportRate / copyRate, unit: 'x', target: '>= 0.5', met: DRY ? undefined : exportRate / copyRate >= 0.5 })
  figure({
    name: 'FOI export: peak RSS',
    value: DRY ? null : peakMb,
    unit: 'MB',
    reference: DRY ? undefined : idle.rssMb,
    target: '< 200 MB',
    met: DRY ? undefined : peakMb < 200,
    note: `VmHWM of the npm start process over ${RUNS + 1} exports${resetPeak ? ', reset after start-up' : ' (could not reset: includes start-up)'}; reference: its RSS when idle before them`,
  })

  // ---- 6. CSV import
  out('6. CSV import')
  const importRows = DRY ? 10 : Math.round(100_000 * SCALE)
  const csvFile = (tag: string, rows: number) => {
    const lines = ['asset_tag,kind,make,model,serial_number,imei,encrypted,mdm_enrolled,classification,purchased_on,cost_pence']
    for (let n = 1; n <= rows; n++) lines.push(`IM${tag}-${String(n).padStart(7, '0')},laptop,Dell,Latitude 7440,IMSN-${tag}-${n},,true,true,official,2024-03-01,125000`)
    return `${lines.join('\n')}\n`
  }
  // An import blocks the event loop long enough (parsing and validating every row) for load
  // shedding to refuse the next request for a moment: such a 503 is counted, waited out and retried.
  let shed = 0
  const importOnce = async (tag: string, rows: number) => {
    const body = csvFile(tag, rows)
    for (;;) {
      const started = performance.now()
      const response = await fetch(`${base}/v1/devices/import`, { method: 'POST', headers: { authorization: `Bearer ${security}`, 'content-type': 'text/csv' }, body })
      const text = await response.text()
      const elapsed = ms(started)
      if (response.status === 503 && shed < 10) {
        shed++
        await new Promise((resolve) => setTimeout(resolve, 1000 * Number(response.headers.get('retry-after') ?? 1)))
        continue
      }
      if (response.status !== 201) throw new Error(`POST /v1/devices/import: ${response.status}: ${text.slice(0, 500)}`)
      if ((JSON.parse(text) as { created: number }).created !== rows) throw new Error(`import created ${text}`)
      return elapsed
    }
  }
  // An import's audit events are linked into the hash chain after its response (seconds of work
  // for 100,000 events). Each run starts once the one before is linked — reading the trail waits
  // for that — so a run measures its own import, not the last one's linking, which is its own figure.
  const linked = async () => (await call(base, '/v1/audit-events?limit=1', { token: security })).ms
  await importOnce('W', 100)
  await linked()
  const imports: number[] = []
  const links: number[] = []
  for (let run = 0; run < RUNS; run++) {
    imports.push(await importOnce('ABC'[run]!, importRows))
    links.push(await linked())
  }
  const importRate = importRows / (median(imports) / 1000)
  figure({ name: 'CSV import: rows/s', value: DRY ? null : importRate, unit: 'rows/s', target: '>= 20000', met: DRY ? undefined : importRate >= 20_000, note: `${importRows} rows per import, into ${size.devices} devices, each once the previous one's events were linked; ${shed} import(s) refused by load shedding (503) and retried after Retry-After` })
  figure({ name: 'CSV import: audit chain linked after it', value: DRY ? null : median(links), unit: 'ms', target: 'report', note: `${importRows} events hashed and linked after the import's response (the next read of the trail waits for it)` })

  // ---- 7. stocktake discrepancies
  out('7. stocktake discrepancies')
  const [stocktake] = (await pool.query<{ id: string }>(`SELECT id FROM stocktakes WHERE status = 'open'`)).rows
  const scope = (
    await pool.query<{ devices: number; scans: number }>(
      `SELECT (SELECT count(*) FROM devices WHERE kind = 'security_token')::int AS devices,
        (SELECT count(*) FROM stocktake_scans WHERE stocktake_id = $1)::int AS scans`,
      [stocktake!.id],
    )
  ).rows[0]!
  const discrepancies = async () => (await call(base, `/v1/stocktakes/${stocktake!.id}/discrepancies`, { token: security })).ms
  await discrepancies()
  const stocktakeTimes: number[] = []
  for (let run = 0; run < RUNS; run++) stocktakeTimes.push(await discrepancies())
  const stocktakeMs = median(stocktakeTimes)
  figure({ name: 'stocktake discrepancies: latency', value: DRY ? null : stocktakeMs, unit: 'ms', target: '< 2000 ms', met: DRY ? undefined : stocktakeMs < 2000, note: `${scope.devices} devices in scope, ${scope.scans} scans` })

  // ---- 8. start-up: `node dist/server.js` (what `npm start` runs after its build) until /readyz answers
  out('8. start-up')
  const embedded: number[] = []
  const postgres: number[] = []
  for (let run = 0; run < RUNS; run++) {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'dlr-bench-pglite-'))
    try {
      embedded.push(await startupTime({ DATA_DIR: dataDir }))
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
    postgres.push(await startupTime({ DATABASE_URL: url }))
  }
  const embeddedMs = median(embedded)
  figure({ name: 'start-up embedded: time', value: DRY ? null : embeddedMs, unit: 'ms', target: '< 10000 ms', met: DRY ? undefined : embeddedMs < 10_000, note: 'fresh DATA_DIR each run (creates and migrates the database), spawn to /readyz 200' })
  figure({ name: 'start-up PostgreSQL: time', value: DRY ? null : median(postgres), unit: 'ms', target: 'report', note: 'migrated database, spawn to /readyz 200' })

  // ---- 9. scaling out: the device read against one `npm start` instance, then two on one database
  out('9. scaling out')
  const instances = [await spawnServer({ DATABASE_URL: url, LOG_LEVEL: 'info' }), await spawnServer({ DATABASE_URL: url, LOG_LEVEL: 'info' })]
  for (const instance of instances) cleanups.push(() => instance.stop())
  const readEnv = { BENCH_PREFIX: '/v1/devices/', BENCH_IDS: idsFile, BENCH_TOKEN: security }
  if (DRY) {
    for (const instance of instances) await call(instance.base, `/v1/devices/${sample.rows[0]!.id}`, { token: security })
    figure({ name: 'scaling: one instance requests/s', value: null, unit: 'req/s', target: 'report' })
    figure({ name: 'scaling: two instances requests/s', value: null, unit: 'req/s', target: 'report' })
  } else {
    const one = (seconds: number) => runWrk({ url: instances[0]!.base, script: 'get.lua', connections: 32, threads: THREADS, seconds, env: readEnv })
    // Two wrk processes of 16 connections each, at the same time: a load balancer's round robin.
    const two = async (seconds: number) => {
      const results = await Promise.all(instances.map((instance) => runWrk({ url: instance.base, script: 'get.lua', connections: 16, threads: 1, seconds, env: readEnv })))
      return results.reduce((sum, r) => sum + requestsPerSecond(r), 0)
    }
    await one(1)
    await two(1)
    const single: number[] = []
    const pair: number[] = []
    for (let run = 0; run < RUNS; run++) {
      single.push(requestsPerSecond(await one(SECONDS)))
      pair.push(await two(SECONDS))
    }
    figure({ name: 'scaling: one instance requests/s', value: median(single), unit: 'req/s', target: 'report', note: 'npm start process, 32 connections' })
    figure({ name: 'scaling: two instances requests/s', value: median(pair), unit: 'req/s', reference: median(single), target: 'report', note: 'two npm start processes on one database, 16 connections each at once' })
  }
  for (const instance of instances) await instance.stop()
}

function assertClean(name: string, results: WrkResult[]) {
  const bad = results.reduce((sum, r) => sum + r.non2xx + r.socketErrors, 0)
  if (bad > 0) throw new Error(`${name}: ${bad} failed requests during the runs`)
}

function nextDay(date: string): string {
  const at = new Date(`${date}T00:00:00Z`)
  at.setUTCDate(at.getUTCDate() + 1)
  return at.toISOString().slice(0, 10)
}

/** The risk summary's statements as the service sends them (begin, queries with parameters, commit). */
async function captureRiskSql(pool: pg.Pool, period: Period) {
  const captured: { query: string; params: unknown[] }[] = []
  const logged = drizzle(pool, { schema, logger: { logQuery: (query, params) => captured.push({ query, params }) } })
  await riskSummary(logged as unknown as Db, period, { withCustodians: true })
  return captured
}

/** A query with its parameters written in as literals, for psql's COPY (which takes none). */
interface SpawnedServer {
  base: string
  pid: number
  /** Milliseconds from spawn to the first 200 from /readyz. */
  readyMs: number
  stop(): Promise<void>
}

/** `node dist/server.js`, the compiled service as `npm start` runs it, on a free port; resolves once /readyz answers 200. */
async function spawnServer(env: Record<string, string>): Promise<SpawnedServer> {
  const port = await freePort()
  const started = performance.now()
  const child: ChildProcess = spawn(process.execPath, ['dist/server.js'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...SERVICE_ENV, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM')
    await exited
  }
  const base = `http://127.0.0.1:${port}`
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${stderr}`)
      try {
        if ((await fetch(`${base}/readyz`)).status === 200) return { base, pid: child.pid!, readyMs: ms(started), stop }
      } catch {
        // not listening yet
      }
      if (ms(started) > 60_000) throw new Error(`server not ready in 60 s: ${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  } catch (error) {
    await stop()
    throw error
  }
}

async function startupTime(env: Record<string, string>): Promise<number> {
  const server = await spawnServer(env)
  await server.stop()
  return server.readyMs
}

/** A process's resident set and its peak (kB → MB) from /proc; the peak can be reset (clear_refs 5). */
async function memoryOf(pid: number): Promise<{ rssMb: number; peakMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  },
)
