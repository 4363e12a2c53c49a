import { readFile } from 'node:fs/promises'
import t from 'tap'
import { z } from 'zod'
import { IfMatchHeaders } from '../../src/http/preconditions.js'
import { IdParams } from '../../src/http/schemas.js'
import { OPENAPI_FILE, serialiseOpenApi } from '../../src/openapi-document.js'
import { API_TAGS, withExample } from '../../src/plugins/openapi.js'
import { ProblemSchema } from '../../src/plugins/problems.js'
import { buildTestApp } from '../helpers/app.js'

// One app for the tests that only read its document.
const { app } = await buildTestApp(t)
const generated = () => JSON.parse(serialiseOpenApi(app.swagger()))

t.test('the committed openapi/openapi.json equals what the code generates (run `npm run openapi`)', async (t) => {
  const committed = await readFile(OPENAPI_FILE, 'utf8')
  t.equal(serialiseOpenApi(app.swagger()), committed)
})

t.test('the drift check fails when a route schema changes and the file does not', async (t) => {
  const { app: probed } = await buildTestApp(t, { ready: false })
  probed.get(
    '/v1/drift-probe',
    { config: { access: ['security'] }, schema: { querystring: z.strictObject({ extra: z.string() }) } },
    async () => ({}),
  )
  await probed.ready()
  const committed = await readFile(OPENAPI_FILE, 'utf8')
  t.not(serialiseOpenApi(probed.swagger()), committed)
})

t.test('GET /openapi.json serves an OpenAPI 3.1 document; /docs serves the interactive page', async (t) => {
  const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  t.equal(document.openapi, '3.1.0')
  t.ok(document.paths['/healthz'])
  t.same(document.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  t.same(document.servers, [{ url: '/', description: 'The service that serves this document' }])
  t.same(document.tags, API_TAGS)
  const docs = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.body, /swagger-ui/i)
})

const METHODS = ['get', 'post', 'patch', 'put', 'delete']

/** What these tests read of an operation. */
interface Operation {
  operationId?: string
  summary?: string
  tags?: string[]
  security?: unknown
  responses: Record<string, { content?: Record<string, unknown> }>
}

t.test('every operation: a unique operationId, a summary, a declared tag, its security, errors as problem+json', async (t) => {
  const document = generated()
  const tags = new Set(API_TAGS.map((tag) => tag.name))
  const ids = new Set<string>()
  let operations = 0
  for (const [path, item] of Object.entries<Record<string, Operation | undefined>>(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method]
      if (!operation) continue
      operations++
      const name = `${method.toUpperCase()} ${path}`
      t.match(operation.operationId, /^[a-z][A-Za-z]+$/, `${name}: operationId`)
      t.notOk(ids.has(String(operation.operationId)), `${name}: operationId unique`)
      ids.add(String(operation.operationId))
      t.match(operation.summary, /\w/, `${name}: summary`)
      t.ok(operation.tags?.length && operation.tags.every((tag) => tags.has(tag)), `${name}: declared tags`)
      const isPublic = path === '/healthz' || path === '/readyz'
      t.same(operation.security, isPublic ? [] : [{ bearer: [] }], `${name}: security`)
      for (const [status, response] of Object.entries(operation.responses)) {
        if (status !== 'default' && Number(status) < 400) continue
        t.same(Object.keys(response.content ?? {}), ['application/problem+json'], `${name} ${status}: problem+json`)
      }
      if (!isPublic) {
        for (const status of ['400', '401', '403', '429', '503', 'default']) t.ok(operation.responses[status], `${name}: ${status}`)
      }
    }
  }
  t.ok(operations >= 39, `${operations} operations`)
})

t.test("the roles are told once, also for a GET (whose HEAD twin shares the route's schema)", async (t) => {
  const document = generated()
  t.equal(document.paths['/v1/devices'].get.description, 'Roles: `security`, `asset_manager`.')
  t.same(document.paths['/v1/devices'].get['x-roles'], ['security', 'asset_manager'])
})

