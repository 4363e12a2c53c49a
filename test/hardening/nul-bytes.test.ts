/**
 * PostgreSQL text and jsonb cannot hold a NUL character. Found by the hostile-input suite: a NUL
 * in free text, a search or a cursor reached the database and came back as a 500. Text is now
 * refused by its schema (`Text` in src/http/schemas.ts, naming the field: NUL as one of the
 * control characters no text field holds, and unpaired surrogates, which PostgreSQL would
 * silently turn into U+FFFD; the rest of that rule is in text-input.test.ts), and anything else
 * the database refuses for its characters is a 400, never a 500, with nothing written.
 */
import t from 'tap'
import { toProblem } from '../../src/plugins/problems.js'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'

const encodeKey = (key: unknown) => Buffer.from(JSON.stringify(key)).toString('base64url')

t.test('a NUL in free text is a 400 naming the field, and nothing is written', async (t) => {
  const { app, database, auth } = await buildTestApp(t)
  const headers = await auth(['security', 'asset_manager'])
  const custodian = await insertCustodian(database)

  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'A\u0000B' } })
  const body = assertProblem(t, created, 400)
  t.match(body.errors, [{ path: 'body.name', message: /NUL/ }])

  const changed = await app.inject({
    method: 'PATCH',
    url: `/v1/custodians/${custodian.id}`,
    headers: { ...headers, 'if-match': '"1"' },
    payload: { constituency: 'x\u0000' },
  })
  t.match(assertProblem(t, changed, 400).errors, [{ path: 'body.constituency' }])

  // An unpaired surrogate is valid JSON but not text; PostgreSQL would store U+FFFD instead.
  const broken = await app.inject({
    method: 'POST',
    url: '/v1/custodians',
    headers: { ...headers, 'content-type': 'application/json' },
    payload: '{"kind":"staff","name":"A\\ud800"}',
  })
  t.match(assertProblem(t, broken, 400).errors, [{ path: 'body.name', message: /broken Unicode/ }])

  const [counts] = await database.query<{ custodians: number; audit: number }>(
    'SELECT (SELECT count(*) FROM custodians)::int AS custodians, (SELECT count(*) FROM audit_events)::int AS audit',
  )
  t.same(counts, { custodians: 1, audit: 0 }, 'no row, no audit event')
  const [row] = await database.query<{ version: number; constituency: string | null }>('SELECT version, constituency FROM custodians')
  t.same(row, { version: 1, constituency: custodian.constituency }, 'the custodian is unchanged')
})

t.test('a NUL in a search or a cursor is a 400, not a 500', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const headers = await auth(['security', 'asset_manager'])
  for (const url of [
    '/v1/custodians?q=a%00b',
    '/v1/audit-events?actor=a%00b',
    `/v1/reports/overdue-audit?cursor=${encodeKey(['\u0000', '01a216a6-1b4c-712c-bc4c-c506f69061c8'])}`,
  ]) {
    const response = await app.inject({ method: 'GET', url, headers })
    t.equal(response.statusCode, 400, url)
    assertProblem(t, response, 400)
  }
})

t.test('the database refusing a character maps to 400 (text) and 400 (jsonb)', async (t) => {
  for (const code of ['22021', '22P05']) {
    const problem = toProblem(Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code }))
    t.equal(problem?.status, 400, code)
    t.notMatch(problem?.message ?? '', /UTF8|0x00/, 'the database message is not passed on')
  }
})

t.test('year 0000 and other implausible years are a 400 naming the field, not a database error', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const headers = await auth(['security', 'asset_manager'])
  const leaving = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'Ann Other', leftOn: '0000-02-29' } })
  t.equal(leaving.statusCode, 400)
  t.equal(leaving.json().errors[0].path, 'body.leftOn')
  const range = await app.inject({ method: 'GET', url: '/v1/incidents?from=0000-01-01&to=2024-01-01', headers })
  t.equal(range.statusCode, 400)
  t.equal(range.json().errors[0].path, 'querystring.from')
})
