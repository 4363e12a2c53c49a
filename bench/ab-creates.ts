/**
 * `npm run bench:ab -- DIR_A DIR_B [...] [--rounds N] [--scale S] [--node-arg=ARG ...]`: incident creates/s of two or
 * more builds of the service (each DIR a checkout with `npm ci && npm run build` done), measured in
 * one run on one data set, interleaved A B A B … so that the machine's drift falls on all of them
 * alike. A tool for telling a regression from noise, which separate `npm run bench` runs cannot do
 * on a shared machine. Each build migrates the data set as it starts (its own migrations).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { signToken } from '../src/auth/authenticator.js'
import { connectPostgres } from '../src/db/client.js'
import { runMigrations } from '../src/db/migrate.js'
import { datasetSize, loadDataset } from './dataset.js'
import { BENCH_SERVER_URL, freePort, serviceEnv, urlOn } from './processes.js'
import { haveWrk, okPerSecond, runWrk } from './wrk.js'

const { values, positionals: builds } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '5' },
    scale: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '10' },
    // Given to every server's node, e.g. `--node-arg=--cpu-prof` (Node refuses it in NODE_OPTIONS).
    'node-arg': { type: 'string', multiple: true, default: [] },
  },
})
const ROUNDS = Number(values.rounds)
const SECONDS = Number(values.seconds)
const PER_RUN = 13_000
const SECRET = randomBytes(32).toString('hex')
const out = (line: string) => process.stdout.write(`${line}\n`)

async function startServer(dir: string, databaseUrl: string) {
  const port = await freePort()
  const child = spawn(process.execPath, [...values['node-arg'], 'dist/server.js'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', DATABASE_URL: databaseUrl, ...serviceEnv(SECRET) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const base = `http://127.0.0.1:${port}`
  for (const started = Date.now(); ; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (child.exitCode !== null) throw new Error(`${dir}: server exited (${child.exitCode})`)
    if (Date.now() - started > 60_000) throw new Error(`${dir}: not ready in 60 s`)
    if (await fetch(`${base}/readyz`).then((r) => r.ok, () => false)) break
  }
  return {
    base,
    stop: () => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGTERM')))),
  }
}

async function main() {
  if (builds.length < 2) throw new Error('name two or more build directories')
  if (!haveWrk()) throw new Error('wrk is not installed (apt-get install wrk)')
  const name = `dlr_ab_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: BENCH_SERVER_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const url = urlOn(BENCH_SERVER_URL, name)
  const work = await mkdtemp(path.join(tmpdir(), 'dlr-ab-'))
  const database = connectPostgres({ url, poolMax: 2, connectTimeoutMs: 10_000, statementTimeoutMs: 600_000, idleInTransactionTimeoutMs: 600_000 })
  try {
    await runMigrations(database)
    const client = await database.pool.connect()
    try {
      await loadDataset(client, datasetSize(Number(values.scale)))
    } finally {
      client.release()
    }
    await database.pool.query('VACUUM ANALYZE')
    const runs = builds.length * (ROUNDS + 1)
    const { rows } = await database.pool.query<{ id: string }>(
      `SELECT id FROM devices WHERE status = 'in_stock' AND kind <> 'security_token' ORDER BY random() LIMIT $1`,
      [PER_RUN * runs],
    )
    if (rows.length < PER_RUN * runs) throw new Error(`only ${rows.length} in-stock devices for ${runs} runs of ${PER_RUN}: raise --scale`)
    const token = await signToken(new TextEncoder().encode(SECRET), { sub: 'bench', roles: ['security'], ttl: '2h' })
    const rates = new Map<string, number[]>(builds.map((dir) => [dir, []]))
    const servers = new Map<string, Awaited<ReturnType<typeof startServer>>>()
    try {
      for (const dir of builds) servers.set(dir, await startServer(dir, url))
      let run = 0
      // Round 0 warms each build up and is not counted.
      for (let round = 0; round <= ROUNDS; round++) {
        for (const dir of builds) {
          const ids = path.join(work, `run-${run}.txt`)
          await writeFile(ids, rows.slice(run * PER_RUN, (run + 1) * PER_RUN).map((row) => row.id).join('\n'))
          const result = await runWrk({
            url: servers.get(dir)!.base,
            script: 'post-incidents.lua',
            connections: 32,
            threads: 2,
            seconds: round === 0 ? 5 : SECONDS,
            env: { BENCH_IDS: ids, BENCH_TOKEN: token, BENCH_RUN: `ab-${run}` },
          })
          // The run's audit events are linked after they answered; reading the trail waits for that
          // (a 503 when it takes longer than the read's own wait), so no run pays for another's.
          for (const started = Date.now(); ; ) {
            const trail = await fetch(`${servers.get(dir)!.base}/v1/audit-events?limit=1`, { headers: { authorization: `Bearer ${token}` } })
            if (trail.ok) break
            if (Date.now() - started > 300_000) throw new Error(`the audit trail not linked in 5 minutes: ${trail.status}`)
          }
          if (round > 0) rates.get(dir)!.push(okPerSecond(result))
          out(`round ${round} ${dir}: ${Math.round(okPerSecond(result))} creates/s, ${result.non2xx} non-2xx${round === 0 ? ' (warm-up)' : ''}`)
          run++
        }
      }
    } finally {
      for (const server of servers.values()) await server.stop()
    }
    const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const first = medianOf(rates.get(builds[0]!)!)
    for (const dir of builds) {
      const median = medianOf(rates.get(dir)!)
      out(`${dir}: median ${Math.round(median)} creates/s, ratio to ${builds[0]} ${(median / first).toFixed(2)} (${rates.get(dir)!.map(Math.round).join(', ')})`)
    }
  } finally {
    await database.close()
    await rm(work, { recursive: true, force: true })
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
}

await main()
