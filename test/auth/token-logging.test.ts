/**
 * The bearer token never reaches the logs, whatever happens to the request: accepted, refused
 * (401, 403), or failed inside (500, whose error is logged in full).
 * test/foundation/logging.test.ts covers a public route; this covers the protected paths.
 */
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'

t.test('no token and no authorization header in any log line', async (t) => {
  const { app, logs, token, database } = await buildTestApp(t)
  const good = await token('security', 'logged-user')
  const foi = await token('foi_officer')
  const forged = `${good.slice(0, -6)}AAAAAA`
  const requests = [
    { method: 'GET' as const, url: '/v1/audit-events', authorization: `Bearer ${good}`, status: 200 },
    { method: 'GET' as const, url: '/v1/audit-events', authorization: `Bearer ${forged}`, status: 401 },
    { method: 'GET' as const, url: '/v1/audit-events', authorization: `Bearer ${foi}`, status: 403 },
    { method: 'GET' as const, url: '/v1/audit-events', authorization: 'Basic dXNlcjpwYXNz', status: 401 },
  ]
  for (const request of requests) {
    const response = await app.inject({ method: request.method, url: request.url, headers: { authorization: request.authorization } })
    t.equal(response.statusCode, request.status, `${request.authorization.slice(0, 12)}… → ${request.status}`)
  }
  // A failure inside the route: its error is logged with everything the logger gives it.
  await database.query('ALTER TABLE audit_events RENAME TO audit_events_away')
  const failed = await app.inject({
    method: 'POST', url: '/v1/custodians', headers: { authorization: `Bearer ${good}` }, payload: { kind: 'staff', name: 'Logged' },
  })
  await database.query('ALTER TABLE audit_events_away RENAME TO audit_events')
  t.equal(failed.statusCode, 500)
  t.ok(logs.some((line) => line.level === 50), 'the 500 was logged as an error')

  const everything = JSON.stringify(logs)
  for (const secret of [good, foi, forged, good.split('.')[2]!, 'dXNlcjpwYXNz']) t.notOk(everything.includes(secret), 'token absent')
  t.notMatch(everything, /authorization/i, 'no authorization header')
  t.notMatch(everything, /logged-user/, 'not even the caller')
})
