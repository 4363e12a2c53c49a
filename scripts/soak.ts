/**
 * `npm run soak [-- --seconds 60] [-- --clients 16] [-- --restart-postgres]`: the soak test of
 * issue 8. A tool, not part of `npm test`.
 *
 * It creates a database `dlr_soak_<random>` on DATABASE_URL's server (default
 * postgres://postgres@127.0.0.1:5432/postgres; dropped at the end), starts the service in this
 * process on a loopback port, and runs N clients doing a realistic mix (custodians and devices
 * created, assigned, returned, reported lost or stolen, lists, single reads, the FOI export)
 * for the given time. Every create carries an Idempotency-Key; a 503 or a network error is
 * retried with the same key, a few times at most.
 *
 * Twice during the run (at a third and two thirds of it) the database is disrupted:
 * - with --restart-postgres, PostgreSQL itself is restarted (pg_ctlcluster): only on a machine of
 *   your own, every other user of that server is cut off too;
 * - without it, the service's connections are killed with pg_terminate_backend (safe on a shared
 *   server).
 *
 * At the end it checks, straight in the database: every acknowledged create (2xx) is stored
 * exactly once; nothing unacknowledged is half-written (a row without its creation audit event or
 * an event without its row); and GET /v1/audit-events/verify is ok. It prints the figures and
 * exits 1 if a check failed.
 */
import { execSync } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { writeSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { createAuthenticator, type Role, signToken } from '../src/auth/authenticator.js'
import { loadConfig } from '../src/config.js'
import { openDatabase } from '../src/db/client.js'
import { runMigrations } from '../src/db/migrate.js'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    clients: { type: 'string', default: '16' },
    'restart-postgres': { type: 'boolean', default: false },
  },
})
const SECONDS = Number(args.seconds)
const CLIENTS = Number(args.clients)
const RESTART_POSTGRES = args['restart-postgres'] === true
if (!(SECONDS > 0) || !(CLIENTS > 0)) throw new Error('--seconds and --clients must be positive numbers')

const SERVER_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const MAX_ATTEMPTS = 8
// Synchronous: the script ends with process.exit(), which would cut short a write to a pipe.
const say = (line: string) => writeSync(1, `${line}\n`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!

function urlOf(database: string): string {
  const url = new URL(SERVER_URL)
  url.pathname = `/${database}`
  return url.toString()
}

/** A short-lived admin connection: after a restart the old one would be dead. */
async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

// ---- figures ----
const statusCounts = new Map<string, number>()
let requests = 0
let retried = 0
let gaveUp = 0
const count = (key: string) => statusCounts.set(key, (statusCounts.get(key) ?? 0) + 1)

type Entity = 'custodian' | 'device' | 'incident'
interface CreateAttempt {
  entity: Entity
  /** A value unique to this create, found in its row: name, asset tag, or circumstances. */
  marker: string
  id?: string
}
const creates: CreateAttempt[] = []

// ---- the HTTP client: retries with the same Idempotency-Key ----
let baseUrl = ''
const tokens = {} as Record<Role, string>

interface Answer {
  status: number
  body: unknown
  attempts: number
}

/** Requests under way, so that a hung one can be named. */
const inFlight = new Map<number, { what: string; since: number }>()
let nextRequest = 0

async function call(method: string, path: string, role: Role, body?: unknown, idempotencyKey?: string): Promise<Answer> {
  const handle = nextRequest++
  try {
    return await attempts(method, path, role, body, idempotencyKey, (what) => inFlight.set(handle, { what, since: Date.now() }))
  } finally {
    inFlight.delete(handle)
  }
}

async function attempts(
  method: string,
  path: string,
  role: Role,
  body: unknown,
  idempotencyKey: string | undefined,
  track: (what: string) => void,
): Promise<Answer> {
  for (let attempt = 1; ; attempt++) {
    requests++
    track(`${method} ${path} (attempt ${attempt})`)
    try {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${tokens[role]}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
          ...(path.startsWith('/v1/exports') ? { accept: 'text/csv' } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(15_000),
      })
      const text = await response.text()
      count(String(response.status))
      // 503: the database was away (or the service shed load); 429: slow down. 409 on a retried
      // create: the first attempt's key is still held (its request died with the connection).
      const retryable =
        response.status === 503 ||
        response.status === 429 || (response.status === 409 && idempotencyKey !== undefined && attempt > 1 && /in progress/.test(text))
      if (!retryable || attempt >= MAX_ATTEMPTS) {
        if (retryable) gaveUp++
        const type = response.headers.get('content-type') ?? ''
        return { status: response.status, body: type.includes('json') ? JSON.parse(text) : text, attempts: attempt }
      }
    } catch (error) {
      count(`network ${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name}`)
      if (attempt >= MAX_ATTEMPTS) {
        gaveUp++
        return { status: 0, body: null, attempts: attempt }
      }
    }
    retried++
    await sleep(Math.min(2_000, 100 * 2 ** attempt) * (0.5 + Math.random()))
  }
}

