import { sql } from 'drizzle-orm'
import t from 'tap'
import { withValues } from '../helpers/audit-events.js'
import { newId } from '../../src/db/ids.js'
import { assignments } from '../../src/db/schema.js'
import type { Database } from '../../src/db/client.js'
import { buildTestApp } from '../helpers/app.js'
import { driverUnderTest } from '../helpers/database.js'
import { insertCustodian, insertDevice } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'
import { walkPages } from '../helpers/pages.js'
import { waitForLockWaiters } from '../helpers/wait.js'

const DAY = 24 * 60 * 60 * 1000
const ago = (ms: number) => new Date(Date.now() - ms).toISOString()

/** A device assigned (device row, custodian column and an open assignment) to a new custodian. */
async function assignedDevice(database: Database, overrides: Parameters<typeof insertDevice>[1] = {}) {
  const custodian = await insertCustodian(database)
  const device = await insertDevice(database, { status: 'assigned', currentCustodianId: custodian.id, ...overrides })
  await database.db.insert(assignments).values({
    id: newId(),
    deviceId: device.id,
    custodianId: custodian.id,
    assignedAt: new Date(Date.now() - 10 * DAY),
    createdBy: 'fixture',
  })
  return { custodian, device }
}

const reportOf = (deviceId: string, extra: Record<string, unknown> = {}) => ({
  deviceId,
  kind: 'lost',
  location: { category: 'transit', description: 'Jubilee line, northbound' },
  circumstances: 'Left on the seat of a train after a late sitting.',
  personalDataAtRisk: false,
  ...extra,
})

/** Everything a refused request must leave as it was. */
async function stateOf(database: Database) {
  return {
    devices: await database.query('SELECT id, status, current_custodian_id, version FROM devices ORDER BY id'),
    incidents: await database.query('SELECT id, status, version, frozen_risk_score FROM incidents ORDER BY id'),
    assignments: await database.query('SELECT id, returned_at FROM assignments ORDER BY id'),
    audit: (await database.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events'))[0]!.n,
  }
}

t.test('reporting an assigned device: device lost, assignment ended, snapshot, reference, audit', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security', 'sam')
  const { custodian, device } = await assignedDevice(database, { encrypted: false, classification: 'official_sensitive' })
  const reportedAt = ago(2 * 60 * 60 * 1000)
  const occurredAt = ago(5 * 60 * 60 * 1000)

  const response = await app.inject({
    method: 'POST', url: '/v1/incidents', headers,
    payload: reportOf(device.id, { reportedAt, occurredAt, personalDataAtRisk: true, policeReference: 'MPS-123' }),
  })
  t.equal(response.statusCode, 201)
  t.equal(response.headers.etag, '"1"')
  const incident = response.json()
  t.equal(response.headers.location, `/v1/incidents/${incident.id}`)
  const year = new Date(reportedAt).getUTCFullYear()
  t.same(Object.keys(incident).sort(), [
    'circumstances', 'closeReason', 'closedAt', 'createdAt', 'custodianId', 'deviceId', 'icoDeadline', 'icoReportedAt', 'id',
    'kind', 'location', 'occurredAt', 'personalDataAtRisk', 'policeReference', 'recoveredAt', 'recovery', 'reference',
    'remoteWipe', 'reportedAt', 'risk', 'status', 'updatedAt', 'version',
  ])
  t.match(incident, {
    reference: `INC-${year}-0001`,
    status: 'open',
    deviceId: device.id,
    custodianId: custodian.id,
    kind: 'lost',
    occurredAt,
    reportedAt,
    location: { category: 'transit', description: 'Jubilee line, northbound' },
    circumstances: 'Left on the seat of a train after a late sitting.',
    policeReference: 'MPS-123',
    personalDataAtRisk: true,
    remoteWipe: 'not_requested',
    icoDeadline: new Date(Date.parse(reportedAt) + 72 * 60 * 60 * 1000).toISOString(),
    icoReportedAt: null,
    recoveredAt: null,
    recovery: null,
    closedAt: null,
    closeReason: null,
    version: 1,
  })
  t.same(incident.risk, {
    score: 95,
    level: 'critical',
    factors: [
      { code: 'unencrypted', points: 40 },
      { code: 'classification_official_sensitive', points: 20 },
      { code: 'personal_data', points: 20 },
      { code: 'wipe_unconfirmed', points: 15 },
    ],
  })

  const [deviceRow] = await database.query<{ status: string; current_custodian_id: string | null; version: number }>(
    'SELECT status, current_custodian_id, version FROM devices WHERE id = $1', [device.id])
  t.same(deviceRow, { status: 'lost', current_custodian_id: null, version: 2 })
  const [assignment] = await database.query<{ ended_by: string; ended_ok: boolean }>(
    'SELECT ended_by, returned_at = $2::timestamptz AS ended_ok FROM assignments WHERE device_id = $1', [device.id, reportedAt])
  t.same(assignment, { ended_by: 'incident', ended_ok: true }, 'the assignment ended when the loss was reported')

  const events = await database.query<{ action: string; entity_type: string; entity_id: string; actor: string; before: unknown }>(
    'SELECT action, entity_type, entity_id, actor, before FROM audit_events ORDER BY id')
  t.match(events, [
    { action: 'incident.reported', entity_type: 'incident', entity_id: incident.id, actor: 'sam', before: null },
    { action: 'device.reported_lost', entity_type: 'device', entity_id: device.id, actor: 'sam', before: { status: 'assigned' } },
  ])
  t.equal(events.length, 2)

  // The snapshot: editing the device afterwards changes nothing in the incident.
  await database.query(
    "UPDATE devices SET encrypted = true, mdm_enrolled = false, classification = 'secret', kind = 'phone' WHERE id = $1", [device.id])
  const read = await app.inject({ method: 'GET', url: `/v1/incidents/${incident.id}`, headers })
  t.equal(read.statusCode, 200)
  t.equal(read.headers.etag, '"1"')
  t.same(read.json(), incident, 'the incident reads as it was reported')
  const [snapshot] = await database.query('SELECT device_kind, device_encrypted, device_mdm_enrolled, device_classification FROM incidents')
  t.same(snapshot, { device_kind: 'laptop', device_encrypted: false, device_mdm_enrolled: true, device_classification: 'official_sensitive' })
})

