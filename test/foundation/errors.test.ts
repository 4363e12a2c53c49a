/**
 * Every error the service can meet leaves as application/problem+json. A test-only route with a
 * zod schema stands in for the domain routes here, so the mechanism is proved on its own.
 */
import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import t, { type Test } from 'tap'
import { z } from 'zod'
import { devices } from '../../src/db/schema.js'
import { buildTestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'

const probeRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/probe',
    {
      config: { access: 'public' },
      schema: {
        body: z.strictObject({ name: z.string().min(1).max(10), count: z.int().min(0) }),
        querystring: z.strictObject({ flag: z.enum(['on', 'off']).optional() }),
      },
    },
    async (request) => ({ ok: true, name: request.body.name }),
  )
  app.post('/probe/duplicate', { config: { access: 'public' } }, async () => {
    const row = {
      assetTag: 'PA-000001',
      kind: 'laptop' as const,
      make: 'Dell',
      model: 'Latitude',
      serialNumber: 'SN-1',
      encrypted: true,
      mdmEnrolled: true,
      classification: 'official' as const,
      createdBy: 'test',
    }
    await app.db.insert(devices).values(row)
    await app.db.insert(devices).values({ ...row, serialNumber: 'SN-2' })
    return { ok: true }
  })
  app.get('/probe/crash', { config: { access: 'public' } }, async () => {
    throw new Error('secret internals at /srv/app.ts:42 SELECT * FROM custodians')
  })
}

async function setup(t: Test) {
  const test = await buildTestApp(t, { ready: false })
  await test.app.register(probeRoutes)
  await test.app.ready()
  return test
}

t.test('validation errors name every bad field', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({ method: 'POST', url: '/probe', payload: { name: '', count: -1 } })
  const body = assertProblem(t, response, 400)
  t.same(
    body.errors.map((e: { path: string }) => e.path).sort(),
    ['body.count', 'body.name'],
  )
})

t.test('unknown body fields are refused, each by name', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({ method: 'POST', url: '/probe', payload: { name: 'a', count: 1, id: 'x', status: 'y' } })
  const body = assertProblem(t, response, 400)
  t.same(body.errors.map((e: { path: string }) => e.path).sort(), ['body.id', 'body.status'])
})

t.test('unknown query parameters are refused', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({ method: 'POST', url: '/probe?colour=red', payload: { name: 'a', count: 1 } })
  const body = assertProblem(t, response, 400)
  t.equal(body.errors[0].path, 'querystring.colour')
})

t.test('a good request passes', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({ method: 'POST', url: '/probe?flag=on', payload: { name: 'a', count: 1 } })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { ok: true, name: 'a' })
})

t.test('unknown route is a 404 problem', async (t) => {
  const { app } = await setup(t)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/nothing-here' }), 404)
})

t.test('a path segment longer than any id is a 414 problem, a malformed one a 400 problem, neither quoting the path', async (t) => {
  const { app } = await setup(t)
  const long = 'a'.repeat(201)
  const tooLong = await app.inject({ method: 'GET', url: `/v1/custodians/${long}` })
  assertProblem(t, tooLong, 414)
  t.notMatch(tooLong.body, long)
  const malformed = await app.inject({ method: 'GET', url: '/v1/custodians/%E0%A4%A', headers: { 'x-request-id': 'client-7' } })
  assertProblem(t, malformed, 400)
  t.notMatch(malformed.body, '%E0')
  // Refused before any hook runs, they still carry the headers every answer does.
  for (const response of [tooLong, malformed]) {
    t.equal(response.headers['cache-control'], 'no-store')
    t.equal(response.headers['x-content-type-options'], 'nosniff')
    t.match(response.headers['content-security-policy'], /default-src 'none'/)
  }
  t.match(tooLong.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'our request id')
  t.equal(malformed.headers['x-request-id'], 'client-7', "the client's, echoed")
})

t.test('unsupported media type is a 415 problem', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({
    method: 'POST',
    url: '/probe',
    headers: { 'content-type': 'application/xml' },
    payload: '<a/>',
  })
  assertProblem(t, response, 415)
})

t.test('invalid JSON is a 400 problem', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({
    method: 'POST',
    url: '/probe',
    headers: { 'content-type': 'application/json' },
    payload: '{"name": ',
  })
  assertProblem(t, response, 400)
})

t.test('a body over the limit is a 413 problem', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({
    method: 'POST',
    url: '/probe',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024), count: 1 }),
  })
  assertProblem(t, response, 413)
})

t.test('a unique violation is a 409 problem naming the field (the devices module\'s rule, handed over by app.ts), and nothing half-written', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({ method: 'POST', url: '/probe/duplicate' })
  const body = assertProblem(t, response, 409)
  t.same(body.errors, [{ path: 'body.assetTag', message: 'a device with this asset tag is already registered' }])
})

t.test('an unexpected error is a 500 with a generic detail; the real error is only in the log', async (t) => {
  const { app, logs } = await setup(t)
  const response = await app.inject({ method: 'GET', url: '/probe/crash', headers: { 'x-request-id': 'req-crash-1' } })
  const body = assertProblem(t, response, 500)
  const serverId = /Quote request id ([0-9a-f-]{36}) /.exec(body.detail)?.[1]
  t.ok(serverId, 'the detail quotes the server\'s request id (the client named it, but its name need not be unique)')
  t.notMatch(response.body, /secret internals/)
  const logged = logs.find((line) => line.requestId === serverId && line.err)
  t.ok(logged, 'the error is logged with the request id')
  t.equal(logged?.clientRequestId, 'req-crash-1', 'and with the client\'s name for the request')
  t.match(JSON.stringify(logged), /secret internals/)
})
