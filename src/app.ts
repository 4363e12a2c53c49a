/**
 * The app factory, used by the server and by every test (`app.inject`). It is read top to bottom:
 * cross-cutting plugins first, in dependency order, then one module per domain area.
 *
 * The caller opens the database and hands it over; the app closes it when it closes.
 */
import { randomUUID } from 'node:crypto'
import { validatorCompiler, type ZodTypeProvider } from '@fastify/type-provider-zod'
import Fastify, { type RouteOptions } from 'fastify'
import { z } from 'zod'
import type { Config } from './config.js'
import type { Database } from './db/client.js'
import strictUtf8 from './http/utf8.js'
import { clientRequestIdOf } from './http/context.js'
import { setStandardHeaders } from './http/headers.js'
import { responseSerializerCompiler } from './http/serializer.js'
import { learnRouteWords, loggerOptions, RequestLogController } from './logging.js'
import auditCheckpointing from './modules/audit/checkpointing.js'
import auditLinking from './modules/audit/linking.js'
import retentionSchedule from './modules/retention/schedule.js'
import { auditRoutes } from './modules/audit/routes.js'
import { assignmentRoutes } from './modules/assignments/routes.js'
import { assignmentConstraints } from './modules/assignments/service.js'
import { custodianRoutes } from './modules/custodians/routes.js'
import { deviceRoutes } from './modules/devices/routes.js'
import { DEVICE_SERVER_FIELDS } from './modules/devices/schemas.js'
import { assetTagRule, deviceConstraints } from './modules/devices/service.js'
import { healthRoutes } from './modules/health/routes.js'
import { incidentRoutes } from './modules/incidents/routes.js'
import { INCIDENT_SERVER_FIELDS } from './modules/incidents/schemas.js'
import { incidentConstraints } from './modules/incidents/service.js'
import { exportRoutes } from './modules/exports/routes.js'
import { reportRoutes } from './modules/reports/routes.js'
import { stocktakeRoutes } from './modules/stocktakes/routes.js'
import { stocktakeConstraints } from './modules/stocktakes/service.js'
import authPlugin, { type Authenticator } from './plugins/auth.js'
import databasePlugin from './plugins/database.js'
import idempotencyPlugin from './plugins/idempotency.js'
import protectionPlugin from './plugins/protection.js'
import openapiPlugin from './plugins/openapi.js'
import problemsPlugin, { answerConnectionError, type ProblemRules, problems, sendProblem, toProblem } from './plugins/problems.js'

export interface AppDependencies {
  database: Database
  /** Verifies bearer tokens; built from the configuration by `createAuthenticator`. */
  authenticator: Authenticator
  /** Where log lines go; defaults to stdout. Tests pass a stream to read them. */
  logStream?: NodeJS.WritableStream
  /** Sees every route as it is added (tests walk them all, e.g. the authorisation table). */
  onRoute?: (route: RouteOptions) => void
}

/** What each module knows about its own tables and fields, for the problems plugin's error mapping. */
export const problemRules: ProblemRules = {
  constraints: { ...assignmentConstraints, ...deviceConstraints, ...incidentConstraints, ...stocktakeConstraints },
  serverOwnedFields: new Set([...DEVICE_SERVER_FIELDS, ...INCIDENT_SERVER_FIELDS]),
}


export async function buildApp(config: Config, deps: AppDependencies) {
  const app = Fastify({
    logger: loggerOptions(config, deps.logStream),
    logController: new RequestLogController(),
    // The request id is always our own (log lines, audit events); a client's x-request-id is echoed
    // and recorded beside it, never instead: a client could send another request's.
    genReqId: () => randomUUID(),
    childLoggerFactory: (logger, bindings, options, raw) => {
      const clientRequestId = clientRequestIdOf(raw.headers)
      return logger.child(clientRequestId ? { ...bindings, clientRequestId } : bindings, options)
    },
    // The problems plugin answers with a problem+json 503 instead.
    return503OnClosing: false,
    // A request (headers and body) must arrive in full within REQUEST_BODY_TIMEOUT_MS, or it is a
    // 408 and the connection is closed. Node checks its connections every connectionsCheckingInterval
    // (30 s unless told), so the timeout fires up to that long after the deadline: check often.
    // Given twice: Node starts those checks only for a server created with a timeout (`http`), and
    // Fastify then sets the server's timeout to its own option (0, none, unless given).
    requestTimeout: config.REQUEST_BODY_TIMEOUT_MS,
    http: {
      requestTimeout: config.REQUEST_BODY_TIMEOUT_MS,
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(config.REQUEST_BODY_TIMEOUT_MS / 10)),
    },
    // Node's own refusals (timeout, headers too large, unparseable HTTP) as problem+json.
    clientErrorHandler: answerConnectionError,
    // Which X-Forwarded-For to believe for `request.ip` (the limit on callers without a token).
    trustProxy: config.TRUST_PROXY === undefined || config.TRUST_PROXY === 'false' ? false : config.TRUST_PROXY,
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 200 },
    // Errors raised before a route is found (a malformed URL) get the same problem+json treatment.
    frameworkErrors: (error, request, reply) => {
      setStandardHeaders(request, reply)
      sendProblem(reply, toProblem(error) ?? problems.badRequest('The request could not be read.'))
    },
  }).withTypeProvider<ZodTypeProvider>()

  // A /v1 route that declares no query parameters refuses any (the contract: no silent ignoring).
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/v1/')) return
    const schema = (route.schema ??= {}) as { querystring?: unknown }
    schema.querystring ??= z.strictObject({})
  })
  app.addHook('onRoute', (route) => learnRouteWords(route.url))
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute)
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(responseSerializerCompiler)
  // First of all the hooks: every refusal after it carries these headers.
  app.addHook('onRequest', (request, reply, done) => {
    setStandardHeaders(request, reply)
    done()
  })

  await app.register(problemsPlugin, problemRules)
  await app.register(strictUtf8)
  await app.register(databasePlugin, { database: deps.database })
  await app.register(auditLinking)
  await app.register(auditCheckpointing, { config })
  await app.register(retentionSchedule, { config })
  await app.register(openapiPlugin)
  // Before auth: load is shed, and failed authentications limited, before tokens are checked.
  await app.register(protectionPlugin, { config })
  await app.register(authPlugin, { authenticator: deps.authenticator })
  await app.register(idempotencyPlugin)

  await app.register(healthRoutes)
  await app.register(auditRoutes, { config })
  await app.register(custodianRoutes)
  await app.register(deviceRoutes, { assetTagRule: assetTagRule(config) })
  await app.register(assignmentRoutes)
  await app.register(incidentRoutes)
  await app.register(reportRoutes)
  await app.register(exportRoutes, { config })
  await app.register(stocktakeRoutes)

  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