t.test("what a route declares (access, input, idempotency, PATCH) becomes the statuses it answers; its body's example is shown", async (t) => {
  const { app: probed } = await buildTestApp(t, { ready: false })
  const ProbeBody = z.strictObject({ name: z.string().min(1) }).meta({ id: 'OpenApiProbe' })
  probed.patch(
    '/v1/openapi-probe/:id',
    {
      config: { access: ['security'], idempotent: true },
      schema: {
        operationId: 'probe',
        tags: ['devices'],
        summary: 'Probe',
        params: IdParams,
        headers: IfMatchHeaders,
        body: withExample(ProbeBody, { name: 'example' }),
        response: { 200: z.object({ ok: z.boolean() }), 409: ProblemSchema.meta({ description: 'The probe is busy.' }) },
      },
    },
    async () => ({ ok: true }),
  )
  probed.get(
    '/openapi-public-probe',
    { config: { access: 'public' }, schema: { operationId: 'publicProbe', tags: ['operations'], summary: 'Public probe' } },
    async () => ({}),
  )
  await probed.ready()
  const document = JSON.parse(serialiseOpenApi(probed.swagger()))
  const probe = document.paths['/v1/openapi-probe/{id}'].patch
  t.same(Object.keys(probe.responses), ['200', '400', '401', '403', '404', '408', '409', '412', '413', '414', '415', '422', '428', '429', '431', '503', 'default'])
  t.equal(probe.responses[409].description, 'The probe is busy. A request with this Idempotency-Key is still running.')
  t.equal(probe.responses[422].description, 'This Idempotency-Key was used with another request.')
  t.same(probe.responses[409].content, { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } })
  t.same(Object.keys(probe.responses[429].headers), ['Retry-After'])
  t.same(Object.keys(probe.responses[401].headers), ['WWW-Authenticate'])
  t.same(probe.requestBody.content['application/json'], { schema: { $ref: '#/components/schemas/OpenApiProbeInput' }, example: { name: 'example' } })
  t.equal(probe.requestBody.required, true)
  t.notOk('x-request-body' in probe, 'what the transform carried to the body is not left on the operation')
  t.same(probe.security, [{ bearer: [] }])
  t.equal(probe.description, 'Roles: `security`.')

  const publicProbe = document.paths['/openapi-public-probe'].get
  t.same(publicProbe.security, [])
  t.same(Object.keys(publicProbe.responses), ['431', 'default'], 'a public route without input answers no 4xx of its own but 431 (headers too large)')
  t.notOk(publicProbe['x-roles'])
})

t.test('every body has an example; one that may be left out is not required', async (t) => {
  const document = generated()
  for (const [path, item] of Object.entries<Record<string, { requestBody?: { content: Record<string, { example?: unknown }> } }>>(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) {
        t.not(media.example, undefined, `${method.toUpperCase()} ${path} ${type}: example`)
      }
    }
  }
  t.equal(document.paths['/v1/devices/{id}/return'].post.requestBody.required, false, 'a return may have no body')
  t.equal(document.paths['/v1/devices'].post.requestBody.required, true)
})

t.test('the components are those the operations use, and every reference resolves', async (t) => {
  const document = generated()
  const schemas: Record<string, unknown> = document.components.schemas
  const referenced = new Set<string>()
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk)
    else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === '$ref' && typeof inner === 'string') referenced.add(inner.replace('#/components/schemas/', ''))
        else walk(inner)
      }
    }
  }
  walk(document.paths)
  walk(schemas)
  t.same(Object.keys(schemas).sort(), [...referenced].sort())
  t.same(Object.keys(schemas), Object.keys(schemas).sort(), 'in order of name, whatever the order the modules were loaded in')
  t.notOk(schemas.CustodianInput, 'no input variant of a response schema')
  t.notOk(schemas.CreateCustodian, 'no output variant of a body schema')
})