const ok = (answer: Answer) => answer.status >= 200 && answer.status < 300

// ---- one client's life ----
interface DeviceState {
  id: string
  status: 'in_stock' | 'assigned' | 'lost' | 'stolen'
}

async function createTracked(entity: Entity, marker: string, path: string, role: Role, body: unknown): Promise<string | undefined> {
  const attempt: CreateAttempt = { entity, marker }
  creates.push(attempt)
  const answer = await call('POST', path, role, body, randomUUID())
  if (ok(answer)) attempt.id = (answer.body as { id: string }).id
  return attempt.id
}

async function client(index: number, deadline: number) {
  const custodians: string[] = []
  const devices: DeviceState[] = []
  let serial = 0
  const unique = () => `${index.toString(36)}${(++serial).toString(36)}${randomBytes(2).toString('hex')}`.toUpperCase()
  const year = new Date().getFullYear()

  while (Date.now() < deadline) {
    const roll = Math.random()
    if (roll < 0.12 || custodians.length === 0) {
      const marker = `Soak custodian ${unique()}`
      const id = await createTracked('custodian', marker, '/v1/custodians', 'asset_manager', { kind: 'staff', name: marker })
      if (id) custodians.push(id)
    } else if (roll < 0.3 || devices.length === 0) {
      const tag = `SK-${unique()}`.slice(0, 15)
      const id = await createTracked('device', tag, '/v1/devices', 'asset_manager', {
        assetTag: tag,
        kind: pick(['laptop', 'phone', 'tablet'] as const),
        make: 'Dell',
        model: 'Latitude',
        serialNumber: `SN-${tag}`,
        encrypted: Math.random() < 0.8,
        mdmEnrolled: Math.random() < 0.8,
        classification: pick(['official', 'official_sensitive'] as const),
      })
      if (id) devices.push({ id, status: 'in_stock' })
    } else if (roll < 0.4) {
      const device = devices.find((d) => d.status === 'in_stock')
      if (!device) continue
      const answer = await call('POST', `/v1/devices/${device.id}/assignment`, 'asset_manager', { custodianId: pick(custodians) }, randomUUID())
      // A 409 after a retry: the first attempt got through before the connection dropped.
      if (ok(answer) || (answer.status === 409 && answer.attempts > 1)) device.status = 'assigned'
    } else if (roll < 0.45) {
      const device = devices.find((d) => d.status === 'assigned')
      if (!device) continue
      const answer = await call('POST', `/v1/devices/${device.id}/return`, 'asset_manager', {})
      if (ok(answer) || (answer.status === 409 && answer.attempts > 1)) device.status = 'in_stock'
    } else if (roll < 0.53) {
      const device = devices.find((d) => d.status === 'in_stock' || d.status === 'assigned')
      if (!device) continue
      const kind = pick(['lost', 'stolen'] as const)
      const marker = `Soak incident ${unique()}`
      const id = await createTracked('incident', marker, '/v1/incidents', 'security', {
        deviceId: device.id,
        kind,
        location: { category: pick(['transit', 'home', 'parliamentary_estate', 'abroad'] as const) },
        circumstances: marker,
        personalDataAtRisk: Math.random() < 0.3,
      })
      if (id) device.status = kind
    } else if (roll < 0.56) {
      await call('GET', `/v1/exports/foi/lost-stolen?year=${year}`, 'foi_officer')
    } else if (roll < 0.7 && devices.length > 0) {
      await call('GET', `/v1/devices/${pick(devices).id}`, 'asset_manager')
    } else {
      await call('GET', pick(['/v1/devices?limit=20', '/v1/custodians?limit=20', '/v1/incidents?limit=20']), 'security')
    }
  }
}