t.test('an in-stock device can be reported stolen; no custodian, no ICO deadline', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const device = await insertDevice(database)
  const response = await app.inject({
    method: 'POST', url: '/v1/incidents', headers,
    payload: reportOf(device.id, { kind: 'stolen', remoteWipe: 'confirmed', location: { category: 'abroad' } }),
  })
  t.equal(response.statusCode, 201)
  t.match(response.json(), { custodianId: null, occurredAt: null, icoDeadline: null, location: { description: null } })
  t.same(response.json().risk, { score: 20, level: 'low', factors: [{ code: 'stolen', points: 10 }, { code: 'abroad', points: 10 }] })
  const reportedAt = Date.parse(response.json().reportedAt)
  t.ok(Math.abs(reportedAt - Date.now()) < 60_000, 'reportedAt defaults to now')
  t.same(await database.query('SELECT action FROM audit_events ORDER BY id'), [
    { action: 'incident.reported' }, { action: 'device.reported_stolen' },
  ])
})

t.test('bad reports are refused and create nothing', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const device = await insertDevice(database)
  const before = await stateOf(database)
  const post = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: payload as object })

  const unknown = assertProblem(t, await post(reportOf(newId())), 422)
  t.equal(unknown.errors[0].path, 'body.deviceId')
  const later = assertProblem(t, await post(reportOf(device.id, { occurredAt: ago(0), reportedAt: ago(DAY) })), 400)
  t.equal(later.errors[0].path, 'body.occurredAt')
  const future = assertProblem(t, await post(reportOf(device.id, { reportedAt: new Date(Date.now() + DAY).toISOString() })), 400)
  t.equal(future.errors[0].path, 'body.reportedAt')
  const futureOccurred = assertProblem(t, await post(reportOf(device.id, { occurredAt: new Date(Date.now() + DAY).toISOString() })), 400)
  t.equal(futureOccurred.errors[0].path, 'body.occurredAt')
  for (const extra of [{ reference: 'INC-2020-0001' }, { risk: { score: 0 } }, { status: 'closed' }, { icoDeadline: ago(0) }, { colour: 'red' }]) {
    const problem = assertProblem(t, await post(reportOf(device.id, extra)), 400)
    t.equal(problem.errors[0].path, `body.${Object.keys(extra)[0]}`)
  }
  assertProblem(t, await post(reportOf(device.id, { location: { category: 'moon' } })), 400)
  assertProblem(t, await post(reportOf(device.id, { circumstances: '   ' })), 400)
  t.same(await stateOf(database), before, 'nothing changed')
})

