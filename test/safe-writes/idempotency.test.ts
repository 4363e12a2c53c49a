/**
 * `Idempotency-Key` on a creating POST (custodians): a retry replays the first response and
 * creates nothing; another body with the key is 422; keys belong to their caller; concurrent
 * requests with one key run once.
 */
import { createHash } from 'node:crypto'
import stringify from 'safe-stable-stringify'
import t from 'tap'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'

const body = { kind: 'staff', name: 'Pat Clerk', email: 'pat@example.org' }

const counts = async (database: TestApp['database']) => {
  const [row] = await database.query<{ custodians: number; events: number }>(
    'SELECT (SELECT count(*)::int FROM custodians) AS custodians, (SELECT count(*)::int FROM audit_events) AS events',
  )
  return row!
}

t.test('a retry with the same key replays status, body, ETag and Location, and creates nothing', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager', 'alice')), 'idempotency-key': 'create-pat-1' }
  const first = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })
  t.equal(first.statusCode, 201)
  t.equal(first.headers['idempotent-replayed'], undefined, 'the first response is not a replay')

  // Key order in the body does not make it another request.
  const reordered = Object.fromEntries(Object.entries(body).reverse())
  for (const payload of [body, reordered]) {
    const again = await app.inject({ method: 'POST', url: '/v1/custodians', headers: { ...headers, 'x-request-id': 'retry-1' }, payload })
    t.equal(again.statusCode, 201)
    t.equal(again.body, first.body, 'the same body, byte for byte')
    t.equal(again.headers.etag, first.headers.etag)
    t.equal(again.headers.location, first.headers.location)
    t.match(String(again.headers['content-type']), /^application\/json/)
    t.equal(again.headers['idempotent-replayed'], 'true')
    t.equal(again.headers['x-request-id'], 'retry-1', 'the replay has its own request id')
  }
  t.same(await counts(database), { custodians: 1, events: 1 })

  const withoutKey = await app.inject({ method: 'POST', url: '/v1/custodians', headers: await auth('asset_manager', 'alice'), payload: body })
  t.equal(withoutKey.statusCode, 201, 'without a key a POST simply runs')
  t.not(withoutKey.json().id, first.json().id)
})

t.test('the same key with another body is 422 and changes nothing', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager', 'alice')), 'idempotency-key': 'create-pat-2' }
  t.equal((await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })).statusCode, 201)
  const other = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { ...body, name: 'Someone Else' } })
  const problem = assertProblem(t, other, 422)
  t.equal(problem.errors[0].path, 'headers.idempotency-key')
  t.same(await counts(database), { custodians: 1, events: 1 })
})

t.test('keys are scoped to the caller', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const key = { 'idempotency-key': 'shared-key' }
  const alice = await app.inject({ method: 'POST', url: '/v1/custodians', headers: { ...(await auth('asset_manager', 'alice')), ...key }, payload: body })
  const bob = await app.inject({ method: 'POST', url: '/v1/custodians', headers: { ...(await auth('security', 'bob')), ...key }, payload: body })
  t.equal(alice.statusCode, 201)
  t.equal(bob.statusCode, 201)
  t.equal(bob.headers['idempotent-replayed'], undefined, "bob does not get alice's response")
  t.not(bob.json().id, alice.json().id)
  t.same(await counts(database), { custodians: 2, events: 2 })
  t.same(await database.query('SELECT actor FROM audit_events ORDER BY id'), [{ actor: 'alice' }, { actor: 'bob' }])
})

t.test('20 concurrent requests with one key: one runs, the rest replay it or are told it is in progress', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager', 'alice')), 'idempotency-key': 'burst' }
  const started = performance.now()
  const responses = await Promise.all(
    Array.from({ length: 20 }, () => app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })),
  )
  t.comment(`20 concurrent requests in ${Math.round(performance.now() - started)} ms`)
  const created = responses.filter((response) => response.statusCode === 201)
  const inProgress = responses.filter((response) => response.statusCode === 409)
  t.equal(created.length + inProgress.length, 20, `only 201 or 409 (got ${responses.map((r) => r.statusCode).join(',')})`)
  t.ok(created.length >= 1)
  t.same(new Set(created.map((response) => response.body)).size, 1, 'every 201 has the same body')
  t.equal(created.filter((response) => response.headers['idempotent-replayed'] === undefined).length, 1, 'exactly one ran')
  for (const response of inProgress) t.match(assertProblem(t, response, 409).detail, /in progress/)
  t.comment(`${created.length} × 201, ${inProgress.length} × 409`)
  t.same(await counts(database), { custodians: 1, events: 1 })

  const later = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })
  t.equal(later.statusCode, 201)
  t.equal(later.body, created[0]!.body, 'once finished, the key replays')
})

