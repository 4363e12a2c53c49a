import t from 'tap'
import { recordAudit } from '../../src/modules/audit/trail.js'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice, insertIncident } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'
import { walkPages } from '../helpers/pages.js'

const device = {
  assetTag: 'PA-TL00001', kind: 'phone', make: 'Apple', model: 'iPhone 15', serialNumber: 'TL-SERIAL-1',
  imei: '356938035643809', encrypted: true, mdmEnrolled: true, classification: 'official',
}

t.test('the timeline shows every action on the device, newest first, without free text', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'dana')
  const custodian = await insertCustodian(database, { name: 'Alex Example' })
  const other = await insertDevice(database)

  const created = (await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: device })).json()
  const url = `/v1/devices/${created.id}`
  t.equal((await app.inject({ method: 'PATCH', url, headers: { ...headers, 'if-match': '"1"' }, payload: { model: 'iPhone 15 Pro' } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: `${url}/assignment`, headers, payload: { custodianId: custodian.id } })).statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: `${url}/return`, headers })).statusCode, 200)
  // Another device's events never show.
  t.equal((await app.inject({ method: 'POST', url: `/v1/devices/${other.id}/assignment`, headers, payload: { custodianId: custodian.id } })).statusCode, 201)

  // A stocktake sighting, as the stocktakes module records it.
  const [stocktake] = await database.query<{ id: string }>(
    "INSERT INTO stocktakes (name, created_by) VALUES ('Commons spring 2025', 'erin') RETURNING id",
  )
  await database.query(
    "INSERT INTO stocktake_scans (stocktake_id, identifier_type, identifier, device_id, seen_at, location, created_by) VALUES ($1, 'asset_tag', 'pa-tl00001', $2, now(), 'Room SECRET-LOCATION', 'erin')",
    [stocktake!.id, created.id],
  )
  // An incident and its note, as the incidents module records them (row plus audit events).
  const incident = await insertIncident(database, {
    deviceId: created.id, reference: 'INC-2025-0001', circumstances: 'SECRET-CIRCUMSTANCES', custodianId: custodian.id, createdBy: 'sec',
  })
  const context = { actor: 'sec', requestId: 'test' }
  await recordAudit(database.db, context, [
    { action: 'incident.reported', entityType: 'incident', entityId: incident.id, after: { circumstances: 'SECRET-CIRCUMSTANCES' } },
    { action: 'device.reported_lost', entityType: 'device', entityId: created.id, after: { status: 'lost' } },
  ])
  await recordAudit(database.db, context, { action: 'incident.note_added', entityType: 'incident', entityId: incident.id, after: { text: 'SECRET-NOTE' } })

  const response = await app.inject({ method: 'GET', url: `${url}/timeline`, headers })
  t.equal(response.statusCode, 200)
  const timeline = response.json()
  const items = timeline.items as { at: string; type: string; summary: string; actor: string; entityType: string; entityId: string }[]
  t.same(
    items.map((item) => item.type),
    ['note_added', 'reported_lost', 'incident_reported', 'seen_in_stocktake', 'returned', 'assigned', 'updated', 'created'],
  )
  t.same(
    items.map((item) => item.summary),
    [
      'Incident INC-2025-0001: note added',
      'Reported lost',
      'Incident INC-2025-0001 reported (lost)',
      'Seen in stocktake Commons spring 2025',
      'Returned by Alex Example',
      'Assigned to Alex Example',
      'Details changed: model',
      'Added to the register',
    ],
  )
  t.match(items[0], { entityType: 'incident', entityId: incident.id, actor: 'sec' })
  t.match(items[3], { entityType: 'stocktake', entityId: stocktake!.id, actor: 'erin' })
  t.match(items[5], { entityType: 'device', entityId: created.id, actor: 'dana', custodianId: custodian.id })
  for (let i = 1; i < items.length; i++) t.ok(items[i - 1]!.at >= items[i]!.at, 'newest first')
  t.notMatch(response.body, /SECRET/, 'no free text for asset managers')
  const asSecurity = await app.inject({ method: 'GET', url: `${url}/timeline`, headers: await auth('security') })
  t.notMatch(asSecurity.body, /SECRET/, 'the timeline never carries free text')

  // Keyset pages walk the same events once each.
  const walked = (await walkPages<{ id: string }>(app, `${url}/timeline?limit=3`, headers)).items.map((item) => item.id)
  t.same(walked, timeline.items.map((item: { id: string }) => item.id))
  t.equal(new Set(walked).size, items.length)

  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/devices/0190d3c0-0000-7000-8000-000000000000/timeline', headers }), 404)
  assertProblem(t, await app.inject({ method: 'GET', url: `${url}/timeline?cursor=garbage`, headers }), 400)
  assertProblem(t, await app.inject({ method: 'GET', url: `${url}/timeline`, headers: await auth('foi_officer') }), 403)
})
