/**
 * Every error leaves the service as `application/problem+json` (RFC 9457):
 * `{ type, title, status, detail, errors?: [{ path, message }] }`.
 *
 * Domain code throws `HttpProblem`s; everything else (validation, content-type, body size,
 * database constraint violations, unexpected bugs) is translated here, in one place, and so are
 * the refusals Node makes on a connection before any route can answer (a request not received in
 * time, headers too large: `answerConnectionError`). 5xx details never reach the client: the real
 * error is logged with the request id.
 */
import { maxHeaderSize, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { hasZodFastifySchemaValidationErrors } from '@fastify/type-provider-zod'
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { z } from 'zod'
import { type DatabaseError, databaseErrorOf, isConnectionFailure } from '../db/errors.js'
import { requestLine } from '../logging.js'

export interface ProblemFieldError {
  path: string
  message: string
  [extra: string]: unknown
}

export interface ProblemBody {
  type: string
  title: string
  status: number
  detail: string
  errors?: ProblemFieldError[]
  /** RFC 9457 extension members of one kind of problem (e.g. an import's `errorCount`). */
  [extension: string]: unknown
}

const TYPE_BASE = 'urn:device-loss-register:problem:'

/** An error with an HTTP meaning; thrown by domain code, rendered by the error handler. */
export class HttpProblem extends Error {
  readonly status: number
  readonly code: string
  readonly errors: ProblemFieldError[] | undefined
  readonly headers: Record<string, string>
  readonly extensions: Record<string, unknown>

  constructor(
    status: number,
    code: string,
    detail: string,
    options: { errors?: ProblemFieldError[]; headers?: Record<string, string>; extensions?: Record<string, unknown> } = {},
  ) {
    super(detail)
    this.name = 'HttpProblem'
    this.status = status
    this.code = code
    this.errors = options.errors
    this.headers = options.headers ?? {}
    this.extensions = options.extensions ?? {}
  }

  toBody(): ProblemBody {
    return {
      type: TYPE_BASE + this.code,
      title: STATUS_CODES[this.status] ?? 'Error',
      status: this.status,
      detail: this.message,
      ...(this.errors ? { errors: this.errors } : {}),
      ...this.extensions,
    }
  }
}

/** The problems the service raises, by name, so handlers never spell out status codes. */
export const problems = {
  badRequest: (detail: string, errors?: ProblemFieldError[]) =>
    new HttpProblem(400, 'bad-request', detail, errors ? { errors } : {}),
  validation: (errors: ProblemFieldError[]) =>
    new HttpProblem(400, 'validation', describeFieldErrors(errors), { errors }),
  unauthorized: (detail: string) =>
    new HttpProblem(401, 'unauthorized', detail, { headers: { 'www-authenticate': 'Bearer' } }),
  forbidden: (detail: string) => new HttpProblem(403, 'forbidden', detail),
  notFound: (detail: string) => new HttpProblem(404, 'not-found', detail),
  notAcceptable: (detail: string) => new HttpProblem(406, 'not-acceptable', detail),
  conflict: (detail: string, errors?: ProblemFieldError[]) =>
    new HttpProblem(409, 'conflict', detail, errors ? { errors } : {}),
  preconditionFailed: (detail: string) => new HttpProblem(412, 'precondition-failed', detail),
  unprocessable: (detail: string, errors?: ProblemFieldError[], extensions?: Record<string, unknown>) =>
    new HttpProblem(422, 'unprocessable', detail, { ...(errors ? { errors } : {}), ...(extensions ? { extensions } : {}) }),
  preconditionRequired: (detail: string) => new HttpProblem(428, 'precondition-required', detail),
  unavailable: (detail: string, retryAfterSeconds = 5) =>
    new HttpProblem(503, 'unavailable', detail, { headers: { 'retry-after': String(retryAfterSeconds) } }),
}

function describeFieldErrors(errors: ProblemFieldError[]): string {
  const first = errors[0]
  if (!first) return 'The request is not valid.'
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''
  return `${first.path}: ${first.message}${more}`
}

/**
 * The schema of an error response, for the OpenAPI document (every error of every operation) and
 * for the routes that declare it. Loose, as RFC 9457 allows: one kind of problem may add members
 * of its own (an import's `errorCount`), and they are kept.
 */
export const ProblemSchema = z
  .looseObject({
    type: z.string().meta({ description: 'The kind of problem, as a URN: `urn:device-loss-register:problem:<kind>`.' }),
    title: z.string().meta({ description: 'The HTTP status text.' }),
    status: z.int().min(400).max(599).meta({ description: 'The HTTP status code, as in the response.' }),
    detail: z.string().meta({ description: 'What went wrong, for people. A 5xx says no more than that, and the request id.' }),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }).catchall(z.unknown()))
      .optional()
      .meta({ description: 'One entry per refused field: `path` names it (`body.assetTag`, `querystring.limit`), `message` says why.' }),
  })
  .meta({
    id: 'Problem',
    description: 'An RFC 9457 problem details object.',
    examples: [
      {
        type: 'urn:device-loss-register:problem:validation',
        title: 'Bad Request',
        status: 400,
        detail: 'body.kind: Invalid option: expected one of "mp"|"peer"|"staff"|"office"',
        errors: [{ path: 'body.kind', message: 'Invalid option: expected one of "mp"|"peer"|"staff"|"office"' }],
      },
    ],
  })

