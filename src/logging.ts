/**
 * Logging: pino JSON lines, one per request (request id, method, route, status, time).
 *
 * Left out: the query string (a search for a custodian's name is personal data), the concrete path
 * of a matched route (`/v1/custodians/<id>` names a person; the route pattern says enough), all
 * headers (the `authorization` header above all) and the caller: who did what is the audit trail's
 * business, not the log's. Redaction is kept as a second line of defence. Errors are logged
 * without the parameters of the query that failed: Drizzle puts them in the message and on the
 * error, and they are the request's data — names, e-mail addresses, circumstances.
 */
import { type FastifyReply, type FastifyRequest, type FastifyServerOptions, LogController } from 'fastify'
import type { Config } from './config.js'

interface LoggedError {
  [key: string]: unknown
  type: string
  message: string
  stack: string
}

/** Drizzle's "Failed query: <sql>\nparams: <values>": keep the SQL, drop the values. */
const withoutParams = (text: string | undefined) => text?.replace(/\nparams: [\s\S]*?(?=\n {4}at |$)/, '\n[params omitted]')

export function serializeError(error: unknown, depth = 0): LoggedError | undefined {
  if (!(error instanceof Error) || depth > 4) return undefined
  const { code, constraint } = error as { code?: unknown; constraint?: unknown }
  const cause = serializeError(error.cause, depth + 1)
  return {
    type: error.name,
    message: withoutParams(error.message) ?? '',
    stack: withoutParams(error.stack) ?? '',
    ...(code !== undefined ? { code } : {}),
    ...(constraint !== undefined ? { constraint } : {}),
    ...(cause ? { cause } : {}),
  }
}

export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>, stream?: NodeJS.WritableStream) {
  return {
    level: config.LOG_LEVEL,
    serializers: { err: (error: Error) => serializeError(error) ?? { type: 'unknown', message: String(error), stack: '' } },
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
      // Only when no route matched: then the path is what there is to see, and it names no record.
      ...(request.routeOptions.url ? {} : { path: request.url.split('?')[0] }),
      statusCode: reply.statusCode,
      responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
    }
    if (error || reply.statusCode >= 500) reply.log.error({ ...line, err: error ?? undefined }, 'request failed')
    else reply.log.info(line, 'request completed')
  }
}
