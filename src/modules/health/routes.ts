/**
 * Liveness and readiness, for load balancers and orchestrators; neither needs a token.
 * `/healthz` never touches the database (a slow database must not get the process restarted);
 * `/readyz` answers 503 while the database does not, so traffic goes elsewhere meanwhile.
 */
import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { problems, ProblemSchema } from '../../plugins/problems.js'

const HealthSchema = z.object({ status: z.literal('ok') }).meta({ id: 'Health' })

/** How long readiness waits for the database before calling it down. */
const READY_TIMEOUT_MS = 2_000

export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'checkLiveness',
        tags: ['operations'],
        summary: 'Liveness: the process is up',
        response: { 200: HealthSchema },
      },
      config: { access: 'public' },
      logLevel: 'warn',
    },
    async () => ({ status: 'ok' as const }),
  )

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'checkReadiness',
        tags: ['operations'],
        summary: 'Readiness: the database answers',
        response: {
          200: HealthSchema,
          503: ProblemSchema.meta({ description: `The database does not answer within ${READY_TIMEOUT_MS / 1000} s.` }),
        },
      },
      config: { access: 'public' },
      logLevel: 'warn',
    },
    async (request) => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('readiness check timed out')), READY_TIMEOUT_MS)
      })
      try {
        await Promise.race([app.database.ping(), timeout])
      } catch (error) {
        request.log.warn({ err: error }, 'database is not ready')
        throw problems.unavailable('The database does not answer.')
      } finally {
        clearTimeout(timer)
      }
      return { status: 'ok' as const }
    },
  )
}