/**
 * What a module knows about its own tables, handed to this plugin by app.ts: which constraint
 * means which field was wrong, and which fields the server sets (a client that sends one is told
 * so rather than "not allowed").
 */
export interface ProblemRules {
  constraints: Readonly<Record<string, { path: string; message: string }>>
  serverOwnedFields: ReadonlySet<string>
}

const NO_RULES: ProblemRules = { constraints: {}, serverOwnedFields: new Set() }

function problemFromDatabaseError(error: DatabaseError, rules: ProblemRules): HttpProblem | undefined {
  const known = error.constraint ? rules.constraints[error.constraint] : undefined
  switch (error.code) {
    case '23505': // unique_violation
      return problems.conflict(known?.message ?? 'The request conflicts with an existing record.', [
        { path: known?.path ?? 'body', message: known?.message ?? 'already exists' },
      ])
    case '23503': // foreign_key_violation: an id in the body names nothing
      return problems.unprocessable(known?.message ?? 'The request refers to a record that does not exist.', [
        { path: known?.path ?? 'body', message: known?.message ?? 'does not exist' },
      ])
    case '23514': // check_violation: validation should have caught it; still the client's input
    case '22001': // string_data_right_truncation
    case '22003': // numeric_value_out_of_range
    case '22007': // invalid_datetime_format
    case '22008': // datetime_field_overflow
    case '22P02': // invalid_text_representation
      return problems.unprocessable('The request breaks a rule of the register.')
    case '22021': // character_not_in_repertoire: a NUL byte, which text columns cannot hold
    case '22P05': // untranslatable_character: \u0000 in jsonb
      return problems.badRequest('The request contains a character the register cannot store (such as NUL).')
    case '40001': // serialization_failure
    case '40P01': // deadlock_detected
      return problems.unavailable('The request collided with another; retry it.', 1)
    case '57014': // query_canceled (statement timeout)
      return problems.unavailable('The database took too long to answer; retry later.')
    case '57P01': // admin_shutdown
    case '57P02': // crash_shutdown
    case '57P03': // cannot_connect_now
    case '08000':
    case '08003':
    case '08006':
    case '53300': // too_many_connections
      return problems.unavailable('The database is unavailable; retry shortly.')
    default:
      return undefined
  }
}

/** Fastify's own client errors, by code, with the status they deserve (and a detail where theirs quotes the path). */
const FRAMEWORK_CLIENT_ERRORS: Record<string, { status: number; code: string; detail?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported-media-type' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload-too-large' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'bad-request' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'bad-request' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid-json' },
  FST_ERR_BAD_URL: { status: 400, code: 'bad-request', detail: 'The path is not a valid URL (bad percent-encoding).' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'uri-too-long', detail: 'A segment of the path is longer than any id the register uses.' },
}

function validationProblem(error: FastifyError, rules: ProblemRules): HttpProblem {
  const context = error.validationContext ?? 'body'
  // Every path parameter is a record's id: one that cannot exist names no record.
  if (context === 'params') return problems.notFound('There is no such record (the id in the path is not a valid id).')
  const errors: ProblemFieldError[] = []
  for (const issue of error.validation ?? []) {
    const base = [context, ...issue.instancePath.split('/').filter(Boolean)].join('.')
    const params = issue.params as { keys?: unknown }
    if (issue.keyword === 'unrecognized_keys' && Array.isArray(params.keys)) {
      // One entry per refused field, so the client sees each name.
      for (const key of params.keys) {
        const message = rules.serverOwnedFields.has(String(key)) ? 'is set by the server and cannot be given' : 'is not an allowed field'
        errors.push({ path: `${base}.${String(key)}`, message })
      }
    } else {
      errors.push({ path: base, message: issue.message ?? 'is not valid' })
    }
  }
  return problems.validation(errors)
}

/** Turns any thrown value into the problem to send. Exported for tests of the mapping. */
export function toProblem(error: unknown, rules: ProblemRules = NO_RULES): HttpProblem | undefined {
  if (error instanceof HttpProblem) return error
  const fastifyError = error as FastifyError
  if (hasZodFastifySchemaValidationErrors(fastifyError) || Array.isArray(fastifyError?.validation))
    return validationProblem(fastifyError, rules)
  const framework = fastifyError?.code ? FRAMEWORK_CLIENT_ERRORS[fastifyError.code] : undefined
  if (framework) return new HttpProblem(framework.status, framework.code, framework.detail ?? clientMessage(fastifyError))
  if (error instanceof SyntaxError && (error as FastifyError).statusCode === 400)
    return new HttpProblem(400, 'invalid-json', 'The body is not valid JSON.')
  const database = databaseErrorOf(error)
  if (database) {
    const mapped = problemFromDatabaseError(database, rules)
    if (mapped) return mapped
  }
  if (isConnectionFailure(error)) return problems.unavailable('The database is unavailable; retry shortly.')
  const status = fastifyError?.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500)
    return new HttpProblem(status, 'client-error', clientMessage(fastifyError))
  return undefined
}

