/**
 * Logging: pino JSON lines, one per request (request id, method, route, path, status, time).
 *
 * The query string is left out (a search for a custodian's name is personal data), and so are all
 * headers (the `authorization` header above all) and the caller: who did what is the audit trail's
 * business, not the log's. Redaction is kept as a second line of defence.
 */
import { type FastifyReply, type FastifyRequest, type FastifyServerOptions, LogController } from 'fastify'
import type { Config } from './config.js'

export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>, stream?: NodeJS.WritableStream) {
  return {
    level: config.LOG_LEVEL,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'authorization'],
      censor: '[redacted]',
    },
    ...(stream ? { stream } : {}),
  } satisfies FastifyServerOptions['logger']
}

export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'requestId' })
  }

  /** One line per request is enough: it is written when the response is. */
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? null,
      path: request.url.split('?')[0],
      statusCode: reply.statusCode,
      responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
    }
    if (error || reply.statusCode >= 500) reply.log.error({ ...line, err: error ?? undefined }, 'request failed')
    else reply.log.info(line, 'request completed')
  }
}
