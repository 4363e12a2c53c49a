/**
 * Who may do what. Every route declares its access next to its schema:
 *
 *   config: { access: ['security', 'asset_manager'] }   // any of these roles
 *   config: { access: 'public' }                         // no token (health, docs)
 *
 * A route that declares nothing is refused for everyone (deny by default), and the OpenAPI
 * document shows each route's bearer requirement and roles, taken from the same declaration.
 *
 * Tokens are JWTs verified with jose (see `authenticator.ts`); any failure is a 401 problem with
 * `WWW-Authenticate: Bearer`, a valid token without a permitted role is 403.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { type Authenticator, InvalidTokenError, KeysUnavailableError, type Principal, type Role } from '../auth/authenticator.js'
import { ProblemSchema, problems } from './problems.js'

export type { Authenticator, Principal, Role }

export type Access = 'public' | readonly Role[]

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
  }
  interface FastifyRequest {
    /** The verified caller; null only on public routes. */
    principal: Principal | null
  }
}

/** The caller of a protected route (the auth hook has run, so there is one). */
export function callerOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new Error('callerOf() used on a route without authentication')
  return request.principal
}

export function hasRole(request: FastifyRequest, role: Role): boolean {
  return request.principal?.roles.includes(role) ?? false
}

function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization
  if (!header) throw problems.unauthorized('This route needs a bearer token (Authorization: Bearer <JWT>).')
  const match = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)$/i.exec(header)
  if (!match?.[1]) throw problems.unauthorized('The Authorization header must be "Bearer <JWT>".')
  return match[1]
}

/** Adds the access declaration to the route's OpenAPI entry: security scheme, roles, 401/403. */
function documentAccess(route: RouteOptions): void {
  const access = route.config?.access
  if (access === undefined || access === 'public') return
  const schema = (route.schema ??= {}) as Record<string, unknown>
  schema.security = [{ bearer: [] }]
  const roles = `Roles: ${access.map((role) => `\`${role}\``).join(', ')}.`
  schema.description = schema.description ? `${String(schema.description)}\n\n${roles}` : roles
  schema['x-roles'] = [...access]
  const response = (schema.response ??= {}) as Record<string, unknown>
  response[401] ??= ProblemSchema
  response[403] ??= ProblemSchema
}

export default fp(
  async function authPlugin(app: FastifyInstance, options: { authenticator: Authenticator }) {
    const { authenticator } = options
    app.decorateRequest('principal', null)

    app.addHook('onRoute', documentAccess)

    app.addHook('onRequest', async (request) => {
      if (request.is404) return
      const access = request.routeOptions.config.access
      if (access === 'public') return
      if (access === undefined) {
        // A route without a declaration is a bug; refuse rather than guess.
        request.log.error({ route: request.routeOptions.url }, 'route declares no access; refused')
        throw problems.forbidden('This route is not open to any role.')
      }
      let principal: Principal
      try {
        principal = await authenticator.verify(bearerToken(request))
      } catch (error) {
        if (error instanceof InvalidTokenError) throw problems.unauthorized(error.message)
        if (error instanceof KeysUnavailableError) {
          // A 401 would send clients to sign in again for nothing; the outage is ours (or the IdP's).
          request.log.warn({ err: error.cause }, 'identity provider keys unavailable')
          throw problems.unavailable('Tokens cannot be checked right now (identity provider keys unavailable); retry shortly.')
        }
        throw error
      }
      request.principal = principal
      if (!access.some((role) => principal.roles.includes(role))) {
        throw problems.forbidden(`This route needs one of the roles: ${access.join(', ')}.`)
      }
    })
  },
  { name: 'auth', dependencies: ['problems'] },
)
