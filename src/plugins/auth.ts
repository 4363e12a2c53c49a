/**
 * Who may do what. Every route declares its access next to its schema:
 *
 *   config: { access: ['security', 'asset_manager'] }   // any of these roles
 *   config: { access: 'public' }                         // no token (health, docs)
 *
 * A route that declares nothing is refused for everyone (deny by default), and the OpenAPI
 * document shows each route's bearer requirement, roles, 401, 403 and 429, taken from the same
 * declaration (plugins/openapi.ts).
 *
 * Tokens are JWTs verified with jose (see `authenticator.ts`); any failure is a 401 problem with
 * `WWW-Authenticate: Bearer`, a valid token without a permitted role is 403. Each failure is
 * counted against the caller's address (the protection plugin's `authenticationLimit`); an address
 * that has used up its failures gets 429 before its token is checked, unless the token is one that
 * verified a moment ago, so a flood of forgeries stops costing signature checks.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type Authenticator, InvalidTokenError, KeysUnavailableError, type Principal, type Role } from '../auth/authenticator.js'
import { problems } from './problems.js'

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

/** The token of `Authorization: Bearer <JWT>`, or why there is none. */
function bearerToken(request: FastifyRequest): { token: string } | { missing: string } {
  const header = request.headers.authorization
  if (!header) return { missing: 'This route needs a bearer token (Authorization: Bearer <JWT>).' }
  const match = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)$/i.exec(header)
  if (!match?.[1]) return { missing: 'The Authorization header must be "Bearer <JWT>".' }
  return { token: match[1] }
}

export default fp(
  async function authPlugin(app: FastifyInstance, options: { authenticator: Authenticator }) {
    const { authenticator } = options
    const limit = app.authenticationLimit
    app.decorateRequest('principal', null)

    async function authenticate(request: FastifyRequest): Promise<Principal> {
      const bearer = bearerToken(request)
      const known = 'token' in bearer ? authenticator.remembered(bearer.token) : undefined
      if (known) return known
      try {
        return await limit.guard(
          request,
          async () => {
            if ('missing' in bearer) throw new InvalidTokenError(bearer.missing)
            return authenticator.verify(bearer.token)
          },
          (error) => error instanceof InvalidTokenError,
        )
      } catch (error) {
        if (error instanceof InvalidTokenError) throw problems.unauthorized(error.message)
        if (error instanceof KeysUnavailableError) {
          // A 401 would send clients to sign in again for nothing; the outage is ours (or the IdP's).
          request.log.warn({ err: error.cause }, 'identity provider keys unavailable')
          throw problems.unavailable('Tokens cannot be checked right now (identity provider keys unavailable); retry shortly.')
        }
        throw error
      }
    }

    app.addHook('onRequest', async (request) => {
      if (request.is404) return
      const access = request.routeOptions.config.access
      if (access === 'public') return
      if (access === undefined) {
        // A route without a declaration is a bug; refuse rather than guess.
        request.log.error({ route: request.routeOptions.url }, 'route declares no access; refused')
        throw problems.forbidden('This route is not open to any role.')
      }
      const principal = await authenticate(request)
      request.principal = principal
      if (!access.some((role) => principal.roles.includes(role))) {
        throw problems.forbidden(`This route needs one of the roles: ${access.join(', ')}.`)
      }
    })
  },
  { name: 'auth', dependencies: ['problems', 'protection'] },
)
