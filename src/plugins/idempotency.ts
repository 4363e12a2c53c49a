/**
 * `Idempotency-Key` for creating POSTs. A route opts in with `config: { idempotent: true }`; the
 * key is then documented on it and honoured:
 *
 * - first request with a key: the key is claimed (a row with no response yet), the route runs,
 *   and its response (status, exact body text, ETag/Location) is stored with a hash of the request;
 * - a 4xx from the route is stored and replayed like a 2xx; a request refused before the route
 *   runs (schema 400, 401, 403) never claims the key;
 * - same key, same request, same caller: the stored response is replayed, nothing runs again;
 * - same key, another request: 422; same key while the first is still running: 409;
 * - a 5xx is not stored (the key is released), so the client's retry runs for real;
 * - keys are scoped to the caller (the token's `sub`) and kept for 24 hours; an expired key, or a
 *   claim left by a request that died, is taken over by one conditional UPDATE (one winner).
 *
 * The claim is one INSERT … ON CONFLICT DO NOTHING, so of 20 concurrent requests with one key,
 * exactly one runs.
 */
import { createHash } from 'node:crypto'
import { and, eq, isNull, lt, lte, or, sql } from 'drizzle-orm'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import stringify from 'safe-stable-stringify'
import { z } from 'zod'
import { idempotencyKeys } from '../db/schema.js'
import { callerOf } from './auth.js'
import { claimKey, storeResponse } from './idempotency-batches.js'
import { problems } from './problems.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** This creating POST honours `Idempotency-Key`. */
    idempotent?: boolean
  }
  interface FastifyRequest {
    idempotencyClaim: { caller: string; key: string } | null
  }
}

/** What each refusal of a key means, for the OpenAPI document of every idempotent route. */
export const IDEMPOTENCY_REFUSALS = {
  409: 'A request with this Idempotency-Key is still running.',
  422: 'This Idempotency-Key was used with another request.',
} as const

export const KEY_TTL_MS = 24 * 60 * 60 * 1000
/** A claim with no response after this long belongs to a request that died; it may be taken over. */
const ABANDONED_AFTER_MS = 60 * 1000
const REPLAYED_HEADERS = ['etag', 'location', 'content-type'] as const

const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1, { error: 'must be 1 to 255 characters' })
    .max(255, { error: 'must be 1 to 255 characters' })
    .optional()
    .meta({ description: 'Makes a retried create safe: the first response is replayed. Kept 24 hours.' }),
})

function requestHash(request: FastifyRequest): string {
  const path = request.url.split('?')[0]
  return createHash('sha256')
    .update(`${request.method} ${path}\n${stringify(request.body ?? null)}`)
    .digest('hex')
}

const KEY_ERROR = { path: 'headers.idempotency-key', message: 'must be 1 to 255 characters' }

/** Claims the request's key, or replays its stored response; true when the reply was sent. */
async function claim(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, attempt = 0): Promise<boolean> {
  const key = request.headers['idempotency-key']
  if (key === undefined) return false
  // Checked here too: a route with its own headers schema may not carry the documented one.
  if (typeof key !== 'string' || key.length < 1 || key.length > 255) throw problems.validation([KEY_ERROR])
  const caller = callerOf(request).sub
  const hash = requestHash(request)
  const now = Date.now()
  const fresh = {
    method: request.method,
    path: request.url.split('?')[0]!,
    requestHash: hash,
    responseStatus: null,
    responseBody: null,
    responseHeaders: null,
    createdAt: new Date(now),
    expiresAt: new Date(now + KEY_TTL_MS),
  }
  const thisKey = and(eq(idempotencyKeys.caller, caller), eq(idempotencyKeys.key, key))
  const inserted = await claimKey(app.db, { caller, key, ...fresh })
  // An expired key, or a claim whose request died, is taken over in one UPDATE: of several
  // requests that find it so, the row lock lets exactly one through.
  const claimed =
    inserted ||
    (
      await app.db
        .update(idempotencyKeys)
        .set(fresh)
        .where(
          and(
            thisKey,
            or(
              lte(idempotencyKeys.expiresAt, new Date(now)),
              and(isNull(idempotencyKeys.responseStatus), lt(idempotencyKeys.createdAt, new Date(now - ABANDONED_AFTER_MS))),
            ),
          ),
        )
        .returning({ key: idempotencyKeys.key })
    ).length === 1
  if (claimed) {
    request.idempotencyClaim = { caller, key }
    return false
  }

  const [stored] = await app.db.select().from(idempotencyKeys).where(thisKey)
  if (!stored) {
    // Released between our insert and our read (the first request failed with a 5xx): claim again.
    if (attempt < 3) return claim(app, request, reply, attempt + 1)
    throw problems.conflict('A request with this Idempotency-Key is still in progress; retry in a moment.')
  }
  if (stored.requestHash !== hash) {
    throw problems.unprocessable('This Idempotency-Key was used with a different request; use a new key for a new request.', [
      { path: 'headers.idempotency-key', message: 'was used with a different request' },
    ])
  }
  if (stored.responseStatus === null) {
    throw problems.conflict('A request with this Idempotency-Key is still in progress; retry in a moment.', [
      { path: 'headers.idempotency-key', message: 'is in use by a request in progress' },
    ])
  }
  const headers = (stored.responseHeaders ?? {}) as Record<string, string>
  reply.headers(headers).header('idempotent-replayed', 'true').code(stored.responseStatus)
  // Stored as the exact text sent (a jsonb string), so the replay is the same bytes; it must not
  // go through the route's serializer again.
  const body = typeof stored.responseBody === 'string' ? stored.responseBody : JSON.stringify(stored.responseBody)
  reply.serializer((payload: unknown) => payload as string).send(body)
  return true
}

