/**
 * Logging: pino JSON lines, one per request (request id, method, route, status, time). The request
 * id is always the server's own; a client's `x-request-id` is its own field, `clientRequestId`.
 *
 * Left out: the query string (a search for a custodian's name is personal data), the concrete path
 * (`/v1/custodians/<id>` names a person): a matched route is logged by its pattern, an unmatched
 * path with every segment that is not a word of some route replaced by `*`, so no line carries a
 * record's id. Also left out: all headers (the `authorization` header above all) and the caller:
 * who did what is the audit trail's business, not the log's. Redaction is kept as a second line of
 * defence. Errors are logged without the parameters of the query that failed (Drizzle puts them in
 * the message and on the error, and they are the request's data — names, e-mail addresses,
 * circumstances) and with any UUID in their text masked.
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

/** Record ids are UUIDs; an error's text may quote one (a URL, a message naming a row). */
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi
const withoutIds = (text: string | undefined) => withoutParams(text)?.replace(UUID, '<id>')

export function serializeError(error: unknown, depth = 0): LoggedError | undefined {
  if (!(error instanceof Error) || depth > 4) return undefined
  const { code, constraint } = error as { code?: unknown; constraint?: unknown }
  const cause = serializeError(error.cause, depth + 1)
  return {
    type: error.name,
    message: withoutIds(error.message) ?? '',
    stack: withoutIds(error.stack) ?? '',
    ...(code !== undefined ? { code } : {}),
    ...(constraint !== undefined ? { constraint } : {}),
    ...(cause ? { cause } : {}),
  }
}

export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>, stream?: NodeJS.WritableStream) {
  return {
    level: config.LOG_LEVEL,
    serializers: {
      err: (error: Error) => serializeError(error) ?? { type: 'unknown', message: String(error), stack: '' },
      // Fastify logs `req` on a few rare lines of its own; pino's default would give the URL.
      req: (request: FastifyRequest) => ({ method: request.method, route: request.routeOptions?.url ?? null }),
    },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'authorization'],
      censor: '[redacted]',
    },
    ...(stream ? { stream } : {}),
  } satisfies FastifyServerOptions['logger']
}

/**
 * The words of the registered routes' paths (`v1`, `custodians`, `risk-summary.svg`, …), from
 * every app in the process: code's words, never a client's. A path that matched no route is
 * logged with every other segment as `*`, so that what a client put in it (an id, a name) is not.
 */
const routeWords = new Set<string>()

/** Called by app.ts for every route as it is added. */
export function learnRouteWords(url: string): void {
  for (const segment of url.split('/')) if (segment && !segment.startsWith(':') && !segment.includes('*')) routeWords.add(segment)
}

function shapeOf(url: string): string {
  const segments = url.split('?', 1)[0]!.split('/')
  const shape = segments.slice(0, 12).map((segment) => (segment === '' || routeWords.has(segment) ? segment : '*'))
  return shape.join('/') + (segments.length > 12 ? '/…' : '')
}

/** What the line of a request says about it (also used for a request ended on its connection). */
export function requestLine(request: FastifyRequest, statusCode: number | null) {
  const route = request.routeOptions?.url
  return {
    method: request.method,
    route: route ?? null,
    ...(route ? {} : { path: shapeOf(request.url) }),
    statusCode,
  }
}

export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'requestId' })
  }

  /** One line per request is enough: it is written when the response is. */
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = { ...requestLine(request, reply.statusCode), responseTimeMs: Math.round(reply.elapsedTime * 10) / 10 }
    if (error || reply.statusCode >= 500) reply.log.error({ ...line, err: error ?? undefined }, 'request failed')
    else reply.log.info(line, 'request completed')
  }
}
