/**
 * What a write needs to know about the request that caused it: who (the token's `sub`, the audit
 * actor) and which request: the server's own id (`request.id`, in every log line and audit event)
 * and, when the client named the request (`x-request-id`), that name beside it.
 *
 * The client's name is only ever recorded beside the server's id, never instead of it: a client
 * may send any name, another request's included, so it identifies nothing on its own.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import { callerOf } from '../plugins/auth.js'

export interface WriteContext {
  actor: string
  requestId: string
  /** The client's `x-request-id`, when it sent a plain one. */
  clientRequestId?: string | null
}

/** A client's name for its request is kept if short and plain (it is echoed in a header and logged). */
const CLIENT_REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/

/** The client's `x-request-id`, or undefined when it sent none or one that is not short and plain. */
export function clientRequestIdOf(headers: IncomingHttpHeaders): string | undefined {
  const given = headers['x-request-id']
  return typeof given === 'string' && CLIENT_REQUEST_ID_PATTERN.test(given) ? given : undefined
}

export function writeContext(request: FastifyRequest): WriteContext {
  return { actor: callerOf(request).sub, requestId: request.id, clientRequestId: clientRequestIdOf(request.headers) ?? null }
}
