/**
 * What keeps the service standing when clients misbehave or the machine is overloaded:
 *
 * - no CORS unless `CORS_ORIGINS` names the origins allowed (the headers every answer carries are
 *   src/http/headers.ts's);
 * - rate limits per caller (the token's `sub`, or the address before authentication), stricter on
 *   the heavy routes (`config.heavy`: exports, imports, reports); state in Redis when `REDIS_URL` is set, so several
 *   instances share it, else in memory; 429 with `Retry-After`;
 * - a limit on failed authentications per address (`app.authenticationLimit`, used by the auth
 *   plugin), checked before any signature is;
 * - load shedding (@fastify/under-pressure): when the event loop lags or the heap is too full,
 *   503 with `Retry-After` rather than queueing until everything times out. Liveness is exempt.
 *
 * Every refusal is problem+json, like every other error.
 */
import cors from '@fastify/cors'
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { HttpProblem, problems, sendProblem } from './problems.js'

type ProtectionConfig = Pick<
  Config,
  | 'RATE_LIMIT_PER_MINUTE'
  | 'RATE_LIMIT_HEAVY_PER_MINUTE'
  | 'RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE'
  | 'REDIS_URL'
  | 'PRESSURE_MAX_EVENT_LOOP_DELAY_MS'
  | 'PRESSURE_MAX_HEAP_MB'
  | 'CORS_ORIGINS'
>

/** Failed authentications per address, around the auth plugin's token check. */
export interface AuthenticationLimit {
  /**
   * Runs `check` for the request's address, counting it as a failure if it throws one that
   * `isFailure` says is; refuses (429 with Retry-After) without running it when the address has
   * used up its failures, counting the checks still running from it as failures to come.
   */
  guard<T>(request: FastifyRequest, check: () => Promise<T>, isFailure: (error: unknown) => boolean): Promise<T>
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticationLimit: AuthenticationLimit
  }
}

const NO_AUTHENTICATION_LIMIT: AuthenticationLimit = { guard: (_request, check) => check() }

/** Routes that must answer even under pressure: an orchestrator restarts what fails liveness. */
const ALWAYS_ANSWER = new Set(['/healthz', '/readyz'])
const SHED_RETRY_AFTER_SECONDS = 5
/** How often load shedding measures the event loop and the heap. */
export const PRESSURE_SAMPLE_MS = 250

const callerKey = (request: FastifyRequest) => (request.principal ? `sub:${request.principal.sub}` : `ip:${request.ip}`)

function tooManyRequests(detail: string, ttlMs: number): HttpProblem {
  return new HttpProblem(429, 'too-many-requests', detail, {
    headers: { 'retry-after': String(Math.max(1, Math.ceil(ttlMs / 1000))) },
  })
}

