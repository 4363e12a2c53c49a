/**
 * What went wrong in the database, whichever driver raised it. Drizzle wraps driver errors
 * (`DrizzleQueryError`, whose message holds the SQL), so the original is found by walking `cause`.
 */

/** A database error with its SQLSTATE, as node-postgres and PGlite both raise it. */
export interface DatabaseError {
  code: string
  constraint?: string
  detail?: string
}

function* causes(error: unknown): Generator<object> {
  let current: unknown = error
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    yield current
    current = (current as { cause?: unknown }).cause
  }
}

/** The database's own error inside `error`, if there is one. */
export function databaseErrorOf(error: unknown): DatabaseError | undefined {
  for (const current of causes(error)) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return current as DatabaseError
  }
  return undefined
}

/** A unique index refused the write. */
export const isUniqueViolation = (error: unknown) => databaseErrorOf(error)?.code === '23505'

/** Connection-level failures: the database went away or refused us, not the request's fault. */
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'])

/** node-postgres raises these as plain Errors, with no code, so they are known by their message. */
const UNAVAILABLE_DRIVER_MESSAGES = [
  /^Connection terminated/, // the socket closed (restart, pg_terminate_backend, network)
  /^Client was closed and is not queryable/, // e.g. the ROLLBACK after the connection dropped
  /^Client has encountered a connection error and is not queryable/,
  /^timeout exceeded when trying to connect/, // the pool's connectionTimeoutMillis
  /^Connection terminated due to connection timeout/,
  /^Query read timeout/, // query_timeout: the database stopped answering on an open connection
  /^Cannot use a pool after calling end on the pool/, // shutting down
]

export function isConnectionFailure(error: unknown): boolean {
  for (const current of causes(error)) {
    const code = (current as { code?: unknown }).code
    const message = String((current as { message?: unknown }).message ?? '')
    if (typeof code === 'string' && UNAVAILABLE_NODE_CODES.has(code)) return true
    if (UNAVAILABLE_DRIVER_MESSAGES.some((pattern) => pattern.test(message))) return true
  }
  return false
}
