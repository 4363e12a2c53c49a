/**
 * A model-based test of the device and incident lifecycle (issue 8). fast-check generates random
 * sequences of commands — assign, return, report lost/stolen, recover, close, retire, stocktake
 * scans, PATCH, create — legal and illegal alike, and runs each against the real API and a small
 * in-memory model. Every command asserts the status the model predicts (2xx or 409/412) and, after
 * EVERY step, the API's state must equal the model's: each device's status, custodian, version
 * (ETag), model name and lastSeenAt; each incident's status; the open assignments in the database;
 * the audit events the step wrote (action and entity); and an intact audit hash chain. A second,
 * scripted sequence with hand-written statuses takes every move and refusal once, so the model
 * itself is checked and coverage does not depend on the random seed.
 *
 * One app and database serve all runs (a fresh database per run would be too slow): each run starts
 * with its own new custodians (two active, one inactive), devices and an open stocktake.
 * A failure reports the shrunk command list and, in the error, the resolved steps of that run.
 * Replay a failure with LIFECYCLE_SEED=<seed> from the report; hunt longer with LIFECYCLE_RUNS=<n> (default 15).
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import t from 'tap'
import type { App } from '../../src/app.js'
import type { Database } from '../../src/db/client.js'
import { buildTestApp } from '../helpers/app.js'

type DeviceStatus = 'in_stock' | 'assigned' | 'lost' | 'stolen' | 'retired'

interface DeviceModel {
  id: string
  assetTag: string
  serialNumber: string
  status: DeviceStatus
  holder: number | null
  version: number
  model: string
  lastSeenAt: number | null
}
interface CustodianModel {
  id: string
  active: boolean
}
interface IncidentModel {
  id: string
  reference: string
  device: number
  status: 'open' | 'recovered' | 'closed'
}
interface StocktakeModel {
  id: string
  status: 'open' | 'closed'
}
interface Model {
  devices: DeviceModel[]
  custodians: CustodianModel[]
  incidents: IncidentModel[]
  stocktakes: StocktakeModel[]
}
interface Real {
  app: App
  database: Database
  headers: Record<string, string>
  /** Audit events the database should hold (those before the run plus what the model expects). */
  auditEvents: number
  /** The last audit event checked, and the `action entityId` pairs expected after it. */
  lastAuditId: string
  pendingAudit: string[]
  /** Open assignments of devices outside this run (earlier runs'); they must not change. */
  otherOpenAssignments: number
  /** What happened in this run, resolved to device/custodian/incident numbers: the readable trace. */
  log: string[]
  /** The status code of each step, in order. */
  outcomes: number[]
}

/** Outcome counts over all runs ("assign 201": 12), printed at the end. */
const stats = new Map<string, number>()
const count = (key: string) => stats.set(key, (stats.get(key) ?? 0) + 1)
let stepsRun = 0
/** Milliseconds spent acting and checking, printed (never asserted). */
const spent = { act: 0, check: 0, setup: 0 }

let serial = 0
const nextSerial = () => String(++serial).padStart(6, '0')

interface Sent {
  statusCode: number
  headers: Record<string, unknown>
  body: string
  json(): any // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function send(real: Real, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown, extra: Record<string, string> = {}) {
  const response = await real.app.inject({ method, url, headers: { ...real.headers, ...extra }, ...(payload === undefined ? {} : { payload: payload as object }) })
  return response as unknown as Sent
}

function expectStatus(response: Sent, expected: number, what: string): void {
  assert.equal(response.statusCode, expected, `${what}: expected ${expected}, got ${response.statusCode}: ${response.body.slice(0, 500)}`)
  if (expected >= 400) {
    assert.match(String(response.headers['content-type']), /^application\/problem\+json/, `${what}: a problem+json body`)
    assert.equal(response.json().status, expected, `${what}: status in the problem body`)
  }
}

const pick = <T>(items: T[], n: number): T => items[n % items.length]!
const deviceLabel = (model: Model, n: number) => `device ${n % model.devices.length} (${pick(model.devices, n).status})`

