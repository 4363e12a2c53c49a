import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'
import { walkPages } from '../helpers/pages.js'

const member = { kind: 'mp', name: 'Alex Example', constituency: 'Exampleton', email: 'alex@example.org' }

t.test('create, read, list, update with If-Match, and the audit trail of it', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'alice')

  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: member })
  t.equal(created.statusCode, 201)
  const body = created.json()
  t.match(body, { kind: 'mp', name: 'Alex Example', house: 'commons', active: true, leftOn: null, version: 1 })
  t.equal(created.headers.etag, '"1"')

  const read = await app.inject({ method: 'GET', url: `/v1/custodians/${body.id}`, headers })
  t.equal(read.statusCode, 200)
  t.same(read.json(), body)

  const noIfMatch = await app.inject({ method: 'PATCH', url: `/v1/custodians/${body.id}`, headers, payload: { name: 'X' } })
  assertProblem(t, noIfMatch, 428)
  const stale = await app.inject({
    method: 'PATCH', url: `/v1/custodians/${body.id}`, headers: { ...headers, 'if-match': '"7"' }, payload: { name: 'X' },
  })
  assertProblem(t, stale, 412)

  const left = await app.inject({
    method: 'PATCH', url: `/v1/custodians/${body.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { leftOn: '2024-07-04' },
  })
  t.equal(left.statusCode, 200)
  t.match(left.json(), { active: false, leftOn: '2024-07-04', version: 2 })
  t.equal(left.headers.etag, '"2"')

  const list = await app.inject({ method: 'GET', url: '/v1/custodians?active=false&q=alex', headers })
  t.equal(list.json().items.length, 1)
  const none = await app.inject({ method: 'GET', url: '/v1/custodians?active=true', headers })
  t.same(none.json(), { items: [], nextCursor: null })

  const events = await database.query<{ action: string; actor: string }>('SELECT action, actor FROM audit_events ORDER BY id')
  t.same(events, [
    { action: 'custodian.created', actor: 'alice' },
    { action: 'custodian.updated', actor: 'alice' },
  ])
})

t.test('strict bodies: unknown and server-owned fields are 400 and change nothing', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  for (const extra of [{ colour: 'red' }, { id: '0190d3c0-0000-7000-8000-000000000000' }, { version: 3 }, { createdAt: '2024-01-01T00:00:00Z' }]) {
    const response = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { ...member, ...extra } })
    const problem = assertProblem(t, response, 400)
    t.equal(problem.errors[0].path, `body.${Object.keys(extra)[0]}`)
  }
  const bad = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { ...member, house: 'lords' } })
  t.equal(assertProblem(t, bad, 400).errors[0].path, 'body.house')
  const badEmail = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { ...member, email: 'nope' } })
  t.equal(assertProblem(t, badEmail, 400).errors[0].path, 'body.email')
  const unknownQuery = await app.inject({ method: 'GET', url: '/v1/custodians?colour=red', headers })
  assertProblem(t, unknownQuery, 400)
  t.same(await database.query('SELECT id FROM custodians'), [])
  t.same(await database.query('SELECT id FROM audit_events'), [])
})

t.test('keyset pagination walks every custodian once', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const headers = await auth('security')
  for (let i = 0; i < 7; i++) {
    await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: `Staff ${i}` } })
  }
  const seen = await walkPages<{ name: string }>(app, '/v1/custodians?limit=3', headers)
  t.same(seen.items.map((item) => item.name), [0, 1, 2, 3, 4, 5, 6].map((i) => `Staff ${i}`))
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/custodians?cursor=garbage', headers }), 400)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/custodians?limit=201', headers }), 400)
})
