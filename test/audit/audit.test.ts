/**
 * The audit trail: one event per committed change (none for a rolled-back one), a hash chain that
 * shows tampering, and the security-only list with its filters and keyset pages.
 */
import t from 'tap'
import type { Database } from '../../src/db/client.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'
import { walkPages } from '../helpers/pages.js'
import { insertDatedEvent, withValues } from '../helpers/audit-events.js'

interface EventRow {
  id: number
  actor: string
  action: string
  entity_type: string
  entity_id: string
  request_id: string | null
  before: unknown
  after: unknown
}

const events = async (database: Database) =>
  withValues(database, await database.query<EventRow>('SELECT id::int AS id, actor, action, entity_type, entity_id, request_id, before, after FROM audit_events ORDER BY id'))

async function createCustodian(app: TestApp['app'], headers: Record<string, string>, name: string) {
  const response = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name } })
  if (response.statusCode !== 201) throw new Error(`create failed: ${response.body}`)
  return response
}

t.test('one event per committed change, with actor, request id, before and after', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'alice@parliament')

  const created = await app.inject({
    method: 'POST', url: '/v1/custodians', headers: { ...headers, 'x-request-id': 'req-create-1' }, payload: { kind: 'mp', name: 'Ann Member' },
  })
  t.equal(created.statusCode, 201)
  t.equal(created.headers['x-request-id'], 'req-create-1')
  const custodian = created.json()

  // No x-request-id given: the service picks one and says which in the response header.
  const updated = await app.inject({
    method: 'PATCH', url: `/v1/custodians/${custodian.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { name: 'Ann Member MP' },
  })
  t.equal(updated.statusCode, 200)
  const generatedId = String(updated.headers['x-request-id'])
  t.match(generatedId, /^[0-9a-f-]{36}$/)

  const rows = await events(database)
  // The client's x-request-id is recorded beside the server's own id, never instead of it.
  t.match(rows[0]?.request_id, /^[0-9a-f-]{36}$/)
  t.same(await database.query('SELECT client_request_id FROM audit_events ORDER BY id'), [{ client_request_id: 'req-create-1' }, { client_request_id: null }])
  t.same(rows.map(({ id: _id, ...event }) => event), [
    {
      actor: 'alice@parliament', action: 'custodian.created', entity_type: 'custodian', entity_id: custodian.id,
      request_id: rows[0]?.request_id, before: null, after: custodian,
    },
    {
      actor: 'alice@parliament', action: 'custodian.updated', entity_type: 'custodian', entity_id: custodian.id,
      request_id: generatedId, before: custodian, after: updated.json(),
    },
  ])

  const listed = await app.inject({ method: 'GET', url: `/v1/audit-events?entityId=${custodian.id}`, headers: await auth('security') })
  t.equal(listed.statusCode, 200)
  const items = listed.json().items
  t.same(items.map((event: { action: string }) => event.action), ['custodian.updated', 'custodian.created'], 'newest first')
  t.match(items[0], { actor: 'alice@parliament', entityType: 'custodian', requestId: generatedId, before: { name: 'Ann Member' }, after: { name: 'Ann Member MP', version: 2 } })
  t.match(items[0].at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/)
  t.equal(items[0].prevHash, items[1].hash, 'each event links to the one before')
  t.equal(items[1].prevHash, null, 'the first event starts the chain')
})

t.test('a change that is rolled back leaves no event', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const custodian = (await createCustodian(app, headers, 'Kept Staff')).json()
  const before = await events(database)
  t.equal(before.length, 1)

  // Refused inside the transaction (a rule across fields, checked after the row was read).
  const invalid = await app.inject({
    method: 'PATCH', url: `/v1/custodians/${custodian.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { active: true, leftOn: '2024-01-01' },
  })
  assertProblem(t, invalid, 400)
  const stale = await app.inject({
    method: 'PATCH', url: `/v1/custodians/${custodian.id}`, headers: { ...headers, 'if-match': '"5"' }, payload: { name: 'Changed' },
  })
  assertProblem(t, stale, 412)
  const missing = await app.inject({
    method: 'PATCH', url: '/v1/custodians/0190d3c0-0000-7000-8000-000000000000', headers: { ...headers, 'if-match': '"1"' }, payload: { name: 'X' },
  })
  assertProblem(t, missing, 404)
  const refusedCreate = await app.inject({
    method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'Future Leaver', leftOn: '2999-01-01' },
  })
  assertProblem(t, refusedCreate, 400)

  t.same(await events(database), before, 'still only the create event')
  t.same(await database.query('SELECT name, version FROM custodians'), [{ name: 'Kept Staff', version: 1 }])
})

t.test('the hash chain: intact is ok, an edited event is found', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security')
  const verify = async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: security })
    t.equal(response.statusCode, 200)
    return response.json()
  }
  t.match(await verify(), { ok: true, checked: 0, firstBadId: null }, 'an empty trail is intact')
  for (const name of ['First', 'Second', 'Third']) await createCustodian(app, security, name)
  const rows = await events(database)
  t.equal(rows.length, 3)
  t.match(await verify(), { ok: true, checked: 3, firstBadId: null })

  // Only someone who can disable the trigger (a superuser, as these tests are) can do this.
  const second = rows[1]!
  await database.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_or_delete')
  await database.query(`UPDATE audit_events SET after = jsonb_set(after, '{name}', '"Someone Else"') WHERE id = $1`, [second.id])
  await database.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_or_delete')
  await t.rejects(database.query('UPDATE audit_events SET actor = $1', ['x']), { code: '42501' }, 'the trigger is back')

  t.match(await verify(), { ok: false, checked: 1, firstBadId: second.id })
})

