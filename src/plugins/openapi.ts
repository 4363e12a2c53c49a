/**
 * The OpenAPI 3.1 document, generated from the route schemas (one zod schema per shape is
 * validation, types and documentation at once), served at `/openapi.json`, with an interactive
 * page at `/docs`.
 *
 * A route's schema block names its operation (operationId, summary, tags), its input, its success
 * response and the errors only it raises. What the cross-cutting plugins make a route answer is
 * added here, at document time, from the route's own declarations, so that no route repeats it and
 * none can forget it:
 *
 * - `config.access` (auth plugin): public is `security: []`; otherwise the bearer requirement, the
 *   roles, 401, 403, 429 (rate limits, failed authentications) and 503 (load shedding, database,
 *   identity provider);
 * - input to validate (query, headers, body): 400; a body: 408, 413 and 415; an id in the path: 404
 *   and 414 (longer than any id); every operation: 431 (headers too large);
 * - `config.idempotent` (idempotency plugin): 409 while the key's first request runs, 422 when the
 *   key comes back with another request;
 * - PATCH (If-Match, http/preconditions.ts): 412 and 428;
 * - `default`: any other error, a 500 included.
 *
 * Every error is `application/problem+json` with the Problem schema, whatever else the operation
 * produces. A route may say what one of its error statuses means there
 * (`409: ProblemSchema.meta({ description })`), give a success response per media type
 * (`{ description, content: { 'text/csv': { schema } } }`), and an example of its body
 * (`withExample`). Components that no operation refers to are left out: zod's registry yields an
 * input and an output variant of every schema, and each operation uses one.
 */
import { STATUS_CODES } from 'node:http'
import swagger, { type SwaggerTransform, type SwaggerTransformObject } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { jsonSchemaTransform, jsonSchemaTransformObject } from '@fastify/type-provider-zod'
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { z } from 'zod'
import { IDEMPOTENCY_REFUSALS } from './idempotency.js'
import { ProblemSchema } from './problems.js'

export const API_TITLE = 'Device loss register'
export const API_VERSION = '1.0.0'

/** The areas of the API, in the order the docs page shows them; every operation names one. */
export const API_TAGS = [
  { name: 'devices', description: 'The inventory: registering, changing, importing and retiring devices, and what happened to each.' },
  { name: 'custodians', description: 'The people and offices that hold devices: MPs, peers, staff and offices.' },
  { name: 'assignments', description: 'Who holds which device: handing devices out and taking them back.' },
  { name: 'incidents', description: 'Losses and thefts, their follow-up notes, recoveries and write-offs, and the risk of each.' },
  { name: 'reports', description: 'The risk summary of a period and its chart, and the lists of devices needing attention.' },
  { name: 'exports', description: 'The Freedom of Information list of lost and stolen devices, with no personal data in it.' },
  { name: 'stocktakes', description: 'Inventory reconciliation: scans of what is really there, and what they found wrong.' },
  { name: 'audit', description: 'The audit trail of every change, and the check of its hash chain.' },
  { name: 'operations', description: 'Liveness and readiness, for load balancers and orchestrators; no token needed.' },
]

const PROBLEM_MEDIA_TYPE = 'application/problem+json'
const SCHEMA_REF_PREFIX = '#/components/schemas/'

/** What each error status means when the route says nothing more particular. */
const ERROR_MEANINGS: Record<string, string> = {
  400: 'The request is not valid: `errors` names each field, unknown fields and query parameters included.',
  401: 'No valid bearer token: missing, malformed, expired, or not one this service accepts.',
  403: 'The token carries none of the roles this operation allows.',
  404: 'There is no such record (an id in the path that is not a UUID names none).',
  406: 'The Accept header allows none of the types this operation offers.',
  408: 'The request body did not arrive in time.',
  409: 'The state of the record does not allow this, or a unique field is already taken.',
  412: 'If-Match does not name the current version (or is weak): read the record again.',
  413: 'The body is larger than this operation accepts.',
  414: 'A segment of the path is longer than any id the register uses.',
  415: 'The body is not of a type this operation reads.',
  422: 'The request breaks a rule of the register (it names a record that does not exist, for one); `errors` says where.',
  428: 'If-Match is missing: send the ETag you last read.',
  429: 'Too many requests from this caller, or too many failed authentications from this address: wait `Retry-After` seconds.',
  431: 'The request line and headers together are larger than the server accepts.',
  503: 'Overloaded, or the database or the identity provider is unavailable: retry after `Retry-After` seconds.',
  default: 'Any other error. A 500 carries only a generic detail and the request id.',
}

