import t from 'tap'
import { buildTestApp } from '../helpers/app.js'

t.test('one JSON line per request, with id, status and time, and no token, header or query', async (t) => {
  const { app, logs, token } = await buildTestApp(t)
  const jwt = await token('security')
  await app.inject({
    method: 'GET',
    url: '/openapi.json?q=Jane%20Smith',
    headers: { authorization: `Bearer ${jwt}`, 'x-request-id': 'log-test-1' },
  })
  const lines = logs.filter((line) => line.clientRequestId === 'log-test-1')
  t.equal(lines.length, 1, 'exactly one line for the request')
  t.match(lines[0]!.requestId, /^[0-9a-f-]{36}$/, 'its id is the server\'s; the client\'s is a field of its own')
  t.match(lines[0], { method: 'GET', route: '/openapi.json', statusCode: 200 })
  t.notOk('path' in lines[0]!, 'a matched route is logged by its pattern, not its concrete path')
  t.type(lines[0]!.responseTimeMs, 'number')
  const everything = JSON.stringify(logs)
  t.notMatch(everything, jwt, 'the token is never logged')
  t.notMatch(everything, /authorization/i, 'no authorization header')
  t.notMatch(everything, /Jane|Smith/, 'no query string')
})

t.test('a failed query is logged with its SQL but without its parameters', async (t) => {
  const { serializeError } = await import('../../src/logging.js')
  // The shape Drizzle gives a failed query: the values in the message, and the driver's error as the cause.
  const cause = Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505', constraint: 'x_key' })
  const failed = new Error('Failed query: insert into "custodians" ("name", "email") values ($1, $2)\nparams: Jane Smith,jane@example.org', { cause })
  Object.assign(failed, { params: ['Jane Smith', 'jane@example.org'] })
  const logged = serializeError(failed)!
  const text = JSON.stringify(logged)
  t.match(logged.message, /^Failed query: insert into "custodians"/)
  t.notMatch(text, /Jane|jane@example/, 'no parameter value anywhere, stack and cause included')
  t.match(logged.cause, { code: '23505', constraint: 'x_key' })
})

t.test('no log line carries a record\'s id: routes by their pattern, unmatched paths by their shape, errors masked', async (t) => {
  const { app, logs, auth } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'Logged Person' } })
  t.equal(created.statusCode, 201)
  const { id } = created.json()
  const patched = await app.inject({ method: 'PATCH', url: `/v1/custodians/${id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { name: 'Logged Again' } })
  t.equal(patched.statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: `/v1/custodians/${id}`, headers })).statusCode, 200)
  // No route: PUT of a custodian, a path below one, a made-up path with an id in it.
  t.equal((await app.inject({ method: 'PUT', url: `/v1/custodians/${id}`, headers, payload: {} })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: `/v1/custodians/${id}/nothing?name=Logged`, headers })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: `/${id}`, headers })).statusCode, 404)

  const everything = JSON.stringify(logs)
  t.notMatch(everything, id, 'the id appears in no line')
  t.notMatch(everything, /authorization|Bearer/i, 'nor does the authorization header')
  t.notMatch(everything, /Logged/, 'nor the body or the query')
  const byRoute = logs.filter((line) => line.route === '/v1/custodians/:id').map((line) => `${line.method} ${line.statusCode}`)
  t.same(byRoute, ['PATCH 200', 'GET 200'], 'matched requests are logged by the route pattern')
  const unmatched = logs.filter((line) => line.route === null).map((line) => `${line.method} ${line.path}`)
  t.same(unmatched, ['PUT /v1/custodians/*', 'GET /v1/custodians/*/*', 'GET /*'], 'an unmatched path keeps only the words of routes')
})

t.test('an error\'s text is logged with any UUID in it masked', async (t) => {
  const { serializeError } = await import('../../src/logging.js')
  const id = '0190d3c0-1234-7abc-8def-0123456789ab'
  const logged = serializeError(new Error(`Reply was already sent in "/v1/custodians/${id}" (PATCH)`, { cause: new Error(`about ${id.toUpperCase()}`) }))!
  t.notMatch(JSON.stringify(logged), new RegExp(id, 'i'))
  t.match(logged.message, '/v1/custodians/<id>')
})
