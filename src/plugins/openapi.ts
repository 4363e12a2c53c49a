/**
 * The OpenAPI 3.1 document, generated from the route schemas (one zod schema per shape is
 * validation, types and documentation at once), served at `/openapi.json`, with an interactive
 * page at `/docs`.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { jsonSchemaTransform, jsonSchemaTransformObject } from '@fastify/type-provider-zod'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export const API_TITLE = 'Device loss register'
export const API_VERSION = '1.0.0'

export default fp(
  async function openapiPlugin(app: FastifyInstance) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: API_TITLE,
          version: API_VERSION,
          description:
            'Tracks the equipment a parliament issues to its members, who holds each item, and every loss, ' +
            'theft and recovery; turns that into risk summaries and Freedom of Information exports. ' +
            'Errors are application/problem+json (RFC 9457).',
        },
        servers: [],
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          },
        },
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    })
    // The docs page and its assets are public, like the document they show.
    await app.register(async function docsPage(docs) {
      docs.addHook('onRoute', (route) => {
        route.config = { ...route.config, access: 'public' }
      })
      await docs.register(swaggerUi, {
        routePrefix: '/docs',
        uiConfig: { docExpansion: 'list', deepLinking: true },
        staticCSP: true,
        // swagger-ui's top-bar logo injects one inline <style>; allow exactly that one, by hash
        // (swagger-api/swagger-ui#10655), so the page runs with no CSP violation.
        transformStaticCSP: (header) =>
          header.replace("style-src 'self' https:", "style-src 'self' https: 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"),
      })
    })
    app.get('/openapi.json', { schema: { hide: true }, config: { access: 'public' } }, async () => app.swagger())
  },
  { name: 'openapi' },
)