t.test('the chain stays linear when writes race', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const security = await auth('security')
  const responses = await Promise.all(
    Array.from({ length: 12 }, (_, i) => app.inject({ method: 'POST', url: '/v1/custodians', headers: security, payload: { kind: 'staff', name: `Racer ${i}` } })),
  )
  t.same(responses.map((response) => response.statusCode), Array(12).fill(201))
  const verdict = (await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: security })).json()
  t.match(verdict, { ok: true, checked: 12, firstBadId: null })
})

/** Inserts an event as a write stores it: the event, and its place in the queue to be linked. */

t.test('filters: entityType, entityId, actor, and UK-day from/to', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const a = '0190d3c0-0000-7000-8000-00000000000a'
  const b = '0190d3c0-0000-7000-8000-00000000000b'
  const ids = {
    // 23:30 UTC on 30 June is 00:30 BST on 1 July: a 1 July event in UK time.
    bstEdge: await insertDatedEvent(database, { at: '2024-06-30T23:30:00Z', actor: 'alice', entityType: 'custodian', entityId: a }),
    // 22:59 UTC on 30 June is 23:59 BST on 30 June.
    beforeBst: await insertDatedEvent(database, { at: '2024-06-30T22:59:00Z', actor: 'bob', entityType: 'device', entityId: b }),
    winter: await insertDatedEvent(database, { at: '2024-01-15T00:30:00Z', actor: 'alice', entityType: 'device', entityId: b }),
    later: await insertDatedEvent(database, { at: '2024-07-02T12:00:00Z', actor: 'carol', entityType: 'custodian', entityId: a }),
  }
  const list = async (query: string) => {
    const response = await app.inject({ method: 'GET', url: `/v1/audit-events?${query}`, headers })
    t.equal(response.statusCode, 200, query)
    return response.json().items.map((event: { id: number }) => event.id)
  }
  t.same(await list(''), [ids.later, ids.winter, ids.beforeBst, ids.bstEdge], 'all, newest id first')
  t.same(await list('entityType=device'), [ids.winter, ids.beforeBst])
  t.same(await list(`entityId=${a}`), [ids.later, ids.bstEdge])
  t.same(await list('actor=alice'), [ids.winter, ids.bstEdge])
  t.same(await list('actor=alice&entityType=custodian'), [ids.bstEdge], 'filters combine')
  t.same(await list('from=2024-07-01'), [ids.later, ids.bstEdge], 'from is inclusive, in UK local time')
  t.same(await list('to=2024-07-01'), [ids.winter, ids.beforeBst], 'to is exclusive, in UK local time')
  t.same(await list('from=2024-07-01&to=2024-07-02'), [ids.bstEdge], 'one UK day')
  t.same(await list('from=2024-01-15&to=2024-01-16'), [ids.winter], 'a GMT day')
  t.same(await list('actor=nobody'), [])

  const foreignCursor = Buffer.from(JSON.stringify(['abc'])).toString('base64url')
  for (const query of ['entityType=person', 'entityId=not-a-uuid', 'from=2024-13-01', 'colour=red', 'limit=0', 'cursor=nonsense', `cursor=${foreignCursor}`]) {
    assertProblem(t, await app.inject({ method: 'GET', url: `/v1/audit-events?${query}`, headers }), 400)
  }
})

t.test('keyset pages walk every event once, newest first, with and without a filter', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const entity = '0190d3c0-0000-7000-8000-0000000000cc'
  const all: number[] = []
  for (let i = 0; i < 11; i++) {
    all.push(await insertDatedEvent(database, { at: '2024-03-01T10:00:00Z', actor: i % 2 ? 'odd' : 'even', entityType: 'custodian', entityId: entity }))
  }
  const walk = async (filter: string) => {
    // walkPages fails the test on a page that is not a 200.
    const { pages, items } = await walkPages<{ id: number }>(app, `/v1/audit-events?limit=3${filter}`, headers, 20)
    for (const page of pages) t.ok(page.length <= 3)
    return { seen: items.map((event) => event.id), pages: pages.length }
  }
  const everything = await walk('')
  t.same(everything.seen, [...all].reverse())
  t.equal(everything.pages, 4)
  const odd = await walk('&actor=odd')
  t.same(odd.seen, all.filter((_, i) => i % 2).reverse())
  t.equal(odd.pages, 2, 'five odd events: a full page then a last one, no empty page')
})

t.test('the audit log is for security only', async (t) => {
  const { app, auth } = await buildTestApp(t)
  for (const url of ['/v1/audit-events', '/v1/audit-events/verify']) {
    t.equal((await app.inject({ method: 'GET', url, headers: await auth('security') })).statusCode, 200, `${url} security`)
    t.equal((await app.inject({ method: 'GET', url, headers: await auth(['security', 'foi_officer']) })).statusCode, 200)
    assertProblem(t, await app.inject({ method: 'GET', url, headers: await auth('asset_manager') }), 403)
    assertProblem(t, await app.inject({ method: 'GET', url, headers: await auth('foi_officer') }), 403)
    assertProblem(t, await app.inject({ method: 'GET', url, headers: await auth(['asset_manager', 'foi_officer']) }), 403)
    const anonymous = await app.inject({ method: 'GET', url })
    assertProblem(t, anonymous, 401)
    t.equal(anonymous.headers['www-authenticate'], 'Bearer')
  }
})
