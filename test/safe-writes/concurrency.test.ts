/**
 * Optimistic concurrency: of writers holding the same ETag, exactly one wins; the others get 412
 * and change nothing, and the audit trail has one event for the one change.
 */
import t from 'tap'
import { withValues } from '../helpers/audit-events.js'
import { buildTestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'

t.test('two PATCHes with the same ETag at once: one 200, one 412, version 2, one update event', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'editor')
  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'Original' } })
  const { id } = created.json()
  const etag = String(created.headers.etag)

  const [first, second] = await Promise.all(
    ['Change A', 'Change B'].map((name) =>
      app.inject({ method: 'PATCH', url: `/v1/custodians/${id}`, headers: { ...headers, 'if-match': etag }, payload: { name } }),
    ),
  )
  const statuses = [first!.statusCode, second!.statusCode].sort()
  t.same(statuses, [200, 412])
  const winner = first!.statusCode === 200 ? first! : second!
  const loser = first!.statusCode === 200 ? second! : first!
  assertProblem(t, loser, 412)
  t.equal(winner.headers.etag, '"2"')

  const [row] = await database.query<{ name: string; version: number }>('SELECT name, version FROM custodians WHERE id = $1', [id])
  t.same(row, { name: winner.json().name, version: 2 }, 'the winner’s change, once')
  const updates = await withValues(database, await database.query<{ id: number; after: { name: string; version: number } }>(
    "SELECT id::int AS id, after FROM audit_events WHERE action = 'custodian.updated'",
  ))
  t.equal(updates.length, 1)
  t.match(updates[0]!.after, { name: winner.json().name, version: 2 })
})

t.test('many writers with one ETag: exactly one wins', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'Contended' } })
  const { id } = created.json()
  const writers = 8
  const responses = await Promise.all(
    Array.from({ length: writers }, (_, i) =>
      app.inject({ method: 'PATCH', url: `/v1/custodians/${id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { name: `Writer ${i}` } }),
    ),
  )
  const statuses = responses.map((response) => response.statusCode)
  t.equal(statuses.filter((status) => status === 200).length, 1, statuses.join(','))
  t.equal(statuses.filter((status) => status === 412).length, writers - 1)
  t.same(await database.query('SELECT version FROM custodians WHERE id = $1', [id]), [{ version: 2 }])
  t.same(await database.query("SELECT count(*)::int AS n FROM audit_events WHERE action = 'custodian.updated'"), [{ n: 1 }])
})

t.test('If-Match: missing is 428, not an ETag of ours is 412, a weak validator is 412 even for the current version (strong comparison)', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const { id } = (await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'Tagged' } })).json()
  const patch = (ifMatch: string | undefined, name: string) =>
    app.inject({ method: 'PATCH', url: `/v1/custodians/${id}`, headers: { ...headers, ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }) }, payload: { name } })
  assertProblem(t, await patch(undefined, 'x'), 428)
  for (const bad of ['1', '"abc"', '"0"', '"2"']) assertProblem(t, await patch(bad, 'x'), 412)
  for (const weak of ['W/"1"', ' W/"1"', 'w/"1"']) {
    const body = assertProblem(t, await patch(weak, 'Weak'), 412)
    t.match(body.detail, /weak validator|not an ETag/, weak)
  }
  t.same(await database.query('SELECT name, version FROM custodians WHERE id = $1', [id]), [{ name: 'Tagged', version: 1 }], 'no weak If-Match changed anything')
  t.equal((await patch('"1"', 'Strong')).statusCode, 200)
  const read = await app.inject({ method: 'GET', url: `/v1/custodians/${id}`, headers })
  t.equal(read.headers.etag, '"2"')
  t.equal(read.json().name, 'Strong')
})
