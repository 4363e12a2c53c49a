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
import { responseSerializerCompiler } from './http/serializer.js'
import { loggerOptions, RequestLogController } from './logging.js'
import auditLinking from './modules/audit/linking.js'
import { auditRoutes } from './modules/audit/routes.js'
import { assignmentRoutes } from './modules/assignments/routes.js'
import { assignmentConstraints } from './modules/assignments/service.js'
import { custodianRoutes } from './modules/custodians/routes.js'
import { deviceRoutes } from './modules/devices/routes.js'
import { DEVICE_SERVER_FIELDS } from './modules/devices/schemas.js'
import { deviceConstraints } from './modules/devices/service.js'
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
import problemsPlugin, { type ProblemRules, problems, sendProblem, toProblem } from './plugins/problems.js'

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

/** A client may name its request (`x-request-id`) if the name is short and plain; else we pick one. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/

export async function buildApp(config: Config, deps: AppDependencies) {
  const app = Fastify({
    logger: loggerOptions(config, deps.logStream),
    logController: new RequestLogController(),
    genReqId: (request) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID()
    },
    return503OnClosing: true,
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 200 },
    // Errors raised before a route is found (a malformed URL) get the same problem+json treatment.
    frameworkErrors: (error, _request, reply) => {
      sendProblem(reply, toProblem(error) ?? problems.badRequest('The request could not be read.'))
    },
  }).withTypeProvider<ZodTypeProvider>()

  // A /v1 route that declares no query parameters refuses any (the contract: no silent ignoring).
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/v1/')) return
    const schema = (route.schema ??= {}) as { querystring?: unknown }
    schema.querystring ??= z.strictObject({})
  })
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute)
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(responseSerializerCompiler)
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })

  await app.register(problemsPlugin, problemRules)
  await app.register(databasePlugin, { database: deps.database })
  await app.register(auditLinking)
  await app.register(openapiPlugin)
  // Before auth: headers go on every response (401s too), and load is shed before tokens are checked.
  await app.register(protectionPlugin, { config })
  await app.register(authPlugin, { authenticator: deps.authenticator })
  await app.register(idempotencyPlugin)

  await app.register(healthRoutes)
  await app.register(auditRoutes)
  await app.register(custodianRoutes)
  await app.register(deviceRoutes)
  await app.register(assignmentRoutes)
  await app.register(incidentRoutes)
  await app.register(reportRoutes)
  await app.register(exportRoutes)
  await app.register(stocktakeRoutes)

  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