// ---- disruptions ----
async function disrupt(databaseName: string): Promise<string> {
  if (RESTART_POSTGRES) {
    execSync('pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart', { stdio: 'inherit', shell: '/bin/sh' })
    return 'PostgreSQL restarted'
  }
  const killed = await withAdmin(SERVER_URL, (admin) =>
    admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [databaseName]),
  )
  return `${killed.rowCount} backend(s) terminated`
}

/** Waits until the service answers /readyz 200 again; true if it did within 60 s. */
async function recovered(): Promise<boolean> {
  const until = Date.now() + 60_000
  while (Date.now() < until) {
    try {
      if ((await fetch(`${baseUrl}/readyz`)).status === 200) return true
    } catch {
      // not yet
    }
    await sleep(200)
  }
  return false
}

// ---- the final checks ----
const TABLES: Record<Entity, { table: string; column: string; action: string }> = {
  custodian: { table: 'custodians', column: 'name', action: 'custodian.created' },
  device: { table: 'devices', column: 'asset_tag', action: 'device.created' },
  incident: { table: 'incidents', column: 'circumstances', action: 'incident.reported' },
}

async function check(url: string) {
  const failures: string[] = []
  let acknowledged = 0
  let storedOnce = 0
  let unacknowledgedStored = 0
  await withAdmin(url, async (admin) => {
    for (const [entity, { table, column, action }] of Object.entries(TABLES) as [Entity, (typeof TABLES)[Entity]][]) {
      const attempts = creates.filter((c) => c.entity === entity)
      const { rows } = await admin.query<{ id: string; marker: string }>(
        `SELECT id::text, ${column} AS marker FROM ${table} WHERE ${column} = ANY($1::text[])`,
        [attempts.map((c) => c.marker)],
      )
      const byMarker = new Map<string, string[]>()
      for (const row of rows) byMarker.set(row.marker, [...(byMarker.get(row.marker) ?? []), row.id])
      for (const attempt of attempts) {
        const stored = byMarker.get(attempt.marker) ?? []
        if (attempt.id) {
          acknowledged++
          if (stored.length === 1 && stored[0] === attempt.id) storedOnce++
          else failures.push(`acknowledged ${entity} ${attempt.id} is stored ${stored.length} time(s): ${stored.join(', ')}`)
        } else if (stored.length > 1) {
          failures.push(`unacknowledged ${entity} "${attempt.marker}" is stored ${stored.length} times`)
        } else if (stored.length === 1) {
          unacknowledgedStored++
        }
      }
      const half = await admin.query<{ kind: string; id: string }>(
        `SELECT 'row without event' AS kind, t.id::text FROM ${table} t
           WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.entity_id = t.id AND e.action = $1)
         UNION ALL
         SELECT 'event without row', e.entity_id::text FROM audit_events e
           WHERE e.action = $1 AND NOT EXISTS (SELECT 1 FROM ${table} t WHERE t.id = e.entity_id)`,
        [action],
      )
      for (const row of half.rows) failures.push(`half-written ${entity} ${row.id}: ${row.kind}`)
    }
  })
  const verify = await call('GET', '/v1/audit-events/verify', 'security')
  const verdict = verify.body as { ok?: boolean; checked?: number; firstBadId?: string | null }
  if (verify.status !== 200 || verdict.ok !== true) failures.push(`audit chain does not verify: ${JSON.stringify(verify.body)}`)
  return { failures, acknowledged, storedOnce, unacknowledgedStored, auditChecked: verdict.checked ?? 0 }
}

