/**
 * `npm run bench:read [-- --quick] [-- --pairs N] [-- --fresh] [-- --cpu-prof] [-- --baseline DIR]`:
 * the single-device read, `GET /v1/devices/{id}`, beside the stack's limit, each in a process of
 * its own (bench/run.ts's bare route shares the harness's process; this one does not).
 *
 * - a scratch database `dlr_read_<random>` on DATABASE_URL's server (dropped at the end, also on
 *   failure or Ctrl-C), migrated, with 10,000 devices;
 * - the service as `npm start` runs it (built, then `node dist/server.js`), with bench/run.ts's
 *   environment: NODE_ENV=production, an HS256 secret, request logs at info (to /dev/null), rate
 *   limits raised to 1,000,000 a minute (the limiter still runs), load shedding at its defaults;
 * - the bare route (bench/bare-route.ts): Fastify and `SELECT * FROM devices WHERE id = $1` on a
 *   pool of the same size, nothing else;
 * - autocannon from this process, 32 connections, each request a random one of the 10,000 ids:
 *   a warm-up of each, then service, bare, service, bare, … (N pairs, default 3), printing each
 *   run's req/s, p50, p99 and the CPU time its server spent per request (from /proc), and each
 *   pair's ratio service / bare. The pairs alternate because the machine is shared: a ratio
 *   within a pair is fairer than any figure on its own.
 *
 * --quick     3-second runs after 1-second warm-ups
 * --pairs N   N service/bare pairs (at least 2)
 * --fresh     new processes (and warm-ups) for every pair. Two processes of one build can differ
 *             for their whole life by more than most changes are worth (what the JIT made of
 *             them, where they were scheduled), so comparing builds on one process each measures
 *             that as much as the builds: with --fresh each pair is its own draw.
 * --cpu-prof  run the servers under `node --cpu-prof`; the profiles (.cpuprofile, for Chrome's
 *             DevTools or speedscope) are written to a directory printed at the end, with the
 *             number of requests each process answered. The profiler costs every side some
 *             throughput.
 * --baseline DIR  also measure another build of the service, in the same rotation (service,
 *             bare, baseline, then baseline, bare, service, …), to compare a change with what came
 *             before in one sitting. DIR holds that build's `dist/` and a copy of package.json,
 *             with `node_modules` and `drizzle` linked to this checkout's (`dist/server.js`
 *             resolves both from its own directory). The service measured is always the checkout
 *             this file is in: to measure another build as the service, run a copy of bench/ there.
 * --service-env KEY=VALUE  (repeatable) an environment variable for the service (not the
 *             baseline), over bench/run.ts's: what a feature costs, e.g. LOG_LEVEL=warn with
 *             --baseline pointing at a copy of the same build.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { cpus, loadavg, tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { signToken } from '../src/auth/authenticator.js'
import { loadConfig } from '../src/config.js'
import { connectPostgres } from '../src/db/client.js'
import { runMigrations } from '../src/db/migrate.js'
import { BENCH_SERVER_URL, freePort, runProcess, serviceEnv, urlOn } from './processes.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const argv = process.argv.slice(2)
const QUICK = argv.includes('--quick')
const PROFILE = argv.includes('--cpu-prof')
const FRESH = argv.includes('--fresh')
const pairsAt = argv.indexOf('--pairs')
const PAIRS = pairsAt >= 0 ? Number(argv[pairsAt + 1]) : 3
if (!Number.isInteger(PAIRS) || PAIRS < 2) throw new Error('--pairs must be an integer of at least 2')
const baselineAt = argv.indexOf('--baseline')
const BASELINE = baselineAt >= 0 ? path.resolve(argv[baselineAt + 1] ?? '') : undefined
const SERVICE_OVERRIDES = Object.fromEntries(
  argv.flatMap((arg, i) => {
    if (arg !== '--service-env') return []
    const [key, ...value] = (argv[i + 1] ?? '').split('=')
    if (!key || value.length === 0) throw new Error('--service-env takes KEY=VALUE')
    return [[key, value.join('=')]]
  }),
)
const SECONDS = QUICK ? 3 : 10
const WARM_UP_SECONDS = QUICK ? 1 : 3
const CONNECTIONS = 32
const DEVICES = 10_000
const SECRET = randomBytes(32).toString('hex')
const SERVER_URL = BENCH_SERVER_URL
/** The service as bench/run.ts runs it. */
const SERVICE_ENV = serviceEnv(SECRET)
const CLOCK_TICKS_PER_SECOND = 100 // USER_HZ on Linux, the unit of /proc/<pid>/stat's CPU times