const RETRY_AFTER = { 'Retry-After': { type: 'integer', minimum: 1, description: 'Seconds to wait before retrying.' } }
const ERROR_HEADERS: Record<string, Record<string, unknown>> = {
  401: { 'WWW-Authenticate': { type: 'string', description: '`Bearer`.' } },
  429: RETRY_AFTER,
  503: RETRY_AFTER,
}

type Json = Record<string, unknown>

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const isZod = (value: unknown): value is z.core.$ZodType => value instanceof z.core.$ZodType
const isError = (status: string) => status === 'default' || Number(status) >= 400

const bodyExamples = new WeakMap<z.core.$ZodType, unknown>()

/**
 * `schema` itself, with an example of a body it accepts for the document (typed as its input, and
 * checked against the document's schema by the OpenAPI lint test).
 */
export function withExample<T extends z.core.$ZodType>(schema: T, example: z.input<T>): T {
  bodyExamples.set(schema, example)
  return schema
}

/**
 * Carries what the operation's body is (its example; whether it may be left out) from the route
 * transform to the document transform, which puts it on the request body: @fastify/swagger
 * keeps only the schema there, and always marks a body required.
 */
const BODY_KEY = 'x-request-body'

/** A component of its own: a zod schema registered with an id (`.meta({ id })`), shown by `$ref`. */
const isComponent = (schema: unknown): schema is z.core.$ZodType => isZod(schema) && typeof z.globalRegistry.get(schema)?.id === 'string'

/**
 * What the route says a response means: the description of `{ description, content }`, of a
 * success schema, or of an error's `ProblemSchema.meta({ description })` (a component's own
 * description says what the schema is, not what the status means here).
 */
function ownDescription(response: unknown, status: string): string | undefined {
  if (isZod(response)) {
    if (isError(status) && isComponent(response)) return undefined
    const description = z.globalRegistry.get(response)?.description
    return typeof description === 'string' ? description : undefined
  }
  return isRecord(response) && typeof response.description === 'string' ? response.description : undefined
}

/** A success response given per media type: `{ description?, content: { [type]: { schema } } }`. */
function contentOf(response: unknown): Record<string, z.core.$ZodType> | undefined {
  if (isZod(response) || !isRecord(response) || !isRecord(response.content)) return undefined
  const content: Record<string, z.core.$ZodType> = {}
  for (const [mediaType, media] of Object.entries(response.content)) {
    if (isRecord(media) && isZod(media.schema)) content[mediaType] = media.schema
  }
  return content
}

/** Every error status the route can answer, with what each means there. */
function errorsOf(route: RouteOptions, schema: FastifySchema, declared: Json): Map<string, Set<string>> {
  const errors = new Map<string, Set<string>>()
  const add = (status: string, meaning: string | undefined) => {
    const meanings = errors.get(status) ?? new Set<string>()
    meanings.add(meaning ?? ERROR_MEANINGS[status] ?? STATUS_CODES[status] ?? 'Error')
    errors.set(status, meanings)
  }
  for (const [status, response] of Object.entries(declared)) if (isError(status)) add(status, ownDescription(response, status))

  const config = route.config ?? {}
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  if (config.access !== 'public') for (const status of ['401', '403', '429', '503']) add(status, undefined)
  if (schema.querystring || schema.headers || schema.body) add('400', undefined)
  if (schema.body) for (const status of ['408', '413', '415']) add(status, undefined)
  if (schema.params) for (const status of ['404', '414']) add(status, undefined)
  add('431', undefined)
  if (config.idempotent) for (const [status, meaning] of Object.entries(IDEMPOTENCY_REFUSALS)) add(status, meaning)
  if (methods.includes('PATCH')) for (const status of ['412', '428']) add(status, undefined)
  add('default', undefined)
  return errors
}