/** Events the step must have written, as `[action, entityId]`. */
function expectAudit(real: Real, ...events: [string, string][]): void {
  real.auditEvents += events.length
  real.pendingAudit.push(...events.map(([action, entityId]) => `${action} ${entityId}`))
}

/** The whole observable state, compared with the model after every step. */
async function checkState(model: Model, real: Real): Promise<void> {
  for (const [n, device] of model.devices.entries()) {
    const response = await send(real, 'GET', `/v1/devices/${device.id}`)
    expectStatus(response, 200, `GET device ${n}`)
    const body = response.json()
    const holder = device.holder === null ? null : model.custodians[device.holder]!.id
    assert.deepEqual(
      { status: body.status, currentCustodianId: body.currentCustodianId, version: body.version, etag: response.headers.etag, model: body.model },
      { status: device.status, currentCustodianId: holder, version: device.version, etag: `"${device.version}"`, model: device.model },
      `device ${n} as the API shows it vs the model`,
    )
    assert.equal(body.lastSeenAt === null ? null : Date.parse(body.lastSeenAt), device.lastSeenAt, `device ${n} lastSeenAt`)
  }
  for (const [n, incident] of model.incidents.entries()) {
    const response = await send(real, 'GET', `/v1/incidents/${incident.id}`)
    expectStatus(response, 200, `GET incident ${n}`)
    assert.equal(response.json().status, incident.status, `incident ${n} (${incident.reference}) status`)
  }

  const open = await real.database.query<{ device_id: string; custodian_id: string }>(
    'SELECT device_id, custodian_id FROM assignments WHERE returned_at IS NULL',
  )
  const [{ n: openCount }] = (await real.database.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM assignments WHERE returned_at IS NULL',
  )) as [{ n: number }]
  const ours = new Map(model.devices.map((device, n) => [device.id, n]))
  const actual = open
    .filter((row) => ours.has(row.device_id))
    .map((row) => `device ${ours.get(row.device_id)} → ${row.custodian_id}`)
    .sort()
  const expected = model.devices
    .flatMap((device, n) => (device.holder === null ? [] : [`device ${n} → ${model.custodians[device.holder]!.id}`]))
    .sort()
  assert.deepEqual(actual, expected, 'open assignments of this run\'s devices')
  assert.equal(openCount, real.otherOpenAssignments + expected.length, 'open assignments in the whole database')

  const [{ n: events }] = (await real.database.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')) as [{ n: number }]
  assert.equal(events, real.auditEvents, 'audit events written (one per change; loss and recovery write two)')
  const written = await real.database.query<{ id: string; action: string; entity_id: string }>(
    'SELECT id::text AS id, action, entity_id FROM audit_events WHERE id > $1::bigint ORDER BY audit_events.id',
    [real.lastAuditId],
  )
  assert.deepEqual(written.map((event) => `${event.action} ${event.entity_id}`).sort(), [...real.pendingAudit].sort(), 'the audit events of this step')
  real.lastAuditId = written.at(-1)?.id ?? real.lastAuditId
  real.pendingAudit = []
  const verify = await send(real, 'GET', '/v1/audit-events/verify')
  expectStatus(verify, 200, 'verify the audit chain')
  const { ok, checked, firstBadId } = verify.json()
  assert.deepEqual({ ok, checked, firstBadId }, { ok: true, checked: real.auditEvents, firstBadId: null }, 'audit chain verifies')
}

/** Runs the step, then checks the whole state; a failure carries the run's trace so far. */
abstract class Step implements fc.AsyncCommand<Model, Real> {
  abstract name: string
  abstract act(model: Model, real: Real): Promise<{ outcome: number; note: string }>
  check(_model: Readonly<Model>): boolean {
    return true
  }
  async run(model: Model, real: Real): Promise<void> {
    let line = `${this.toString()}`
    try {
      const before = Date.now()
      const { outcome, note } = await this.act(model, real)
      spent.act += Date.now() - before
      line = `${line} → ${outcome}${note ? ` ${note}` : ''}`
      count(`${this.name} ${outcome}`)
      stepsRun++
      real.outcomes.push(outcome)
      real.log.push(line)
      const checking = Date.now()
      await checkState(model, real)
      spent.check += Date.now() - checking
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      if (message.includes('\nSteps of this run:')) throw error
      const trace = [...real.log, ...(real.log.at(-1) === line ? [] : [`${line} → (failed)`])]
      throw new Error(`${message}\nSteps of this run:\n  ${trace.join('\n  ')}`, { cause: error })
    }
  }
  abstract toString(): string
}