const out = (line = '') => process.stdout.write(`${line}\n`)

// autocannon ships no types; the part of its API used here.
interface AutocannonRequest {
  path: string
  [key: string]: unknown
}
interface AutocannonOptions {
  url: string
  connections: number
  duration: number
  headers?: Record<string, string>
  requests: { setupRequest: (request: AutocannonRequest) => AutocannonRequest }[]
}
interface AutocannonResult {
  duration: number
  errors: number
  timeouts: number
  non2xx: number
  '2xx': number
  latency: { p50: number; p99: number }
  requests: { total: number }
}
type Autocannon = ((options: AutocannonOptions) => Promise<AutocannonResult> & { stop(): void }) & {
  printResult(result: AutocannonResult): string
}
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon
/** The load in progress, stopped on Ctrl-C. */
let running: { stop(): void } | undefined

interface Server {
  name: string
  base: string
  pid: number
  stop(): Promise<void>
}

/** Spawns a server and resolves once `ready` (a URL) answers 200. */
async function spawnServer(name: string, args: string[], env: Record<string, string>, port: number, ready: string, cwd = ROOT): Promise<Server> {
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    // stdout (the service's request log) goes to /dev/null, as in bench/run.ts.
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  }
  const base = `http://127.0.0.1:${port}`
  const started = performance.now()
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}): ${stderr}`)
      try {
        if ((await fetch(`${base}${ready}`)).status === 200) return { name, base, pid: child.pid!, stop }
      } catch {
        // not listening yet
      }
      if (performance.now() - started > 60_000) throw new Error(`${name} not ready in 60 s: ${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** User + system CPU seconds a process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces, inside parentheses): utime is the 14th field, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND
}

interface Run {
  label: string
  rps: number
  p50: number
  p99: number
  /** The server's CPU time per request, in µs. */
  cpuUs: number
}

/** Requests each server process answered, warm-ups included (by pid): what a profile's times are divided by. */
const served = new Map<number, { name: string; requests: number }>()

async function load(server: Server, prefix: string, ids: string[], seconds: number, headers: Record<string, string>): Promise<Run> {
  const cpuBefore = await cpuSeconds(server.pid)
  const instance = autocannon({
    url: server.base,
    connections: CONNECTIONS,
    duration: seconds,
    headers,
    requests: [
      {
        setupRequest: (request) => {
          request.path = `${prefix}${ids[Math.floor(Math.random() * ids.length)]!}`
          return request
        },
      },
    ],
  })
  running = instance
  const result = await instance
  running = undefined
  const cpu = (await cpuSeconds(server.pid)) - cpuBefore
  const failed = result.non2xx + result.errors + result.timeouts
  if (failed > 0) throw new Error(`${server.name}: ${failed} failed requests (${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts)`)
  const total = result['2xx']
  served.set(server.pid, { name: server.name, requests: (served.get(server.pid)?.requests ?? 0) + total })
  return {
    label: server.name,
    rps: total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: (cpu / total) * 1e6,
  }
}

const round = (value: number, digits = 0) => Math.round(value * 10 ** digits) / 10 ** digits
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const ratioOf = (a: number, b: number, digits = 3) => round(a / b, digits)
const describe = (run: Run) =>
  `${run.label.padEnd(7)} ${String(round(run.rps)).padStart(6)} req/s  p50 ${String(run.p50).padStart(3)} ms  p99 ${String(run.p99).padStart(3)} ms  server CPU ${String(round(run.cpuUs)).padStart(4)} µs/req`