/** Fastify's 4xx messages describe the request, never internals; keep them short anyway. */
function clientMessage(error: FastifyError): string {
  return String(error.message ?? STATUS_CODES[error.statusCode ?? 400]).slice(0, 300)
}

export function sendProblem(reply: FastifyReply, problem: HttpProblem): FastifyReply {
  return reply
    .code(problem.status)
    .headers(problem.headers)
    .type('application/problem+json; charset=utf-8')
    .send(problem.toBody())
}

/**
 * What Node raises on a connection when it cannot hand a request over (`clientError`): by code,
 * the problem to answer with. Anything else the parser refuses is a 400.
 */
const CONNECTION_ERRORS: Record<string, (app: FastifyInstance) => HttpProblem> = {
  ERR_HTTP_REQUEST_TIMEOUT: (app) =>
    new HttpProblem(408, 'request-timeout', `The request was not received in full within ${app.server.requestTimeout / 1000} s.`),
  HPE_HEADER_OVERFLOW: () =>
    new HttpProblem(431, 'headers-too-large', `The request line and headers together are larger than the server accepts (${Math.round(maxHeaderSize / 1024)} KiB).`),
  HPE_CHUNK_EXTENSIONS_OVERFLOW: () => new HttpProblem(413, 'payload-too-large', 'The chunk extensions of the body are too large.'),
}
const unreadable = () => new HttpProblem(400, 'bad-request', 'The request is not well-formed HTTP/1.1.')

/** The reply each connection is working on, for an error Node raises on the connection itself. */
const replyOnConnection = new WeakMap<Socket, FastifyReply>()
/** Requests that answerConnectionError ended (and logged). */
const endedOnConnection = new WeakSet<FastifyRequest>()

/**
 * Fastify's `clientErrorHandler`: Node's own errors on a connection (a request or its body not
 * received within the request timeout, headers too large, unparseable HTTP) answered as
 * problem+json, written on the socket as Node would write its plain-text answer, then the
 * connection closed. When a request was already under way (its body was being read), the answer
 * carries its x-request-id and the request gets its log line (route, status); a response already
 * begun cannot be answered on, so the connection is just closed.
 */
export function answerConnectionError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const problem = (CONNECTION_ERRORS[error.code] ?? unreadable)(this)
  const reply = replyOnConnection.get(socket)
  const underWay = reply !== undefined && !reply.raw.writableFinished ? reply : undefined
  if (socket.writable && !underWay?.raw.headersSent) {
    const body = JSON.stringify(problem.toBody())
    const requestId = underWay?.getHeader('x-request-id')
    socket.write(
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\n` +
        'Content-Type: application/problem+json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Cache-Control: no-store\r\nConnection: close\r\n' +
        (typeof requestId === 'string' ? `x-request-id: ${requestId}\r\n` : '') +
        `\r\n${body}`,
    )
  }
  if (underWay) {
    endedOnConnection.add(underWay.request)
    underWay.log.info(requestLine(underWay.request, problem.status), `request ended: ${STATUS_CODES[problem.status]}`)
  } else {
    this.log.info({ statusCode: problem.status, code: error.code }, `connection ended: ${STATUS_CODES[problem.status]}`)
  }
  socket.destroy(error)
}

function handleError(rules: ProblemRules, error: unknown, request: FastifyRequest, reply: FastifyReply) {
  // The connection closed before the request arrived in full (the client hung up, or a 408 ended
  // it): the `aborted` error is no failure of ours, and the answer goes nowhere.
  if (request.raw.destroyed && !request.raw.complete) {
    if (!endedOnConnection.has(request)) request.log.info(requestLine(request, null), 'request ended: the client closed the connection')
    return sendProblem(reply, problems.badRequest('The connection closed before the request arrived in full.'))
  }
  const problem = toProblem(error, rules)
  if (problem) {
    if (problem.status >= 500) request.log.warn({ err: error }, problem.message)
    return sendProblem(reply, problem)
  }
  request.log.error({ err: error }, 'unexpected error')
  return sendProblem(
    reply,
    new HttpProblem(500, 'internal', `An unexpected error occurred. Quote request id ${request.id} when reporting it.`),
  )
}

export default fp(
  async function problemsPlugin(app: FastifyInstance, rules: ProblemRules) {
    app.setErrorHandler((error, request, reply) => handleError(rules, error, request, reply))
    // Fastify's own answer while closing (`return503OnClosing`) is plain JSON; app.ts turns it off for this one.
    let closing = false
    app.addHook('preClose', (done) => {
      closing = true
      done()
    })
    app.addHook('onRequest', (request, reply, done) => {
      replyOnConnection.set(request.raw.socket, reply)
      if (!closing) return done()
      reply.header('connection', 'close')
      sendProblem(reply, problems.unavailable('The service is shutting down; retry the request.', 1))
    })
    app.setNotFoundHandler((request, reply) =>
      sendProblem(reply, problems.notFound(`There is no route ${request.method} ${request.url.split('?')[0]}.`)),
    )
  },
  { name: 'problems' },
)
