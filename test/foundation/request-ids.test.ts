/**
 * Request ids: the id a request is known by (its log lines, its audit events) is always the
 * server's own; a client's x-request-id is echoed, logged as its own field and recorded beside the
 * server's id, never instead of it, so a client cannot make its change pass for another request's.
 */
import t from 'tap'
import { IMPORT_COLUMNS } from '../../src/modules/devices/import/parse.js'
import { buildTestApp } from '../helpers/app.js'
import { insertDevice } from '../helpers/fixtures.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface EventRow {
  action: string
  request_id: string
  client_request_id: string | null
}

t.test('the client id is echoed and logged beside the server id, which is a fresh UUID on every request', async (t) => {
  const { app, logs } = await buildTestApp(t)
  const responses = [
    await app.inject({ method: 'GET', url: '/openapi.json', headers: { 'x-request-id': 'client-chosen-1' } }),
    await app.inject({ method: 'GET', url: '/openapi.json', headers: { 'x-request-id': 'client-chosen-1' } }),
  ]
  for (const response of responses) t.equal(response.headers['x-request-id'], 'client-chosen-1', 'echoed as given')
  const lines = logs.filter((line) => line.clientRequestId === 'client-chosen-1')
  t.equal(lines.length, 2, 'one line per request, each with the client id as its own field')
  for (const line of lines) t.match(line.requestId, UUID, 'the line\'s request id is the server\'s own')
  t.not(lines[0]!.requestId, lines[1]!.requestId, 'two requests, two server ids, whatever the client sent')

  const none = await app.inject({ method: 'GET', url: '/openapi.json' })
  const serverId = String(none.headers['x-request-id'])
  t.match(serverId, UUID, 'with no client id, the response names the server id')
  const line = logs.find((entry) => entry.requestId === serverId)
  t.ok(line, 'and the log line carries it')
  t.notOk('clientRequestId' in line!, 'no client id field when the client sent none')

  for (const odd of ['has space', 'x'.repeat(129), 'line\nbreak', '']) {
    const response = await app.inject({ method: 'GET', url: '/openapi.json', headers: { 'x-request-id': odd } })
    t.match(String(response.headers['x-request-id']), UUID, `not plain and short (${JSON.stringify(odd.slice(0, 12))}): not echoed`)
  }
  t.same([...new Set(logs.map((entry) => entry.clientRequestId).filter((id) => id !== undefined))], ['client-chosen-1'], 'nor logged')
})

t.test('two writes with the same client x-request-id get distinct server request ids in the audit trail, each with the client id beside it', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const asManager = { ...(await auth('asset_manager', 'manager')), 'x-request-id': 'reused-id' }
  const asSecurity = { ...(await auth('security', 'security')), 'x-request-id': 'reused-id' }

  // One write through each way events are written: recordAudit, an import statement, an incident report.
  const first = await app.inject({ method: 'POST', url: '/v1/custodians', headers: asManager, payload: { kind: 'staff', name: 'First' } })
  const second = await app.inject({ method: 'POST', url: '/v1/custodians', headers: asManager, payload: { kind: 'staff', name: 'Second' } })
  t.equal(first.statusCode, 201)
  t.equal(second.statusCode, 201)
  const row = ['PA-R0000001', 'laptop', 'Dell', 'Latitude', 'RID-1', '', 'true', 'true', 'official', '', '']
  const imported = await app.inject({
    method: 'POST', url: '/v1/devices/import', headers: { ...asManager, 'content-type': 'text/csv' }, payload: `${IMPORT_COLUMNS.join(',')}\n${row.join(',')}\n`,
  })
  t.equal(imported.statusCode, 201, imported.body)
  const device = await insertDevice(database)
  const reported = await app.inject({
    method: 'POST', url: '/v1/incidents', headers: asSecurity,
    payload: { deviceId: device.id, kind: 'lost', location: { category: 'transit' }, circumstances: 'Left on a train.', personalDataAtRisk: false },
  })
  t.equal(reported.statusCode, 201, reported.body)
  // And one without a client id.
  const anonymous = await app.inject({ method: 'POST', url: '/v1/custodians', headers: await auth('asset_manager'), payload: { kind: 'staff', name: 'Third' } })
  t.equal(anonymous.statusCode, 201)

  const events = await database.query<EventRow>('SELECT action, request_id, client_request_id FROM audit_events ORDER BY id')
  t.same(events.map((event) => event.action), ['custodian.created', 'custodian.created', 'device.created', 'incident.reported', 'device.reported_lost', 'custodian.created'])
  const named = events.slice(0, 5)
  for (const event of named) {
    t.match(event.request_id, UUID, `${event.action}: the server's id`)
    t.equal(event.client_request_id, 'reused-id', `${event.action}: the client's id beside it`)
  }
  t.equal(new Set(named.map((event) => event.request_id)).size, 4, 'four requests, four server ids (a report writes two events)')
  t.equal(named[3]!.request_id, named[4]!.request_id, 'the two events of one report share its id')
  t.match(events[5], { request_id: anonymous.headers['x-request-id'], client_request_id: null }, 'no client id: the server id, echoed, and null beside it')

  const listed = await app.inject({ method: 'GET', url: '/v1/audit-events?entityType=custodian', headers: await auth('security') })
  t.equal(listed.statusCode, 200)
  t.match(listed.json().items, [{ clientRequestId: null }, { clientRequestId: 'reused-id' }, { clientRequestId: 'reused-id' }], 'the list shows the client id')
  const verified = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: await auth('security') })
  t.match(verified.json(), { ok: true, checked: 6 }, 'the chain covers the client id and verifies')

  // The client id is part of the hashed content: changing it is found. (Only someone who can
  // disable the trigger, a superuser as these tests are, can do this.)
  await database.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_or_delete')
  await database.query("UPDATE audit_events SET client_request_id = 'someone-else' WHERE id = (SELECT min(id) FROM audit_events)")
  await database.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_or_delete')
  const after = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: await auth('security') })
  t.match(after.json(), { ok: false, checked: 0 }, 'a changed client id breaks the chain at that event')
})
