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
  t.match(lines[0], { method: 'GET', route: '/openapi.json', path: '/openapi.json', statusCode: 200 })
  t.type(lines[0]!.responseTimeMs, 'number')
  const everything = JSON.stringify(logs)
  t.notMatch(everything, jwt, 'the token is never logged')
  t.notMatch(everything, /authorization/i, 'no authorization header')
  t.notMatch(everything, /Jane|Smith/, 'no query string')
})