class Assign extends Step {
  name = 'assign'
  constructor(readonly d: number, readonly c: number) {
    super()
  }
  async act(model: Model, real: Real) {
    const device = pick(model.devices, this.d)
    const custodianIndex = this.c % model.custodians.length
    const custodian = model.custodians[custodianIndex]!
    const allowed = device.status === 'in_stock' && custodian.active
    const note = `${deviceLabel(model, this.d)} to custodian ${custodianIndex}${custodian.active ? '' : ' (inactive)'}`
    const response = await send(real, 'POST', `/v1/devices/${device.id}/assignment`, { custodianId: custodian.id })
    expectStatus(response, allowed ? 201 : 409, 'assign')
    if (allowed) {
      assert.equal(response.json().custodianId, custodian.id)
      Object.assign(device, { status: 'assigned', holder: custodianIndex, version: device.version + 1 })
      expectAudit(real, ['device.assigned', device.id])
    }
    return { outcome: response.statusCode, note }
  }
  toString() {
    return `assign(device ${this.d}, custodian ${this.c})`
  }
}

class Return extends Step {
  name = 'return'
  constructor(readonly d: number) {
    super()
  }
  async act(model: Model, real: Real) {
    const device = pick(model.devices, this.d)
    const allowed = device.status === 'assigned'
    const note = deviceLabel(model, this.d)
    const response = await send(real, 'POST', `/v1/devices/${device.id}/return`, {})
    expectStatus(response, allowed ? 200 : 409, 'return')
    if (allowed) {
      assert.equal(response.json().custodianId, model.custodians[device.holder!]!.id)
      assert.notEqual(response.json().returnedAt, null)
      Object.assign(device, { status: 'in_stock', holder: null, version: device.version + 1 })
      expectAudit(real, ['device.returned', device.id])
    }
    return { outcome: response.statusCode, note }
  }
  toString() {
    return `return(device ${this.d})`
  }
}

class Report extends Step {
  name: string
  constructor(readonly d: number, readonly kind: 'lost' | 'stolen', readonly personalData: boolean) {
    super()
    this.name = `report ${kind}`
  }
  async act(model: Model, real: Real) {
    const deviceIndex = this.d % model.devices.length
    const device = model.devices[deviceIndex]!
    const allowed = device.status === 'in_stock' || device.status === 'assigned'
    const note = deviceLabel(model, this.d)
    const response = await send(real, 'POST', '/v1/incidents', {
      deviceId: device.id,
      kind: this.kind,
      location: { category: 'transit' },
      circumstances: 'Left on a train',
      personalDataAtRisk: this.personalData,
    })
    expectStatus(response, allowed ? 201 : 409, `report ${this.kind}`)
    if (!allowed) return { outcome: response.statusCode, note }
    const incident = response.json()
    // The incident keeps who held the device when it went.
    const holder = device.holder === null ? null : model.custodians[device.holder]!.id
    assert.deepEqual(
      { status: incident.status, deviceId: incident.deviceId, custodianId: incident.custodianId, kind: incident.kind },
      { status: 'open', deviceId: device.id, custodianId: holder, kind: this.kind },
      'the new incident',
    )
    Object.assign(device, { status: this.kind, holder: null, version: device.version + 1 })
    model.incidents.push({ id: incident.id, reference: incident.reference, device: deviceIndex, status: 'open' })
    expectAudit(real, ['incident.reported', incident.id], [`device.reported_${this.kind}`, device.id])
    return { outcome: response.statusCode, note: `${note}: incident ${model.incidents.length - 1}` }
  }
  toString() {
    return `report(device ${this.d}, ${this.kind}${this.personalData ? ', personal data' : ''})`
  }
}

