/**
 * What a write needs to know about the request that caused it: who (the token's `sub`, the audit
 * actor) and which request (its id, so a log line and an audit event can be matched).
 */
import type { FastifyRequest } from 'fastify'
import { callerOf } from '../plugins/auth.js'

export interface WriteContext {
  actor: string
  requestId: string
}

export function writeContext(request: FastifyRequest): WriteContext {
  return { actor: callerOf(request).sub, requestId: request.id }
}