t.test('illegal lifecycle moves are 409 and change nothing', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, headers, payload })
  const retired = await insertDevice(database, { status: 'retired' })
  const lost = await insertDevice(database)
  const recovered = await insertDevice(database)
  const closed = await insertDevice(database)
  const ids: Record<string, string> = {}
  for (const [name, device] of Object.entries({ lost, recovered, closed })) {
    const created = await post('/v1/incidents', reportOf(device.id, { reportedAt: ago(DAY) }))
    t.equal(created.statusCode, 201)
    ids[name] = created.json().id
  }
  t.equal((await post(`/v1/incidents/${ids.recovered}/recovery`, { recoveredAt: ago(0), condition: 'intact' })).statusCode, 200)
  t.equal((await post(`/v1/incidents/${ids.closed}/close`, { reason: 'Written off' })).statusCode, 200)

  const before = await stateOf(database)
  const attempts: [string, string, object][] = [
    ['report a retired device', '/v1/incidents', reportOf(retired.id)],
    ['report a lost device again', '/v1/incidents', reportOf(lost.id)],
    ['report a lost device as stolen', '/v1/incidents', reportOf(lost.id, { kind: 'stolen' })],
    ['report a written-off device', '/v1/incidents', reportOf(closed.id)],
    ['recover a recovered incident', `/v1/incidents/${ids.recovered}/recovery`, { recoveredAt: ago(0), condition: 'intact' }],
    ['close a recovered incident', `/v1/incidents/${ids.recovered}/close`, { reason: 'x' }],
    ['recover a closed incident', `/v1/incidents/${ids.closed}/recovery`, { recoveredAt: ago(0), condition: 'intact' }],
    ['close a closed incident', `/v1/incidents/${ids.closed}/close`, { reason: 'x' }],
  ]
  for (const [what, url, payload] of attempts) {
    const problem = assertProblem(t, await post(url, payload), 409)
    t.ok(problem.detail.length > 20, `${what}: says why (${problem.detail})`)
  }
  t.same(await stateOf(database), before, 'devices, incidents, assignments and audit count unchanged')
  assertProblem(t, await post(`/v1/incidents/${newId()}/close`, { reason: 'x' }), 404)
})

t.test('8 concurrent reports in one year get 8 consecutive references; a refused one leaves no gap', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const devices = await Promise.all(Array.from({ length: 8 }, () => insertDevice(database)))
  const retired = await insertDevice(database, { status: 'retired' })
  const reportedAt = '2023-06-01T09:00:00Z'
  const started = Date.now()
  const responses = await Promise.all([
    ...devices.map((device) => app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(device.id, { reportedAt }) })),
    app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(retired.id, { reportedAt }) }),
  ])
  t.comment(`9 concurrent reports took ${Date.now() - started} ms`)
  t.same(responses.map((r) => r.statusCode), [201, 201, 201, 201, 201, 201, 201, 201, 409])
  const references = responses.slice(0, 8).map((r) => r.json().reference).sort()
  t.same(references, [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `INC-2023-000${n}`))
  const next = await app.inject({
    method: 'POST', url: '/v1/incidents', headers, payload: reportOf((await insertDevice(database)).id, { reportedAt: '2023-12-31T23:59:00Z' }),
  })
  t.equal(next.json().reference, 'INC-2023-0009', 'the next one follows on')
  const otherYear = await app.inject({
    method: 'POST', url: '/v1/incidents', headers, payload: reportOf((await insertDevice(database)).id, { reportedAt: '2024-01-01T00:01:00Z' }),
  })
  t.equal(otherYear.json().reference, 'INC-2024-0001', 'each year counts from 1')
})

t.test('a replayed report (same Idempotency-Key) creates one incident and one audit event of each kind', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('security')), 'idempotency-key': 'report-42' }
  const device = await insertDevice(database)
  const payload = reportOf(device.id, { reportedAt: ago(DAY) })
  const first = await app.inject({ method: 'POST', url: '/v1/incidents', headers, payload })
  const second = await app.inject({ method: 'POST', url: '/v1/incidents', headers, payload })
  t.equal(first.statusCode, 201)
  t.equal(second.statusCode, 201)
  t.equal(second.headers['idempotent-replayed'], 'true')
  t.same(second.json(), first.json())
  t.same(await database.query('SELECT count(*)::int AS n FROM incidents'), [{ n: 1 }])
  t.same(await database.query('SELECT action, count(*)::int AS n FROM audit_events GROUP BY action ORDER BY action'), [
    { action: 'device.reported_lost', n: 1 },
    { action: 'incident.reported', n: 1 },
  ])
  const other = await app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: { ...payload, circumstances: 'Other' } })
  assertProblem(t, other, 422)
})