/** Recover or close an incident of the run, whatever its state: `i` counts back from the newest (0). */
class Settle extends Step {
  name: string
  constructor(readonly i: number, readonly how: 'recover' | 'close') {
    super()
    this.name = how
  }
  override check(model: Readonly<Model>) {
    return model.incidents.length > 0
  }
  async act(model: Model, real: Real) {
    const number = model.incidents.length - 1 - (this.i % model.incidents.length)
    const incident = model.incidents[number]!
    const device = model.devices[incident.device]!
    const allowed = incident.status === 'open'
    const response =
      this.how === 'recover'
        ? await send(real, 'POST', `/v1/incidents/${incident.id}/recovery`, { recoveredAt: new Date().toISOString(), condition: 'intact' })
        : await send(real, 'POST', `/v1/incidents/${incident.id}/close`, { reason: 'Written off' })
    expectStatus(response, allowed ? 200 : 409, this.how)
    const note = `incident ${number} (${incident.status}, device ${incident.device})`
    if (!allowed) return { outcome: response.statusCode, note }
    if (this.how === 'recover') {
      incident.status = 'recovered'
      Object.assign(device, { status: 'in_stock', version: device.version + 1 })
      expectAudit(real, ['incident.recovered', incident.id], ['device.recovered', device.id])
    } else {
      // Written off: the device stays lost or stolen for good.
      incident.status = 'closed'
      expectAudit(real, ['incident.closed', incident.id])
    }
    assert.equal(response.json().status, incident.status)
    return { outcome: response.statusCode, note }
  }
  toString() {
    return `${this.how}(${this.i === 0 ? 'newest incident' : `incident ${this.i} before the newest`})`
  }
}

class Retire extends Step {
  name = 'retire'
  constructor(readonly d: number) {
    super()
  }
  async act(model: Model, real: Real) {
    const device = pick(model.devices, this.d)
    const note = deviceLabel(model, this.d)
    const allowed = device.status === 'in_stock'
    const response = await send(real, 'POST', `/v1/devices/${device.id}/retire`, { reason: 'End of life' })
    expectStatus(response, allowed ? 200 : 409, 'retire')
    if (allowed) {
      Object.assign(device, { status: 'retired', version: device.version + 1 })
      expectAudit(real, ['device.retired', device.id])
    }
    return { outcome: response.statusCode, note }
  }
  toString() {
    return `retire(device ${this.d})`
  }
}

/** A scan into the s-th stocktake, by asset tag or serial (in any case), or of an unknown tag. */
class Scan extends Step {
  name = 'scan'
  constructor(
    readonly s: number,
    readonly d: number,
    readonly by: 'assetTag' | 'serialNumber' | 'unknown',
    readonly lowerCase: boolean,
    readonly secondsAgo: number,
  ) {
    super()
  }
  async act(model: Model, real: Real) {
    const stocktake = pick(model.stocktakes, this.s)
    const device = pick(model.devices, this.d)
    const seenAt = new Date(Date.now() - this.secondsAgo * 1000)
    const raw = this.by === 'unknown' ? `ZZ-NONE${nextSerial()}` : this.by === 'assetTag' ? device.assetTag : device.serialNumber
    const identifier = this.lowerCase ? raw.toLowerCase() : raw
    const scan = this.by === 'serialNumber' ? { serialNumber: identifier } : { assetTag: identifier }
    const allowed = stocktake.status === 'open'
    const response = await send(real, 'POST', `/v1/stocktakes/${stocktake.id}/scans`, { scans: [{ ...scan, seenAt: seenAt.toISOString() }] })
    expectStatus(response, allowed ? 200 : 409, 'scan')
    if (allowed) {
      const known = this.by !== 'unknown'
      assert.deepEqual(response.json(), { accepted: 1, matched: known ? 1 : 0, unknown: known ? 0 : 1 }, 'scan receipt')
      // lastSeenAt moves forward, never back; a sighting is not an edit (no new version).
      if (known) device.lastSeenAt = Math.max(device.lastSeenAt ?? 0, seenAt.getTime())
      expectAudit(real, ['stocktake.scans_added', stocktake.id])
    }
    return { outcome: response.statusCode, note: `${deviceLabel(model, this.d)} into stocktake ${this.s % model.stocktakes.length} (${stocktake.status})` }
  }
  toString() {
    return `scan(stocktake ${this.s}, device ${this.d}, by ${this.by}${this.lowerCase ? ' lower case' : ''}, ${this.secondsAgo}s ago)`
  }
}