// ---- main ----
const databaseName = `dlr_soak_${randomBytes(6).toString('hex')}`
const databaseUrl = urlOf(databaseName)
await withAdmin(SERVER_URL, (admin) => admin.query(`CREATE DATABASE ${databaseName}`))
process.exitCode = 1
try {
  const secret = randomBytes(32).toString('hex')
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    AUTH_JWT_SECRET: secret,
    LOG_LEVEL: 'silent',
    // A few callers making hundreds of requests a second: the per-caller rate limits would
    // measure themselves, not the service. Load shedding (under-pressure) stays on.
    RATE_LIMIT_PER_MINUTE: '0',
    RATE_LIMIT_HEAVY_PER_MINUTE: '0',
    DB_CONNECT_TIMEOUT_MS: '2000',
    DB_STATEMENT_TIMEOUT_MS: '10000',
  })
  const database = await openDatabase(config)
  await runMigrations(database)
  // Routes may log at their own level (readiness warns); the soak prints figures, not logs.
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() })
  const app = await buildApp(config, { database, authenticator: await createAuthenticator(config), logStream: discard })
  await app.listen({ port: 0, host: '127.0.0.1' })
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  for (const role of ['security', 'asset_manager', 'foi_officer'] as const) {
    tokens[role] = await signToken(new TextEncoder().encode(secret), { sub: `soak-${role}`, roles: [role], ttl: '2h' })
  }
  say(`soak: ${CLIENTS} clients for ${SECONDS} s against ${baseUrl}, database ${databaseName}`)
  say(`disruptions: ${RESTART_POSTGRES ? 'PostgreSQL restarts (pg_ctlcluster)' : 'pg_terminate_backend of the service connections'}`)

  const startedAt = performance.now()
  const deadline = Date.now() + SECONDS * 1000
  const disruptions = (async () => {
    let survived = 0
    for (const at of [1 / 3, 2 / 3]) {
      await sleep(Math.max(0, startedAt + SECONDS * 1000 * at - performance.now()))
      const what = await disrupt(databaseName)
      const back = await recovered()
      if (back) survived++
      say(`  at ${Math.round((performance.now() - startedAt) / 1000)} s: ${what}; service ${back ? 'recovered' : 'DID NOT recover'}`)
    }
    return survived
  })()
  const watchdog = setInterval(() => {
    if (Date.now() < deadline + 10_000) return
    const stuck = [...inFlight.values()].sort((a, b) => a.since - b.since).slice(0, 5)
    say(`  still waiting for ${inFlight.size} request(s): ${stuck.map((r) => `${r.what} for ${Math.round((Date.now() - r.since) / 1000)} s`).join('; ')}`)
  }, 5_000)
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i, deadline)))
  clearInterval(watchdog)
  const survived = await disruptions
  const durationS = (performance.now() - startedAt) / 1000

  const result = await check(databaseUrl)
  await app.close()

  const errors = [...statusCounts].filter(([status]) => !/^2/.test(status)).sort()
  say('')
  say(`duration:            ${durationS.toFixed(1)} s`)
  say(`requests:            ${requests} (${(requests / durationS).toFixed(0)}/s), ${retried} retried, ${gaveUp} gave up after ${MAX_ATTEMPTS} attempts`)
  say(`responses:           ${[...statusCounts].sort().map(([s, n]) => `${s}: ${n}`).join(', ')}`)
  say(`errors by status:    ${errors.length ? errors.map(([s, n]) => `${s}: ${n}`).join(', ') : 'none'}`)
  say(`disruptions:         ${survived} of 2 survived (${RESTART_POSTGRES ? 'PostgreSQL restarts' : 'pg_terminate_backend'})`)
  say(`creates attempted:   ${creates.length}`)
  say(`acknowledged:        ${result.acknowledged}`)
  say(`stored exactly once: ${result.storedOnce}`)
  say(`unacknowledged but stored (whole, with its audit event): ${result.unacknowledgedStored}`)
  say(`audit chain:         ${result.failures.some((f) => f.startsWith('audit')) ? 'BROKEN' : `verifies (${result.auditChecked} events)`}`)
  if (survived < 2) result.failures.push('the service did not recover from every disruption')
  for (const failure of result.failures.slice(0, 20)) say(`FAIL ${failure}`)
  say(result.failures.length === 0 ? 'soak: ok' : `soak: ${result.failures.length} failure(s)`)
  process.exitCode = result.failures.length === 0 ? 0 : 1
} finally {
  await withAdmin(SERVER_URL, (admin) => admin.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`)).catch((error: unknown) => {
    say(`could not drop ${databaseName}: ${String(error)}`)
  })
}
// Whatever is left (keep-alive sockets, timers) must not keep a finished soak alive.
process.exit()