t.test('PATCH: If-Match, the follow-up fields only, ICO report time rules, audit', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const device = await insertDevice(database)
  const created = (await app.inject({
    method: 'POST', url: '/v1/incidents', headers, payload: reportOf(device.id, { reportedAt: ago(DAY), personalDataAtRisk: true }),
  })).json()
  const url = `/v1/incidents/${created.id}`
  const patch = (payload: object, ifMatch?: string) =>
    app.inject({ method: 'PATCH', url, headers: ifMatch ? { ...headers, 'if-match': ifMatch } : headers, payload })

  assertProblem(t, await patch({ policeReference: 'X' }), 428)
  assertProblem(t, await patch({ policeReference: 'X' }, '"9"'), 412)
  for (const bad of [{ kind: 'stolen' }, { reportedAt: ago(0) }, { location: { category: 'home' } }, { personalDataAtRisk: false }, { risk: {} }, {}]) {
    assertProblem(t, await patch(bad, '"1"'), 400)
  }
  const early = assertProblem(t, await patch({ icoReportedAt: ago(2 * DAY) }, '"1"'), 400)
  t.equal(early.errors[0].path, 'body.icoReportedAt')
  assertProblem(t, await patch({ icoReportedAt: new Date(Date.now() + DAY).toISOString() }, '"1"'), 400)

  const icoReportedAt = ago(60_000)
  const changed = await patch(
    {
      policeReference: 'MPS-999', remoteWipe: 'confirmed', icoReportedAt,
      location: { description: 'Westminster station' }, circumstances: 'Found to have been left on a train.',
    },
    '"1"',
  )
  t.equal(changed.statusCode, 200)
  t.equal(changed.headers.etag, '"2"')
  t.match(changed.json(), {
    policeReference: 'MPS-999', remoteWipe: 'confirmed', icoReportedAt, version: 2,
    location: { category: 'transit', description: 'Westminster station' }, circumstances: 'Found to have been left on a train.',
  })
  t.notOk(changed.json().risk.factors.some((f: { code: string }) => f.code === 'wipe_unconfirmed'), 'risk follows the current state')
  const events = await database.query<{ action: string; before: { version: number }; after: { version: number } }>(
    "SELECT action, before, after FROM audit_events WHERE action = 'incident.updated'")
  t.equal(events.length, 1)
  t.equal(events[0]!.before.version, 1)
  t.equal(events[0]!.after.version, 2)
  assertProblem(t, await patch({ policeReference: 'again' }, '"1"'), 412)
})

t.test('recovery puts the device back in stock and freezes the risk; closing keeps it lost', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const found = await insertDevice(database, { encrypted: false })
  const gone = await insertDevice(database)
  const report = async (deviceId: string) =>
    (await app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(deviceId, { reportedAt: ago(40 * DAY) }) })).json()
  const a = await report(found.id)
  const b = await report(gone.id)
  t.same(a.risk.factors.map((f: { code: string }) => f.code), ['unencrypted', 'wipe_unconfirmed', 'outstanding_30d'])

  const early = await app.inject({
    method: 'POST', url: `/v1/incidents/${a.id}/recovery`, headers, payload: { recoveredAt: ago(41 * DAY), condition: 'intact' },
  })
  t.equal(assertProblem(t, early, 400).errors[0].path, 'body.recoveredAt')
  // Found 10 days after the report: it was never outstanding for 30 days.
  const recoveredAt = ago(30 * DAY)
  const recovered = await app.inject({
    method: 'POST', url: `/v1/incidents/${a.id}/recovery`, headers, payload: { recoveredAt, condition: 'damaged', notes: 'Screen cracked' },
  })
  t.equal(recovered.statusCode, 200)
  t.match(recovered.json(), { status: 'recovered', recoveredAt, recovery: { condition: 'damaged', notes: 'Screen cracked' }, version: 2 })
  t.same(recovered.json().risk, { score: 55, level: 'high', factors: [{ code: 'unencrypted', points: 40 }, { code: 'wipe_unconfirmed', points: 15 }] })
  t.same(await database.query('SELECT status, version FROM devices WHERE id = $1', [found.id]), [{ status: 'in_stock', version: 3 }])

  const closed = await app.inject({ method: 'POST', url: `/v1/incidents/${b.id}/close`, headers, payload: { reason: 'Never found' } })
  t.equal(closed.statusCode, 200)
  t.match(closed.json(), { status: 'closed', closeReason: 'Never found', recovery: null })
  t.ok(closed.json().closedAt)
  t.same(closed.json().risk, { score: 20, level: 'low', factors: [{ code: 'wipe_unconfirmed', points: 15 }, { code: 'outstanding_30d', points: 5 }] })
  t.same(await database.query('SELECT status FROM devices WHERE id = $1', [gone.id]), [{ status: 'lost' }])

  // Frozen: a later edit of the wipe status no longer moves the score.
  const edited = await app.inject({
    method: 'PATCH', url: `/v1/incidents/${b.id}`, headers: { ...headers, 'if-match': '"2"' }, payload: { remoteWipe: 'confirmed' },
  })
  t.equal(edited.statusCode, 200)
  t.equal(edited.json().risk.score, 20, 'score as it stood at closing')
  const listed = await app.inject({ method: 'GET', url: '/v1/incidents?riskLevel=low', headers })
  t.same(listed.json().items.map((i: { id: string }) => i.id), [b.id], 'the level filter reads the frozen score')

  t.same(await database.query("SELECT action FROM audit_events WHERE action NOT LIKE '%reported%' ORDER BY id"), [
    { action: 'incident.recovered' }, { action: 'device.recovered' }, { action: 'incident.closed' }, { action: 'incident.updated' },
  ])
})