class OpenStocktake extends Step {
  name = 'open stocktake'
  async act(model: Model, real: Real) {
    const response = await send(real, 'POST', '/v1/stocktakes', { name: `Model stocktake ${nextSerial()}` })
    expectStatus(response, 201, 'open stocktake')
    model.stocktakes.push({ id: response.json().id, status: 'open' })
    expectAudit(real, ['stocktake.created', response.json().id])
    return { outcome: response.statusCode, note: `stocktake ${model.stocktakes.length - 1}` }
  }
  toString() {
    return 'openStocktake()'
  }
}

class CloseStocktake extends Step {
  name = 'close stocktake'
  constructor(readonly s: number) {
    super()
  }
  async act(model: Model, real: Real) {
    const stocktake = pick(model.stocktakes, this.s)
    const allowed = stocktake.status === 'open'
    const response = await send(real, 'POST', `/v1/stocktakes/${stocktake.id}/close`)
    expectStatus(response, allowed ? 200 : 409, 'close stocktake')
    if (allowed) {
      stocktake.status = 'closed'
      expectAudit(real, ['stocktake.closed', stocktake.id])
    }
    return { outcome: response.statusCode, note: '' }
  }
  toString() {
    return `closeStocktake(stocktake ${this.s})`
  }
}

/** PATCH the model name with the ETag the model holds, or with a stale one (412). */
class Patch extends Step {
  name: string
  constructor(readonly d: number, readonly stale: boolean, readonly newModel: string) {
    super()
    this.name = stale ? 'patch stale' : 'patch'
  }
  async act(model: Model, real: Real) {
    const device = pick(model.devices, this.d)
    const note = deviceLabel(model, this.d)
    const ifMatch = `"${this.stale ? device.version - 1 : device.version}"`
    const response = await send(real, 'PATCH', `/v1/devices/${device.id}`, { model: this.newModel }, { 'if-match': ifMatch })
    expectStatus(response, this.stale ? 412 : 200, 'patch')
    if (!this.stale) {
      // Any state may be corrected; the status is not touched by an edit.
      assert.equal(response.json().status, device.status)
      Object.assign(device, { model: this.newModel, version: device.version + 1 })
      expectAudit(real, ['device.updated', device.id])
    }
    return { outcome: response.statusCode, note }
  }
  toString() {
    return `patch(device ${this.d}${this.stale ? ', stale ETag' : ''}, model ${JSON.stringify(this.newModel)})`
  }
}

/** A new device for the run, or (duplicate) one reusing an existing device's asset tag: 409. */
class Create extends Step {
  name: string
  constructor(readonly duplicateOf: number | null) {
    super()
    this.name = duplicateOf === null ? 'create' : 'create duplicate'
  }
  async act(model: Model, real: Real) {
    const fresh = newDeviceBody()
    const body = this.duplicateOf === null ? fresh : { ...fresh, assetTag: pick(model.devices, this.duplicateOf).assetTag }
    const response = await send(real, 'POST', '/v1/devices', body)
    expectStatus(response, this.duplicateOf === null ? 201 : 409, 'create device')
    if (this.duplicateOf !== null) return { outcome: response.statusCode, note: '' }
    model.devices.push(deviceModel(response.json()))
    expectAudit(real, ['device.created', response.json().id])
    return { outcome: response.statusCode, note: `device ${model.devices.length - 1}` }
  }
  toString() {
    return this.duplicateOf === null ? 'createDevice()' : `createDevice(asset tag of device ${this.duplicateOf})`
  }
}

function newDeviceBody() {
  const n = nextSerial()
  return {
    assetTag: `LM-${n}`,
    kind: 'laptop',
    make: 'Dell',
    model: 'Latitude 7440',
    serialNumber: `Sn-lm-${n}`,
    encrypted: true,
    mdmEnrolled: true,
    classification: 'official',
  }
}

