import t from 'tap'
import { problemRules } from '../../src/app.js'
import { toProblem } from '../../src/plugins/problems.js'
import '../../src/modules/assignments/service.js'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'

const NO_SUCH_ID = '0190d3c0-0000-7000-8000-000000000000'

t.test('assign then return: device status, custodian, history and audit events', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'carol')
  const custodian = await insertCustodian(database, { name: 'Alex Example' })
  const device = await insertDevice(database)

  const assigned = await app.inject({
    method: 'POST', url: `/v1/devices/${device.id}/assignment`, headers, payload: { custodianId: custodian.id, assignedAt: '2024-02-01T09:00:00Z' },
  })
  t.equal(assigned.statusCode, 201)
  const assignment = assigned.json()
  t.match(assignment, { deviceId: device.id, custodianId: custodian.id, assignedAt: '2024-02-01T09:00:00.000Z', returnedAt: null, createdBy: 'carol' })
  let read = (await app.inject({ method: 'GET', url: `/v1/devices/${device.id}`, headers })).json()
  t.match(read, { status: 'assigned', currentCustodianId: custodian.id, version: 2 })
  const held = (await app.inject({ method: 'GET', url: `/v1/devices?custodianId=${custodian.id}`, headers })).json()
  t.same(held.items.map((d: { id: string }) => d.id), [device.id])

  const early = await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/return`, headers, payload: { returnedAt: '2024-01-31T09:00:00Z' } })
  t.equal(assertProblem(t, early, 422).errors[0].path, 'body.returnedAt')

  const returned = await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/return`, headers, payload: { returnedAt: '2024-03-01T17:00:00Z' } })
  t.equal(returned.statusCode, 200)
  t.match(returned.json(), { id: assignment.id, returnedAt: '2024-03-01T17:00:00.000Z' })
  read = (await app.inject({ method: 'GET', url: `/v1/devices/${device.id}`, headers })).json()
  t.match(read, { status: 'in_stock', currentCustodianId: null, version: 3 })

  const notAssigned = assertProblem(t, await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/return`, headers, payload: {} }), 409)
  t.match(notAssigned.detail, /in_stock/)

  // Handed out again before the last return: the history would overlap.
  const overlap = await app.inject({
    method: 'POST', url: `/v1/devices/${device.id}/assignment`, headers, payload: { custodianId: custodian.id, assignedAt: '2024-02-15T09:00:00Z' },
  })
  t.equal(assertProblem(t, overlap, 422).errors[0].path, 'body.assignedAt')

  // No body at all: assigned now; returned now.
  const again = await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/assignment`, headers, payload: { custodianId: custodian.id } })
  t.equal(again.statusCode, 201)
  t.ok(Math.abs(Date.parse(again.json().assignedAt) - Date.now()) < 60_000)
  const bare = await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/return`, headers })
  t.equal(bare.statusCode, 200)
  t.ok(bare.json().returnedAt >= again.json().assignedAt)

  const history = (await app.inject({ method: 'GET', url: `/v1/devices/${device.id}/assignments`, headers })).json()
  t.same(history.items.map((a: { id: string }) => a.id), [again.json().id, assignment.id], 'newest first')
  const custodianHistory = (await app.inject({ method: 'GET', url: `/v1/custodians/${custodian.id}/assignments?limit=1`, headers })).json()
  t.same(custodianHistory.items.map((a: { id: string }) => a.id), [again.json().id])
  const page2 = (
    await app.inject({ method: 'GET', url: `/v1/custodians/${custodian.id}/assignments?limit=1&cursor=${custodianHistory.nextCursor}`, headers })
  ).json()
  t.same(page2, { items: [{ ...assignment, returnedAt: '2024-03-01T17:00:00.000Z' }], nextCursor: null })
  assertProblem(t, await app.inject({ method: 'GET', url: `/v1/devices/${NO_SUCH_ID}/assignments`, headers }), 404)
  assertProblem(t, await app.inject({ method: 'GET', url: `/v1/custodians/${NO_SUCH_ID}/assignments`, headers }), 404)

  const events = await database.query<{ action: string; entity_id: string; custodian: string | null }>(
    "SELECT action, entity_id, coalesce(after->>'currentCustodianId', before->>'currentCustodianId') AS custodian FROM audit_events ORDER BY id",
  )
  t.same(events, [
    { action: 'device.assigned', entity_id: device.id, custodian: custodian.id },
    { action: 'device.returned', entity_id: device.id, custodian: custodian.id },
    { action: 'device.assigned', entity_id: device.id, custodian: custodian.id },
    { action: 'device.returned', entity_id: device.id, custodian: custodian.id },
  ])
})

t.test('assignment refusals: unknown ids, inactive custodians, devices not in stock, bad times, strict body', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const active = await insertCustodian(database)
  const left = await insertCustodian(database, { active: false, leftOn: '2024-07-04' })
  const device = await insertDevice(database)
  const assign = (id: string, payload: unknown) => app.inject({ method: 'POST', url: `/v1/devices/${id}/assignment`, headers, payload: payload as object })

  t.equal(assertProblem(t, await assign(device.id, { custodianId: NO_SUCH_ID }), 422).errors[0].path, 'body.custodianId')
  assertProblem(t, await assign(NO_SUCH_ID, { custodianId: active.id }), 404)
  const inactive = assertProblem(t, await assign(device.id, { custodianId: left.id }), 409)
  t.equal(inactive.errors[0].path, 'body.custodianId')
  for (const status of ['lost', 'stolen', 'retired'] as const) {
    const unavailable = await insertDevice(database, { status })
    t.match(assertProblem(t, await assign(unavailable.id, { custodianId: active.id }), 409).detail, new RegExp(status))
  }
  const future = new Date(Date.now() + 3_600_000).toISOString()
  t.equal(assertProblem(t, await assign(device.id, { custodianId: active.id, assignedAt: future }), 400).errors[0].path, 'body.assignedAt')
  t.equal(assertProblem(t, await assign(device.id, { custodianId: active.id, assignedAt: '2024-01-01' }), 400).errors[0].path, 'body.assignedAt')
  t.equal(assertProblem(t, await assign(device.id, { custodianId: active.id, status: 'assigned' }), 400).errors[0].path, 'body.status')
  t.equal(assertProblem(t, await assign(device.id, { custodianId: 'someone' }), 400).errors[0].path, 'body.custodianId')
  const returnFuture = await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/return`, headers, payload: { returnedAt: future } })
  t.equal(assertProblem(t, returnFuture, 400).errors[0].path, 'body.returnedAt')

  t.equal((await assign(device.id, { custodianId: active.id })).statusCode, 201, 'the good request still works')
  t.match(assertProblem(t, await assign(device.id, { custodianId: active.id }), 409).detail, /assigned/)
  const open = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM assignments WHERE returned_at IS NULL')
  t.equal(open[0]!.n, 1)
  const foi = await auth('foi_officer')
  assertProblem(t, await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/assignment`, headers: foi, payload: { custodianId: active.id } }), 403)
})

t.test('12 concurrent assignments of one device: exactly one succeeds', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const device = await insertDevice(database)
  const custodians = await Promise.all(Array.from({ length: 12 }, () => insertCustodian(database)))
  const responses = await Promise.all(
    custodians.map((custodian) =>
      app.inject({ method: 'POST', url: `/v1/devices/${device.id}/assignment`, headers, payload: { custodianId: custodian.id } }),
    ),
  )
  const codes = responses.map((r) => r.statusCode).sort()
  t.same(codes, [201, ...Array(11).fill(409)])
  const winner = responses.find((r) => r.statusCode === 201)!.json()
  const open = await database.query<{ custodian_id: string }>('SELECT custodian_id FROM assignments WHERE device_id = $1 AND returned_at IS NULL', [device.id])
  t.same(open, [{ custodian_id: winner.custodianId }])
  const [row] = await database.query<{ status: string; current_custodian_id: string }>(
    'SELECT status, current_custodian_id FROM devices WHERE id = $1', [device.id],
  )
  t.same(row, { status: 'assigned', current_custodian_id: winner.custodianId })
  const events = await database.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'device.assigned'")
  t.equal(events[0]!.n, 1)
})

t.test('the database refuses a second open assignment, and that is a 409', async (t) => {
  const { database } = await buildTestApp(t)
  const device = await insertDevice(database)
  const custodian = await insertCustodian(database)
  const insert = `INSERT INTO assignments (device_id, custodian_id, assigned_at, created_by) VALUES ($1, $2, now(), 'test')`
  await database.query(insert, [device.id, custodian.id])
  const error = await database.query(insert, [device.id, custodian.id]).then(() => undefined, (e: unknown) => e)
  t.ok(error, 'the second insert fails')
  const problem = toProblem(error, problemRules)
  t.equal(problem?.status, 409)
  t.equal(problem?.errors?.[0]?.path, 'path.id')
})

t.test('unreturned report: devices still with custodians who are inactive or have left', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const staying = await insertCustodian(database, { name: 'Still Here' })
  const leaver = await insertCustodian(database, { name: 'Former Member' })
  const paused = await insertCustodian(database, { name: 'Paused Staff', kind: 'staff', house: null })
  const assign = (deviceId: string, custodianId: string) =>
    app.inject({ method: 'POST', url: `/v1/devices/${deviceId}/assignment`, headers, payload: { custodianId, assignedAt: '2024-01-10T10:00:00Z' } })
  const kept = await insertDevice(database)
  const withLeaver = await insertDevice(database)
  const returnedByLeaver = await insertDevice(database)
  const withPaused = await insertDevice(database)
  for (const [d, c] of [[kept, staying], [withLeaver, leaver], [returnedByLeaver, leaver], [withPaused, paused]] as const) {
    t.equal((await assign(d.id, c.id)).statusCode, 201)
  }
  t.equal((await app.inject({ method: 'POST', url: `/v1/devices/${returnedByLeaver.id}/return`, headers })).statusCode, 200)

  const empty = (await app.inject({ method: 'GET', url: '/v1/reports/unreturned', headers })).json()
  t.same(empty, { items: [], nextCursor: null }, 'nobody has left yet')

  const leftOn = '2024-07-04'
  const leave = await app.inject({ method: 'PATCH', url: `/v1/custodians/${leaver.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { leftOn } })
  t.equal(leave.statusCode, 200)
  const pause = await app.inject({ method: 'PATCH', url: `/v1/custodians/${paused.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { active: false } })
  t.equal(pause.statusCode, 200)

  const report = (await app.inject({ method: 'GET', url: '/v1/reports/unreturned', headers })).json()
  const expectedDays = Math.round((Date.parse(new Date().toISOString().slice(0, 10)) - Date.parse(leftOn)) / 86_400_000)
  t.equal(report.items.length, 2)
  t.match(report.items[0], {
    device: { id: withLeaver.id, assetTag: withLeaver.assetTag, serialNumber: withLeaver.serialNumber },
    custodian: { id: leaver.id, name: 'Former Member', active: false, leftOn },
    since: '2024-01-10T10:00:00.000Z',
  })
  t.ok(Math.abs(report.items[0].daysSinceLeaving - expectedDays) <= 1, `about ${expectedDays} days since leaving`)
  t.match(report.items[1], { device: { id: withPaused.id }, custodian: { id: paused.id, active: false, leftOn: null }, daysSinceLeaving: null })

  const first = (await app.inject({ method: 'GET', url: '/v1/reports/unreturned?limit=1', headers })).json()
  const second = (await app.inject({ method: 'GET', url: `/v1/reports/unreturned?limit=1&cursor=${first.nextCursor}`, headers })).json()
  t.same([...first.items, ...second.items], report.items)
  t.equal(second.nextCursor, null)

  t.equal((await app.inject({ method: 'GET', url: '/v1/reports/unreturned', headers: await auth('security') })).statusCode, 200)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/reports/unreturned', headers: await auth('foi_officer') }), 403)
})