t.test('notes: security writes and reads them; an asset manager sees that they exist', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security', 'sam')
  const manager = await auth('asset_manager')
  const device = await insertDevice(database)
  const incident = (await app.inject({ method: 'POST', url: '/v1/incidents', headers: security, payload: reportOf(device.id) })).json()
  const url = `/v1/incidents/${incident.id}/notes`
  const note = await app.inject({ method: 'POST', url, headers: { ...security, 'idempotency-key': 'n1' }, payload: { text: 'Police ref MPS-7' } })
  t.equal(note.statusCode, 201)
  t.match(note.json(), { incidentId: incident.id, text: 'Police ref MPS-7', createdBy: 'sam' })
  const replay = await app.inject({ method: 'POST', url, headers: { ...security, 'idempotency-key': 'n1' }, payload: { text: 'Police ref MPS-7' } })
  t.same(replay.json(), note.json())
  await app.inject({ method: 'POST', url, headers: security, payload: { text: 'Custodian called' } })

  const full = (await app.inject({ method: 'GET', url, headers: security })).json()
  t.same(full.items.map((n: { text: string }) => n.text), ['Police ref MPS-7', 'Custodian called'])
  const redacted = (await app.inject({ method: 'GET', url, headers: manager })).json()
  t.same(redacted.items.map((n: { text: string | null }) => n.text), [null, null])
  assertProblem(t, await app.inject({ method: 'POST', url, headers: manager, payload: { text: 'x' } }), 403)
  assertProblem(t, await app.inject({ method: 'GET', url: `/v1/incidents/${newId()}/notes`, headers: security }), 404)
  assertProblem(t, await app.inject({ method: 'POST', url: `/v1/incidents/${newId()}/notes`, headers: security, payload: { text: 'x' } }), 404)
  t.same(await database.query("SELECT count(*)::int AS n FROM audit_events WHERE action = 'incident.note_added'"), [{ n: 2 }])
})