function deviceModel(body: { id: string; assetTag: string; serialNumber: string; model: string; version: number }): DeviceModel {
  return { id: body.id, assetTag: body.assetTag, serialNumber: body.serialNumber, status: 'in_stock', holder: null, version: body.version, model: body.model, lastSeenAt: null }
}

const deviceNumber = fc.nat({ max: 5 })
const commandArbitrary = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(deviceNumber, fc.nat({ max: 2 })).map(([d, c]) => new Assign(d, c)) },
  { weight: 3, arbitrary: deviceNumber.map((d) => new Return(d)) },
  {
    weight: 3,
    arbitrary: fc.tuple(deviceNumber, fc.constantFrom('lost' as const, 'stolen' as const), fc.boolean()).map(([d, kind, pd]) => new Report(d, kind, pd)),
  },
  { weight: 3, arbitrary: fc.nat({ max: 5 }).map((i) => new Settle(i, 'recover')) },
  { weight: 1, arbitrary: fc.nat({ max: 5 }).map((i) => new Settle(i, 'close')) },
  { weight: 1, arbitrary: deviceNumber.map((d) => new Retire(d)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.nat({ max: 2 }), deviceNumber, fc.constantFrom('assetTag' as const, 'serialNumber' as const, 'unknown' as const), fc.boolean(), fc.nat({ max: 86_400 }))
      .map(([s, d, by, lower, ago]) => new Scan(s, d, by, lower, ago)),
  },
  { weight: 1, arbitrary: fc.constant(null).map(() => new OpenStocktake()) },
  { weight: 1, arbitrary: fc.nat({ max: 2 }).map((s) => new CloseStocktake(s)) },
  {
    weight: 2,
    arbitrary: fc.tuple(deviceNumber, fc.boolean(), fc.constantFrom('Latitude 7450', 'ThinkPad X1', 'iPhone 15')).map(([d, stale, m]) => new Patch(d, stale, m)),
  },
  { weight: 1, arbitrary: fc.option(deviceNumber, { freq: 3 }).map((dup) => new Create(dup)) },
)

/** Each run starts with its own custodians (0 and 1 active, 2 inactive), devices 0-2 in stock and stocktake 0 open. */
function runSetup(app: App, database: Database, headers: Record<string, string>, onRun: () => void) {
  return async (): Promise<{ model: Model; real: Real }> => {
    onRun()
    const setupStarted = Date.now()
    const real: Real = { app, database, headers, auditEvents: 0, lastAuditId: '0', pendingAudit: [], otherOpenAssignments: 0, log: [], outcomes: [] }
    const custodians: CustodianModel[] = []
    for (const active of [true, true, false]) {
      const response = await send(real, 'POST', '/v1/custodians', { kind: 'staff', name: `Holder ${nextSerial()}`, active })
      expectStatus(response, 201, 'create custodian')
      custodians.push({ id: response.json().id, active })
    }
    const devices: DeviceModel[] = []
    for (let i = 0; i < 3; i++) {
      const response = await send(real, 'POST', '/v1/devices', newDeviceBody())
      expectStatus(response, 201, 'create device')
      devices.push(deviceModel(response.json()))
    }
    const stocktake = await send(real, 'POST', '/v1/stocktakes', { name: `Model stocktake ${nextSerial()}` })
    expectStatus(stocktake, 201, 'create stocktake')
    const [{ n: events }] = (await database.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')) as [{ n: number }]
    const [{ n: open }] = (await database.query<{ n: number }>('SELECT count(*)::int AS n FROM assignments WHERE returned_at IS NULL')) as [{ n: number }]
    const [{ id: lastAuditId }] = (await database.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM audit_events')) as [{ id: string }]
    real.auditEvents = events
    real.lastAuditId = lastAuditId
    real.otherOpenAssignments = open
    real.log.push('start: devices 0-2 in stock; custodians 0, 1 active, 2 inactive; stocktake 0 open')
    const model: Model = { devices, custodians, incidents: [], stocktakes: [{ id: stocktake.json().id, status: 'open' }] }
    spent.setup += Date.now() - setupStarted
    return { model, real }
  }

}

t.test('random command sequences keep the API, the database and the audit chain in step with the model', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth(['security', 'asset_manager'], 'model-tester')
  let runs = 0

  const setup = runSetup(app, database, headers, () => runs++)

  const seed = process.env.LIFECYCLE_SEED ? Number(process.env.LIFECYCLE_SEED) : undefined
  const started = Date.now()
  const property = fc.asyncProperty(fc.commands([commandArbitrary], { maxCommands: 25, size: 'max' }), async (commands) => {
    await fc.asyncModelRun(setup, commands)
  })
  const details = await fc.check(property, { numRuns: Number(process.env.LIFECYCLE_RUNS) || 15, includeErrorInReport: true, ...(seed === undefined ? {} : { seed }) })
  if (details.failed) {
    // The report names the seed, the shrunk commands and the error with the run's resolved steps.
    const report = fc.defaultReportMessage(details) ?? 'the property failed'
    t.comment(report)
    t.fail(`the API and the model disagree (seed ${details.seed}): see the report above`)
  } else {
    t.pass(`${details.numRuns} random sequences matched the model`)
  }
  t.comment(`seed ${details.seed}: ${runs} runs (shrinking included), ${stepsRun} commands, ${Date.now() - started} ms (setup ${spent.setup}, act ${spent.act}, check ${spent.check})`)
  t.comment([...stats].sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `${key}: ${n}`).join(', '))
})