async function main() {
  const build = await runProcess('npm', ['--prefix', ROOT, 'run', '-s', 'build'])
  if (build.code !== 0) throw new Error(`npm run build failed: ${build.output}`)
  if (BASELINE) await readFile(path.join(BASELINE, 'dist', 'server.js')).catch(() => {
    throw new Error(`--baseline ${BASELINE}: no dist/server.js there`)
  })
  out(`device read vs bare route (${QUICK ? 'quick' : 'full'}): ${DEVICES} devices, ${CONNECTIONS} connections, ${PAIRS} pairs of ${SECONDS} s after ${WARM_UP_SECONDS} s warm-ups${PROFILE ? ', every server under --cpu-prof' : ''}`)
  const loadAtStart = loadavg()[0]!
  out(`machine: ${cpus().length} CPUs, node ${process.version}, load average ${loadAtStart.toFixed(2)}`)

  const name = `dlr_read_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: SERVER_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  out(`database ${name} created on ${new URL(SERVER_URL).host}`)
  const servers: Server[] = []
  let cleaning: Promise<void> | undefined
  // Once, whoever asks first (the end of the run, a failure, Ctrl-C); everyone waits for the same drop.
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const server of servers) await server.stop().catch((error: unknown) => out(`stopping ${server.name}: ${String(error)}`))
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      out(`database ${name} dropped`)
      await admin.end()
    })())
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      out(`${signal}: cleaning up`)
      running?.stop()
      cleanup().finally(() => process.exit(130))
    })
  }

  try {
    const url = urlOn(SERVER_URL, name)
    const config = loadConfig({ ...SERVICE_ENV, DATABASE_URL: url })
    const database = connectPostgres({
      url,
      poolMax: 2,
      connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: 600_000,
      idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    })
    let ids: string[]
    try {
      await runMigrations(database)
      // The columns of bench/dataset.ts's devices, all in stock (no custodian needed).
      await database.query(
        `INSERT INTO devices (asset_tag, kind, make, model, serial_number, encrypted, mdm_enrolled, classification,
            purchased_on, cost_pence, status, created_by)
          SELECT 'BA-' || lpad(n::text, 7, '0'),
            (ARRAY['laptop','phone','tablet','desktop','removable_media','other','security_token'])[1 + n % 7]::device_kind,
            (ARRAY['Dell','Apple','Lenovo','Samsung','Yubico'])[1 + n % 5], 'Model ' || (n % 37), 'SN-' || lpad(n::text, 8, '0'),
            n % 10 <> 0, n % 7 <> 0,
            (CASE n % 10 WHEN 0 THEN 'secret' WHEN 1 THEN 'official_sensitive' ELSE 'official' END)::classification,
            DATE '2020-01-01' + (n % 1500), 50000 + n % 100000, 'in_stock', 'bench'
          FROM generate_series(1, $1::int) AS n`,
        [DEVICES],
      )
      await database.query('VACUUM ANALYZE devices')
      ids = (await database.query<{ id: string }>('SELECT id FROM devices')).map((row) => row.id)
    } finally {
      await database.close()
    }
    out(`${ids.length} devices loaded`)

    const profileDir = PROFILE ? await mkdtemp(path.join(tmpdir(), 'dlr-read-prof-')) : undefined
    const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
    const serviceEnv = (port: number) => ({ HOST: '127.0.0.1', PORT: String(port), ...SERVICE_ENV, DATABASE_URL: url, LOG_LEVEL: 'info' })
    if (Object.keys(SERVICE_OVERRIDES).length) out(`service environment, over bench/run.ts's: ${JSON.stringify(SERVICE_OVERRIDES)}`)
    if (BASELINE) out(`baseline: ${BASELINE}/dist/server.js`)
    const token = await signToken(new TextEncoder().encode(SECRET), { sub: 'bench', roles: ['security'], ttl: '2h' })
    const serviceHeaders = { authorization: `Bearer ${token}` }
    const startService = async (name: string, cwd: string, overrides: Record<string, string>) => {
      const port = await freePort()
      const server = await spawnServer(name, [...nodeFlags, 'dist/server.js'], { ...serviceEnv(port), ...overrides }, port, '/readyz', cwd)
      const check = await fetch(`${server.base}/v1/devices/${ids[0]}`, { headers: serviceHeaders })
      if (check.status !== 200) throw new Error(`${name}: GET /v1/devices/{id} answered ${check.status}: ${await check.text()}`)
      return server
    }
    const starters: [string, () => Promise<Server>][] = [
      ['service', () => startService('service', ROOT, SERVICE_OVERRIDES)],
      [
        'bare',
        async () => {
          const port = await freePort()
          return spawnServer('bare', [...nodeFlags, '--import', 'tsx', 'bench/bare-route.ts', String(port)], { DATABASE_URL: url }, port, `/devices/${ids[0]}`)
        },
      ],
      ...(BASELINE ? [['base', () => startService('base', BASELINE, {})] as [string, () => Promise<Server>]] : []),
    ]
    const run = (server: Server, seconds: number) =>
      server.name === 'bare' ? load(server, '/devices/', ids, seconds, {}) : load(server, '/v1/devices/', ids, seconds, serviceHeaders)
    /** Starts every server (stopping the ones before, with --fresh) and warms each up. */
    const startAll = async () => {
      for (const server of servers.splice(0)) await server.stop()
      for (const [, start] of starters) servers.push(await start())
      for (const server of servers) out(`warm-up: ${describe(await run(server, WARM_UP_SECONDS))}`)
      return [...servers]
    }

    let rotation = await startAll()
    const ratios: number[] = []
    const baseRatios: number[] = []
    const runs: Run[] = []
    for (let pair = 1; pair <= PAIRS; pair++) {
      if (FRESH && pair > 1) rotation = await startAll()
      const results: Partial<Record<string, Run>> = {}
      // With a baseline, every other round runs backwards (base, bare, service), so that neither
      // build always runs first, or always right after the bare route.
      for (const server of BASELINE && pair % 2 === 0 ? [...rotation].reverse() : rotation) {
        const result = await run(server, SECONDS)
        out(`pair ${pair}: ${describe(result)}`)
        runs.push(result)
        results[server.name] = result
      }
      const a = results.service!
      const b = results.bare!
      ratios.push(a.rps / b.rps)
      out(`pair ${pair}: ratio service/bare ${ratioOf(a.rps, b.rps)}  (CPU per request: service ${ratioOf(a.cpuUs, b.cpuUs, 2)}x bare)`)
      if (results.base) {
        baseRatios.push(results.base.rps / b.rps)
        out(`pair ${pair}: ratio base/bare ${ratioOf(results.base.rps, b.rps)}  (CPU per request: service ${ratioOf(a.cpuUs, results.base.cpuUs, 2)}x base)`)
      }
    }
    const of = (label: string) => runs.filter((result) => result.label === label)
    out()
    out('summary (medians over the pairs)')
    for (const [name] of starters) {
      const mine = of(name)
      out(`  ${name.padEnd(7)} ${round(median(mine.map((r) => r.rps)))} req/s, p99 ${median(mine.map((r) => r.p99))} ms, server CPU ${round(median(mine.map((r) => r.cpuUs)))} µs/req`)
    }
    out(`  ratio service/bare: median ${round(median(ratios), 3)} (pairs: ${ratios.map((r) => round(r, 3)).join(', ')})`)
    if (baseRatios.length) {
      out(`  ratio base/bare:    median ${round(median(baseRatios), 3)} (pairs: ${baseRatios.map((r) => round(r, 3)).join(', ')})`)
      const cpu = runs.filter((r) => r.label === 'service').map((r, i) => r.cpuUs / of('base')[i]!.cpuUs)
      out(`  CPU per request service/base: median ${round(median(cpu), 3)} (pairs: ${cpu.map((r) => round(r, 2)).join(', ')})`)
    }
    out(`  load average: ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end`)
    if (profileDir) {
      await cleanup()
      out(`CPU profiles, one .cpuprofile per process (file names carry the pid; the bare route's tsx loader thread writes one of its own): ${profileDir}`)
      for (const [pid, { name, requests }] of served) out(`  ${name}: pid ${pid}, ${requests} requests answered (warm-up included)`)
    }
  } finally {
    await cleanup()
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:read failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  },
)