t.test('roles: asset managers read without free text and cannot write; FOI officers get 403 everywhere', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security')
  const manager = await auth('asset_manager')
  const foi = await auth('foi_officer')
  const [d1, d2] = [await insertDevice(database), await insertDevice(database)]
  const open = (await app.inject({ method: 'POST', url: '/v1/incidents', headers: security, payload: reportOf(d1.id) })).json()
  const other = (await app.inject({ method: 'POST', url: '/v1/incidents', headers: security, payload: reportOf(d2.id, { reportedAt: ago(DAY) }) })).json()
  await app.inject({ method: 'POST', url: `/v1/incidents/${other.id}/recovery`, headers: security, payload: { recoveredAt: ago(0), condition: 'intact', notes: 'In a lost property office' } })
  const third = await insertDevice(database)
  const closing = (await app.inject({ method: 'POST', url: '/v1/incidents', headers: security, payload: reportOf(third.id) })).json()
  await app.inject({ method: 'POST', url: `/v1/incidents/${closing.id}/close`, headers: security, payload: { reason: 'Written off by the Serjeant at Arms' } })

  const one = await app.inject({ method: 'GET', url: `/v1/incidents/${open.id}`, headers: manager })
  t.equal(one.statusCode, 200)
  t.equal(one.json().circumstances, null)
  t.same(one.json().location, { category: 'transit', description: null }, 'the location description is free text too')
  t.notMatch(one.body, /Left on the seat|Jubilee line/)
  const list = await app.inject({ method: 'GET', url: '/v1/incidents', headers: manager })
  t.equal(list.json().items.length, 3)
  for (const item of list.json().items) {
    t.equal(item.circumstances, null)
    t.equal(item.closeReason, null)
    if (item.recovery) t.equal(item.recovery.notes, null)
  }
  t.notMatch(list.body, /Left on the seat|lost property|Serjeant/, 'no free text anywhere in the list')
  const fullList = await app.inject({ method: 'GET', url: '/v1/incidents', headers: security })
  t.match(fullList.body, /Left on the seat/)
  t.match(fullList.body, /lost property/)
  t.match(fullList.body, /Serjeant/)

  const id = open.id
  const writes: [string, string, object][] = [
    ['POST', '/v1/incidents', reportOf(third.id)],
    ['PATCH', `/v1/incidents/${id}`, { policeReference: 'X' }],
    ['POST', `/v1/incidents/${id}/notes`, { text: 'x' }],
    ['POST', `/v1/incidents/${id}/recovery`, { recoveredAt: ago(0), condition: 'intact' }],
    ['POST', `/v1/incidents/${id}/close`, { reason: 'x' }],
  ]
  const reads: [string, string][] = [['GET', '/v1/incidents'], ['GET', `/v1/incidents/${id}`], ['GET', `/v1/incidents/${id}/notes`]]
  const before = await stateOf(database)
  for (const [method, url, payload] of writes) {
    const headers = { ...manager, 'if-match': '"1"' }
    assertProblem(t, await app.inject({ method: method as 'POST', url, headers, payload }), 403)
  }
  for (const [method, url, payload] of [...writes, ...reads.map(([m, u]) => [m, u, undefined] as const)]) {
    const headers = { ...foi, 'if-match': '"1"' }
    const response = await app.inject({ method: method as 'POST', url, headers, ...(payload ? { payload } : {}) })
    assertProblem(t, response, 403)
  }
  t.same(await stateOf(database), before, 'refused writes changed nothing')
})