// The same commands and checks along one fixed path that takes every move and every refusal, with
// the statuses written out by hand: the model itself is checked here, not only the API against it.
t.test('a scripted sequence through every move and refusal', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth(['security', 'asset_manager'], 'model-tester')
  let real: Real | undefined
  const setup = runSetup(app, database, headers, () => {})
  const script: [Step, number][] = [
    [new Assign(0, 2), 409], // inactive custodian
    [new Assign(0, 0), 201],
    [new Assign(0, 1), 409], // already assigned
    [new Retire(0), 409],
    [new Scan(0, 0, 'assetTag', true, 60), 200],
    [new Report(0, 'stolen', true), 201], // incident 0, held by custodian 0
    [new Return(0), 409],
    [new Assign(0, 1), 409],
    [new Report(0, 'lost', false), 409], // one incident at a time
    [new Settle(0, 'recover'), 200],
    [new Settle(0, 'recover'), 409],
    [new Settle(0, 'close'), 409],
    [new Assign(0, 1), 201],
    [new Return(0), 200],
    [new Return(0), 409],
    [new Report(1, 'lost', false), 201], // incident 1, from stock
    [new Settle(0, 'close'), 200],
    [new Settle(0, 'recover'), 409],
    [new Settle(1, 'recover'), 409], // incident 0, recovered already
    [new Retire(1), 409],
    [new Assign(1, 0), 409], // written off: lost for good
    [new Scan(0, 1, 'serialNumber', false, 30), 200], // a lost device seen
    [new Scan(0, 1, 'serialNumber', true, 120), 200], // an older sighting: lastSeenAt stays
    [new Retire(2), 200],
    [new Assign(2, 0), 409],
    [new Patch(2, false, 'ThinkPad X1'), 200],
    [new Patch(2, true, 'iPhone 15'), 412],
    [new CloseStocktake(0), 200],
    [new Scan(0, 2, 'assetTag', false, 10), 409],
    [new CloseStocktake(0), 409],
    [new OpenStocktake(), 201],
    [new Scan(1, 2, 'unknown', false, 10), 200],
    [new Scan(1, 2, 'assetTag', false, 5), 200], // a retired device seen
    [new Create(null), 201], // device 3
    [new Create(3), 409], // its asset tag again
    [new Assign(3, 1), 201],
    [new Report(3, 'stolen', false), 201],
    [new Return(3), 409],
  ]
  await fc.asyncModelRun(async () => {
    const started = await setup()
    real = started.real
    return started
  }, script.map(([step]) => step))
  t.same(real!.outcomes, script.map(([, status]) => status), 'every step answered as written')
  t.comment(real!.log.join('\n'))
})
