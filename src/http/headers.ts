/**
 * The headers every answer carries, errors included: its request id, helmet's security headers, and
 * `Cache-Control: no-store` under /v1 (personal and security data: no cache on the way may keep
 * it). Set by the app's first onRequest hook, before anything can refuse the request, and by the
 * answer to a request Fastify refuses before any hook runs (a malformed URL).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import helmet from 'helmet'
import { clientRequestIdOf } from './context.js'

const UNDER_V1 = /^\/v1(?:[/?]|$)/

/**
 * helmet's headers, worked out once. With these options (no nonces, no directive computed per
 * request) every response gets the same set, so running its middleware on each request would
 * redo the same work; the set is taken from the middleware itself, run once against a stand-in
 * response, so it stays whatever helmet's defaults are. (Its one removal, `X-Powered-By`, has
 * nothing to remove: neither Node nor Fastify sets that header.)
 */
function securityHeaders(): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = String(value)
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()]
    },
  }
  let failed: unknown
  let finished = false
  helmet({
    // A JSON API needs no resources loaded; the docs page sets its own policy (swagger-ui's staticCSP).
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    hsts: { maxAge: 31_536_000, includeSubDomains: true },
  })({} as IncomingMessage, response as unknown as ServerResponse, (error?: unknown) => {
    failed = error
    finished = true
  })
  if (failed || !finished) throw new Error('helmet did not produce its headers synchronously', { cause: failed })
  return headers
}

const SECURITY_HEADERS = securityHeaders()

export function setStandardHeaders(request: FastifyRequest, reply: FastifyReply): void {
  reply.headers(SECURITY_HEADERS)
  // A client's own id is echoed (it knows it); ours is in the logs and audit events either way.
  reply.header('x-request-id', clientRequestIdOf(request.headers) ?? request.id)
  if (UNDER_V1.test(request.url)) reply.header('cache-control', 'no-store')
}