/** Who may call the operation: nobody's token for a public route, else a bearer token with one of the roles. */
function accessOf(route: RouteOptions, schema: FastifySchema): Json {
  const access = route.config?.access
  if (access === 'public') return { security: [] }
  const roles = access ?? []
  const line = roles.length ? `Roles: ${roles.map((role) => `\`${role}\``).join(', ')}.` : 'Open to no role.'
  return {
    security: [{ bearer: [] }],
    'x-roles': [...roles],
    description: typeof schema.description === 'string' ? `${schema.description}\n\n${line}` : line,
  }
}

/** One route's operation: the zod type provider's conversion, with everything the module above adds. */
const transform: SwaggerTransform = (document) => {
  const { schema, route } = document
  if (!schema || schema.hide) return jsonSchemaTransform(document)
  const declared = isRecord(schema.response) ? schema.response : {}

  // Everything zod must convert, in one call: success schemas (one per media type where the
  // route gives several), the problem schema, and any error component of the route's own (an
  // import's problem with its lines).
  const toConvert: Json = { problem: ProblemSchema }
  for (const [status, response] of Object.entries(declared)) {
    if (isError(status)) {
      if (isComponent(response)) toConvert[`error ${status}`] = response
      continue
    }
    const content = contentOf(response)
    if (!content) toConvert[status] = response
    else for (const [mediaType, mediaSchema] of Object.entries(content)) toConvert[`${status} ${mediaType}`] = mediaSchema
  }
  const converted = jsonSchemaTransform({ ...document, schema: { ...schema, response: toConvert } })
  const operation: Json = { ...converted.schema }
  const json = isRecord(operation.response) ? operation.response : {}

  const responses: Json = {}
  for (const [status, response] of Object.entries(declared)) {
    if (isError(status)) continue
    const content = contentOf(response)
    const description = ownDescription(response, status) ?? STATUS_CODES[status] ?? 'Success'
    if (!content) {
      const converted = isRecord(json[status]) ? json[status] : {}
      responses[status] = { description, ...converted }
    } else {
      const media = Object.keys(content).map((mediaType) => [mediaType, { schema: json[`${status} ${mediaType}`] }])
      responses[status] = { description, content: Object.fromEntries(media) }
    }
  }
  for (const [status, meanings] of errorsOf(route, schema, declared)) {
    const headers = ERROR_HEADERS[status]
    responses[status] = {
      description: [...meanings].join(' '),
      content: { [PROBLEM_MEDIA_TYPE]: { schema: json[`error ${status}`] ?? json.problem } },
      ...(headers ? { headers } : {}),
    }
  }
  operation.response = responses
  Object.assign(operation, accessOf(route, schema))
  if (isZod(schema.body)) {
    // A body that may be left out (`ReturnBody.nullish()`) is not required.
    operation[BODY_KEY] = { example: bodyExamples.get(schema.body), required: !z.safeParse(schema.body, undefined).success }
  }
  // The operation as @fastify/swagger reads it; FastifySchema types only the keys Fastify knows.
  return { schema: operation as FastifySchema, url: converted.url }
}

/** Each operation's body, as the route transform described it (BODY_KEY): whether required, and its example. */
function describeBodies(paths: unknown): void {
  if (!isRecord(paths)) return
  for (const item of Object.values(paths)) {
    if (!isRecord(item)) continue
    for (const operation of Object.values(item)) {
      if (!isRecord(operation) || !isRecord(operation[BODY_KEY])) continue
      const { example, required } = operation[BODY_KEY]
      delete operation[BODY_KEY]
      if (!isRecord(operation.requestBody)) continue
      operation.requestBody.required = required
      const content = isRecord(operation.requestBody.content) ? operation.requestBody.content : {}
      if (example !== undefined) for (const media of Object.values(content)) if (isRecord(media)) media.example = example
    }
  }
}

/** The names of the component schemas that `root` refers to, directly or through other components. */
function referencedSchemas(root: unknown, schemas: Json): Set<string> {
  const used = new Set<string>()
  const pending: unknown[] = [root]
  while (pending.length) {
    const value = pending.pop()
    if (Array.isArray(value)) pending.push(...value)
    else if (isRecord(value)) {
      for (const [key, inner] of Object.entries(value)) {
        if (key === '$ref' && typeof inner === 'string' && inner.startsWith(SCHEMA_REF_PREFIX)) {
          const name = inner.slice(SCHEMA_REF_PREFIX.length)
          if (!used.has(name)) pending.push(schemas[name])
          used.add(name)
        } else pending.push(inner)
      }
    }
  }
  return used
}

/** The whole document: the zod type provider's components, only those used, by name; the bodies described. */
const transformObject: SwaggerTransformObject = (document) => {
  const openapi: Json = { ...jsonSchemaTransformObject(document) }
  describeBodies(openapi.paths)
  const components = isRecord(openapi.components) ? openapi.components : {}
  const schemas = isRecord(components.schemas) ? components.schemas : {}
  const used = referencedSchemas(openapi.paths, schemas)
  // By name, so that the order never depends on which module happened to be imported first.
  const kept = Object.keys(schemas).filter((name) => used.has(name)).sort()
  openapi.components = { ...components, schemas: Object.fromEntries(kept.map((name) => [name, schemas[name]])) }
  // The same document, walked as plain JSON above.
  return openapi as ReturnType<SwaggerTransformObject>
}

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
        // Relative: the service that serves this document (and the docs page) is the one it describes.
        servers: [{ url: '/', description: 'The service that serves this document' }],
        tags: API_TAGS,
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          },
        },
      },
      transform,
      transformObject,
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
