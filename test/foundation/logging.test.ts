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
  const lines = logs.filter((line) => line.requestId === 'log-test-1')
  t.equal(lines.length, 1, 'exactly one line for the request')
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