t.test('list filters, icoOverdue, UK-local dates and keyset pages', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const post = async (deviceId: string, extra: Record<string, unknown>) => {
    const response = await app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(deviceId, extra) })
    t.equal(response.statusCode, 201)
    return response.json()
  }
  const { custodian, device: assigned } = await assignedDevice(database)
  const overdue = await post(assigned.id, { reportedAt: ago(4 * DAY), personalDataAtRisk: true })
  const reported = await post((await insertDevice(database)).id, { reportedAt: ago(4 * DAY), personalDataAtRisk: true })
  await app.inject({
    method: 'PATCH', url: `/v1/incidents/${reported.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { icoReportedAt: ago(3 * DAY) },
  })
  const notYetDue = await post((await insertDevice(database)).id, { reportedAt: ago(DAY), personalDataAtRisk: true })
  const noData = await post((await insertDevice(database, { encrypted: false, classification: 'secret' })).id, {
    reportedAt: ago(5 * DAY), kind: 'stolen',
  })
  // 2023-06-30T23:30Z is 1 July 00:30 in London (BST): it counts in July.
  const summer = await post((await insertDevice(database)).id, { reportedAt: '2023-06-30T23:30:00Z' })

  const ids = async (query: string) => {
    const response = await app.inject({ method: 'GET', url: `/v1/incidents?${query}`, headers })
    t.equal(response.statusCode, 200, query)
    return response.json().items.map((i: { id: string }) => i.id)
  }
  t.same(await ids('icoOverdue=true'), [overdue.id], 'only the overdue one')
  t.same((await ids('icoOverdue=false')).sort(), [reported.id, notYetDue.id, noData.id, summer.id].sort())
  t.same(await ids('kind=stolen'), [noData.id])
  t.same(await ids(`custodianId=${custodian.id}`), [overdue.id])
  t.same(await ids(`deviceId=${assigned.id}`), [overdue.id])
  t.same(await ids('riskLevel=critical'), [noData.id], 'unencrypted + secret + wipe + stolen = 105 → 100')
  t.same(await ids('riskLevel=medium'), [notYetDue.id, reported.id, overdue.id], 'personal data 20 + wipe 15 = 35')
  t.same(await ids('riskLevel=low'), [summer.id], 'wipe 15 + outstanding 5 = 20')
  t.same(await ids('riskLevel=high'), [])
  t.same(await ids('from=2023-07-01&to=2023-07-02'), [summer.id], 'by UK-local day')
  t.same(await ids('from=2023-06-30&to=2023-07-01'), [])
  t.same(await ids('status=open&kind=lost&icoOverdue=true'), [overdue.id])
  t.same(await ids('status=closed'), [])
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/incidents?riskLevel=extreme', headers }), 400)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/incidents?from=2023-07-02&to=2023-07-01', headers }), 400)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/incidents?colour=red', headers }), 400)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/incidents?cursor=nonsense', headers }), 400)

  // Newest reported first, every incident once across pages of 2.
  const seen = await walkPages<{ id: string }>(app, '/v1/incidents?limit=2', headers)
  t.same(seen.items.map((i) => i.id), [notYetDue.id, reported.id, overdue.id, noData.id, summer.id])
})

t.test('the database refuses a second open incident for a device: 409 naming body.deviceId', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const device = await insertDevice(database)
  t.equal((await app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(device.id) })).statusCode, 201)
  // Put the device back in stock behind the service's back: only the unique index is left to object.
  await database.query("UPDATE devices SET status = 'in_stock' WHERE id = $1", [device.id])
  const before = (await database.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events'))[0]!.n
  const second = await app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(device.id) })
  t.equal(assertProblem(t, second, 409).errors[0].path, 'body.deviceId')
  t.same(await database.query('SELECT count(*)::int AS n FROM incidents'), [{ n: 1 }])
  t.same(await database.query('SELECT count(*)::int AS n FROM audit_events'), [{ n: before }])
  const [counter] = await database.query<{ last_number: number }>('SELECT last_number FROM incident_counters')
  t.equal(counter!.last_number, 1, 'the refused report took no number')
})

t.test('reports racing each other and a return on the same device: one story, whoever wins', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const assigned = await Promise.all(Array.from({ length: 6 }, () => assignedDevice(database)))
  const responses = await Promise.all(
    assigned.flatMap(({ device }) => [
      app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(device.id) }),
      app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(device.id, { kind: 'stolen' }) }),
      app.inject({ method: 'POST', url: `/v1/devices/${device.id}/return`, headers, payload: {} }),
    ]),
  )
  for (const [i, { device, custodian }] of assigned.entries()) {
    const [lost, stolen, returned] = responses.slice(i * 3, i * 3 + 3)
    const reports = [lost!, stolen!].filter((r) => r.statusCode === 201)
    t.equal(reports.length, 1, 'exactly one report of the device is taken')
    for (const r of [lost!, stolen!, returned!]) t.ok([200, 201, 409].includes(r.statusCode), `status ${r.statusCode}`)
    const incident = reports[0]!.json()
    const [assignment] = await database.query<{ ended_by: string | null; returned_at: Date | null }>(
      'SELECT ended_by, returned_at FROM assignments WHERE device_id = $1',
      [device.id],
    )
    t.ok(assignment!.returned_at, 'the assignment has ended')
    if (returned!.statusCode === 200) {
      t.equal(incident.custodianId, null, 'returned first: the report finds no custodian')
      t.equal(assignment!.ended_by, null, 'and the return ended the assignment')
    } else {
      t.equal(incident.custodianId, custodian.id, 'reported first: the custodian is in the snapshot')
      t.equal(assignment!.ended_by, 'incident', 'and the report ended the assignment')
    }
    const events = await database.query<{ action: string }>('SELECT action FROM audit_events WHERE entity_id = $1 ORDER BY id', [device.id])
    t.equal(events.filter((e) => e.action.startsWith('device.reported_')).length, 1, 'one report event for the device')
  }
  const [counter] = await database.query<{ last_number: number }>('SELECT last_number FROM incident_counters')
  t.equal(counter!.last_number, 6, 'one number per incident, none lost to a refused report')
})

/**
 * On PostgreSQL, holds the year's counter row while `start()` sends its requests, so the first
 * report's transaction waits on it and every other report queues behind it; released once the first
 * is seen waiting and the others have had time to queue. On PGlite (one connection) it just starts.
 */
async function withCounterHeld<T>(database: Database, year: number, start: () => Promise<T>): Promise<T> {
  if (driverUnderTest !== 'postgres') return start()
  let locked!: () => void
  let release!: () => void
  const isLocked = new Promise<void>((resolve) => (locked = resolve))
  const released = new Promise<void>((resolve) => (release = resolve))
  const holding = database.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT 1 FROM incident_counters WHERE year = ${year} FOR UPDATE`)
    locked()
    await released
  })
  await isLocked
  const requests = start()
  const [{ name }] = (await database.query<{ name: string }>('SELECT current_database() AS name')) as [{ name: string }]
  await waitForLockWaiters((text, params) => database.query(text, params), name, 1)
  await new Promise((resolve) => setTimeout(resolve, 500))
  release()
  await holding
  return requests
}