export default fp(
  async function protectionPlugin(app: FastifyInstance, options: { config: ProtectionConfig }) {
    const { config } = options

    if (config.CORS_ORIGINS) {
      // The preflight route answers browsers before any token is sent.
      app.addHook('onRoute', (route: RouteOptions) => {
        if (route.method === 'OPTIONS') route.config = { ...route.config, access: 'public' }
      })
      await app.register(cors, {
        origin: config.CORS_ORIGINS.split(',').map((origin) => origin.trim()),
        methods: ['GET', 'POST', 'PATCH'],
        allowedHeaders: ['authorization', 'content-type', 'if-match', 'idempotency-key', 'x-request-id'],
        exposedHeaders: ['etag', 'location', 'retry-after', 'x-request-id', 'content-disposition'],
      })
    }

    const perCaller = config.RATE_LIMIT_PER_MINUTE > 0
    const failedAuthentications = config.RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE > 0
    let authenticationLimit = NO_AUTHENTICATION_LIMIT
    if (perCaller || failedAuthentications) {
      const redis = config.REDIS_URL
        ? new Redis(config.REDIS_URL, { connectTimeout: 1_000, maxRetriesPerRequest: 1, lazyConnect: false })
        : undefined
      if (redis) {
        redis.on('error', (error) => app.log.warn({ err: error }, 'rate-limit store (Redis) unavailable'))
        app.addHook('onClose', async () => {
          await redis.quit().catch(() => redis.disconnect())
        })
      }
      await app.register(rateLimit, {
        // Every route's own limit only when there is one; the failed-authentication limit below
        // is used by hand either way.
        global: perCaller,
        max: config.RATE_LIMIT_PER_MINUTE,
        timeWindow: 60_000,
        // After authentication, so the limit follows the caller, not a shared proxy address.
        hook: 'preHandler',
        keyGenerator: callerKey,
        allowList: (request) => ALWAYS_ANSWER.has(request.routeOptions.url ?? ''),
        ...(redis ? { redis, nameSpace: 'dlr-rate-limit:', skipOnError: true } : {}),
        errorResponseBuilder: (_request, context) =>
          tooManyRequests(`Too many requests: at most ${context.max} a minute; retry after ${context.after}.`, context.ttl),
      })

      if (perCaller && config.RATE_LIMIT_HEAVY_PER_MINUTE > 0) {
        // The heavy routes (`config.heavy`: a few a minute is plenty for a person) share one
        // smaller allowance per caller, on top of the general one. One limiter for all of them:
        // a route's own `config.rateLimit` would count each route apart (the library keeps a
        // store per route), so a caller could run every heavy route at the heavy rate at once.
        const heavyLimit = app.rateLimit({ max: config.RATE_LIMIT_HEAVY_PER_MINUTE, timeWindow: 60_000 })
        app.addHook('onRoute', (route: RouteOptions) => {
          if (!route.config?.heavy) return
          const own = route.preHandler ? [route.preHandler].flat() : []
          route.preHandler = [heavyLimit, ...own]
        })
      }

      if (failedAuthentications) {
        // Only failures count (@fastify/rate-limit's manual limiter: peek without counting, count
        // on failure), so a building of users behind one proxy address is never throttled for
        // signing in, while a flood of bad tokens from it stops costing signature checks. The
        // address is normalised as the library does by default (an IPv6 /64 is one caller).
        const failures = app.createRateLimit({
          max: config.RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE,
          timeWindow: 60_000,
          keyGenerator: (request) => `failed-authentication:${normalizeIP(request.ip)}`,
        })
        // Checks under way per address: a burst of bad tokens sent at once would otherwise all be
        // checked before the first failure was counted.
        const running = new Map<string, number>()
        authenticationLimit = {
          async guard(request, check, isFailure) {
            const address = normalizeIP(request.ip)
            const state = await failures(request, { increment: false })
            const underWay = running.get(address) ?? 0
            if (!state.isAllowed && state.remaining - underWay <= 0) {
              throw tooManyRequests(
                `Too many failed authentications from this address: at most ${state.max} a minute; retry after ${state.ttlInSeconds} s.`,
                state.ttl,
              )
            }
            running.set(address, underWay + 1)
            try {
              return await check()
            } catch (error) {
              if (isFailure(error)) await failures(request)
              throw error
            } finally {
              const left = running.get(address)! - 1
              if (left === 0) running.delete(address)
              else running.set(address, left)
            }
          },
        }
      }
    }
    app.decorate('authenticationLimit', authenticationLimit)

    if (config.PRESSURE_MAX_EVENT_LOOP_DELAY_MS > 0 || config.PRESSURE_MAX_HEAP_MB > 0) {
      await app.register(underPressure, {
        sampleInterval: PRESSURE_SAMPLE_MS,
        maxEventLoopDelay: config.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
        maxHeapUsedBytes: config.PRESSURE_MAX_HEAP_MB * 1024 * 1024,
        pressureHandler: (request, reply) => {
          if (ALWAYS_ANSWER.has(request.routeOptions.url ?? '')) return
          sendProblem(reply, problems.unavailable('The service is overloaded; retry shortly.', SHED_RETRY_AFTER_SECONDS))
        },
      })
    }
  },
  { name: 'protection', dependencies: ['problems'] },
)
