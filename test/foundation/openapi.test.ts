import { readFile } from 'node:fs/promises'
import t from 'tap'
import { z } from 'zod'
import { OPENAPI_FILE, serialiseOpenApi } from '../../src/openapi-document.js'
import { buildTestApp } from '../helpers/app.js'

t.test('the committed openapi/openapi.json equals what the code generates (run `npm run openapi`)', async (t) => {
  const { app } = await buildTestApp(t)
  const committed = await readFile(OPENAPI_FILE, 'utf8')
  t.equal(serialiseOpenApi(app.swagger()), committed)
})

t.test('the drift check fails when a route schema changes and the file does not', async (t) => {
  const { app } = await buildTestApp(t, { ready: false })
  app.get(
    '/v1/drift-probe',
    { config: { access: ['security'] }, schema: { querystring: z.strictObject({ extra: z.string() }) } },
    async () => ({}),
  )
  await app.ready()
  const committed = await readFile(OPENAPI_FILE, 'utf8')
  t.not(serialiseOpenApi(app.swagger()), committed)
})

t.test('GET /openapi.json serves an OpenAPI 3.1 document; /docs serves the interactive page', async (t) => {
  const { app } = await buildTestApp(t)
  const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  t.equal(document.openapi, '3.1.0')
  t.ok(document.paths['/healthz'])
  t.same(document.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  const docs = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.body, /swagger-ui/i)
})