t.test('reports arriving together are written together: one transaction, each its own number and events', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const reportedAt = '2023-06-01T09:00:00Z'
  const report = (deviceId: string) => app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(deviceId, { reportedAt }) })
  t.equal((await report((await insertDevice(database)).id)).json().reference, 'INC-2023-0001')
  const assigned = await Promise.all(Array.from({ length: 4 }, () => assignedDevice(database)))
  const inStock = await Promise.all(Array.from({ length: 4 }, () => insertDevice(database)))
  const devices = [...assigned.map((a) => a.device), ...inStock]

  const responses = await withCounterHeld(database, 2023, () => Promise.all(devices.map((device) => report(device.id))))
  t.same(responses.map((r) => r.statusCode), devices.map(() => 201))
  const incidents = responses.map((r) => r.json())
  t.same(incidents.map((i) => i.reference).sort(), [2, 3, 4, 5, 6, 7, 8, 9].map((n) => `INC-2023-000${n}`), 'consecutive, after the first')
  t.same(incidents.map((i) => i.deviceId), devices.map((d) => d.id), 'each answer is its own report')
  t.same(incidents.map((i) => i.custodianId), [...assigned.map((a) => a.custodian.id), null, null, null, null], 'each its own snapshot')

  const stored = await database.query<{ id: string; reference: string; device_id: string }>('SELECT id, reference, device_id FROM incidents')
  for (const incident of incidents) {
    t.ok(stored.some((s) => s.id === incident.id && s.reference === incident.reference && s.device_id === incident.deviceId), `${incident.reference} stored as answered`)
    const events = await withValues(database, await database.query<{ id: number; action: string; entity_id: string; after: Record<string, unknown> }>(
      'SELECT id::int AS id, action, entity_id, after FROM audit_events WHERE request_id IS NOT NULL AND (entity_id = $1 OR entity_id = $2) ORDER BY id',
      [incident.id, incident.deviceId],
    ))
    t.same(events.map((e) => e.action), ['incident.reported', 'device.reported_lost'], 'its two events, in order')
    t.same(events[0]!.after, incident, "the incident's event holds the incident as answered, reference and all")
    t.notOk('reference' in events[1]!.after, "the device's event is the device's")
  }
  const assignmentsLeft = await database.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM assignments WHERE returned_at IS NULL OR ended_by IS DISTINCT FROM $1',
    ['incident'],
  )
  t.same(assignmentsLeft, [{ n: 0 }], 'every open assignment ended by its report')
  if (driverUnderTest === 'postgres') {
    const [written] = await database.query<{ n: number }>('SELECT count(DISTINCT xmin::text)::int AS n FROM incidents WHERE reference > $1', ['INC-2023-0001'])
    t.comment(`8 reports written in ${written!.n} statements`)
    t.ok(written!.n < 8, 'reports that waited together were written in fewer statements than reports')
  }
})

t.test("one report's failure in a shared transaction is its own: the others are written, no number is lost", async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const reportedAt = '2023-06-01T09:00:00Z'
  const report = (deviceId: string) => app.inject({ method: 'POST', url: '/v1/incidents', headers, payload: reportOf(deviceId, { reportedAt }) })
  const broken = await insertDevice(database)
  t.equal((await report(broken.id)).statusCode, 201)
  // Back in stock behind the service's back: its report passes the lifecycle check and fails on
  // the one-open-incident index, inside whichever transaction it shares.
  await database.query("UPDATE devices SET status = 'in_stock' WHERE id = $1", [broken.id])
  const devices = await Promise.all(Array.from({ length: 6 }, () => insertDevice(database)))
  const order = [devices[0]!, devices[1]!, devices[2]!, broken, devices[3]!, devices[4]!, devices[5]!]

  const responses = await withCounterHeld(database, 2023, () => Promise.all(order.map((device) => report(device.id))))
  t.same(responses.map((r) => r.statusCode), [201, 201, 201, 409, 201, 201, 201])
  t.equal(assertProblem(t, responses[3]!, 409).errors[0].path, 'body.deviceId')
  t.same(responses.filter((r) => r.statusCode === 201).map((r) => r.json().reference).sort(), [2, 3, 4, 5, 6, 7].map((n) => `INC-2023-000${n}`))
  t.same(await database.query('SELECT last_number FROM incident_counters'), [{ last_number: 7 }], 'no number taken by the refused one')
  t.same(await database.query('SELECT count(*)::int AS n FROM incidents WHERE device_id = $1', [broken.id]), [{ n: 1 }])
  t.same(await database.query("SELECT count(*)::int AS n FROM audit_events WHERE action = 'incident.reported'"), [{ n: 7 }])
})