async function store(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, payload: unknown) {
  const claimed = request.idempotencyClaim
  if (!claimed) return
  request.idempotencyClaim = null
  const where = and(eq(idempotencyKeys.caller, claimed.caller), eq(idempotencyKeys.key, claimed.key))
  try {
    if (reply.statusCode >= 500 || typeof payload !== 'string') {
      await app.db.delete(idempotencyKeys).where(where)
      return
    }
    const headers: Record<string, string> = {}
    for (const name of REPLAYED_HEADERS) {
      const value = reply.getHeader(name)
      if (value !== undefined) headers[name] = String(value)
    }
    await storeResponse(app.db, { caller: claimed.caller, key: claimed.key, status: reply.statusCode, body: payload, headers })
  } catch (error) {
    // The response itself stands; a retry will find the key in flight, then abandoned, then free.
    request.log.error({ err: error }, 'could not store the idempotent response')
  }
}

/** A route's hooks of one kind, as an array (a route may give none, one, or several). */
function hooksOf<T>(hooks: T | T[] | undefined): T[] {
  if (hooks === undefined) return []
  return Array.isArray(hooks) ? hooks : [hooks]
}

export default fp(
  async function idempotencyPlugin(app: FastifyInstance) {
    app.decorateRequest('idempotencyClaim', null)

    // Expired keys are swept now and then, not on every request.
    let requestsSinceSweep = 0
    const claimHook = async (request: FastifyRequest, reply: FastifyReply) => {
      if (await claim(app, request, reply)) return reply
    }
    const storeHook = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      await store(app, request, reply, payload)
      return payload
    }
    const sweepHook = async (request: FastifyRequest) => {
      if (++requestsSinceSweep < 500) return
      requestsSinceSweep = 0
      await app.db.delete(idempotencyKeys).where(lt(idempotencyKeys.expiresAt, sql`now()`)).catch((error: unknown) => {
        request.log.warn({ err: error }, 'sweeping expired idempotency keys failed')
      })
    }

    // The hooks go on the routes that opt in, not on every request. Appended to each route's own,
    // they run after the hooks the route already has from the plugins before this one: the rate
    // limit answers before a key is claimed, like the other refusals that come before the route.
    app.addHook('onRoute', (route: RouteOptions) => {
      if (!route.config?.idempotent) return
      const schema = (route.schema ??= {}) as Record<string, unknown>
      schema.headers = schema.headers instanceof z.ZodObject ? schema.headers.extend(IdempotencyHeaders.shape) : (schema.headers ?? IdempotencyHeaders)
      route.preHandler = [...hooksOf(route.preHandler), claimHook]
      route.onSend = [...hooksOf(route.onSend), storeHook]
      route.onResponse = [...hooksOf(route.onResponse), sweepHook]
    })
  },
  { name: 'idempotency', dependencies: ['database', 'auth', 'problems'] },
)