t.test('the key must be 1 to 255 characters', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const tooLong = await app.inject({ method: 'POST', url: '/v1/custodians', headers: { ...headers, 'idempotency-key': 'k'.repeat(256) }, payload: body })
  t.equal(assertProblem(t, tooLong, 400).errors[0].path, 'headers.idempotency-key')
  const longest = await app.inject({ method: 'POST', url: '/v1/custodians', headers: { ...headers, 'idempotency-key': 'k'.repeat(255) }, payload: body })
  t.equal(longest.statusCode, 201)
  t.same(await counts(database), { custodians: 1, events: 1 })
})

t.test('a refusal from the route (4xx) is stored and replayed; a key is not claimed by a request that never ran', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager', 'alice')), 'idempotency-key': 'refused' }
  // Refused by a rule inside the service (not by the schema): the route ran, so its answer stands.
  const leaver = { kind: 'staff', name: 'Future Leaver', leftOn: '2999-01-01' }
  const first = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: leaver })
  assertProblem(t, first, 400)
  const again = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: leaver })
  assertProblem(t, again, 400)
  t.equal(again.body, first.body)
  t.equal(again.headers['idempotent-replayed'], 'true')

  // Refused by the schema, before the key is looked at: the key stays free for the corrected request.
  const schemaHeaders = { ...headers, 'idempotency-key': 'schema-refused' }
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/custodians', headers: schemaHeaders, payload: { ...body, colour: 'red' } }), 400)
  const corrected = await app.inject({ method: 'POST', url: '/v1/custodians', headers: schemaHeaders, payload: body })
  t.equal(corrected.statusCode, 201)
  t.equal(corrected.headers['idempotent-replayed'], undefined)

  // A 403 never claims a key either.
  const foi = { ...(await auth('foi_officer', 'alice')), 'idempotency-key': 'forbidden-first' }
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/custodians', headers: foi, payload: body }), 403)
  t.same(await database.query("SELECT key FROM idempotency_keys WHERE key = 'forbidden-first'"), [])
  t.same(await counts(database), { custodians: 1, events: 1 })
})

t.test('a 5xx releases the key, so the retry runs for real', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager', 'alice')), 'idempotency-key': 'after-outage' }
  // The audit insert fails (its table is gone for a moment), so the whole create rolls back: a 500.
  await database.query('ALTER TABLE audit_events RENAME TO audit_events_away')
  const failed = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })
  await database.query('ALTER TABLE audit_events_away RENAME TO audit_events')
  assertProblem(t, failed, 500)
  t.same(await database.query("SELECT key FROM idempotency_keys WHERE key = 'after-outage'"), [], 'a 5xx is not stored')
  t.same(await counts(database), { custodians: 0, events: 0 })
  const retried = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })
  t.equal(retried.statusCode, 201, 'the retry runs')
  t.equal(retried.headers['idempotent-replayed'], undefined)
  t.same(await counts(database), { custodians: 1, events: 1 })
})

t.test('an expired key is taken over by a new request', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager', 'alice')), 'idempotency-key': 'old' }
  const first = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })
  t.equal(first.statusCode, 201)
  await database.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second', created_at = now() - interval '25 hours'")
  const other = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { ...body, name: 'New Person' } })
  t.equal(other.statusCode, 201, 'an expired key is free again')
  t.equal(other.json().name, 'New Person')
  t.same(await counts(database), { custodians: 2, events: 2 })
})

t.test('a claim in progress is 409; abandoned by a request that died, it is taken over after a while', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager', 'alice')), 'idempotency-key': 'died' }
  // The claim a request makes before it runs, for this very request (same hash), never completed.
  const hash = createHash('sha256').update(`POST /v1/custodians\n${stringify(body)}`).digest('hex')
  await database.query(
    `INSERT INTO idempotency_keys (caller, key, method, path, request_hash, created_at, expires_at)
     VALUES ('alice', 'died', 'POST', '/v1/custodians', $1, now(), now() + interval '1 day')`,
    [hash],
  )
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body }), 409)
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { ...body, name: 'Other' } }), 422)
  t.same(await counts(database), { custodians: 0, events: 0 })
  await database.query("UPDATE idempotency_keys SET created_at = now() - interval '10 minutes'")
  // Several retries find it abandoned at once: exactly one takes it over.
  const retries = await Promise.all(
    Array.from({ length: 10 }, () => app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: body })),
  )
  const statuses = retries.map((response) => response.statusCode)
  t.ok(statuses.every((status) => status === 201 || status === 409), statuses.join(','))
  t.equal(retries.filter((response) => response.statusCode === 201 && !response.headers['idempotent-replayed']).length, 1, 'one ran')
  t.same(await counts(database), { custodians: 1, events: 1 })
})
