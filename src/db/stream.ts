/**
 * A query's rows streamed at the reader's pace, from one snapshot, on either driver: memory stays
 * flat however many rows there are, and a reader that stops (or goes away) frees the database.
 *
 * Rows come as text tuples in the query's column order (so the query casts each column to text:
 * both drivers then give the same strings), in batches of `batchSize`, each handed to `encode` as
 * soon as it is full, so only the encoded form waits for the reader.
 *
 * - PostgreSQL: a pooled client of its own; the one statement's rows are read off the socket as
 *   they arrive, the socket paused while two encoded batches wait. A plain statement rather than a
 *   cursor: PostgreSQL may sort it with parallel workers (never for a cursor) and sends rows
 *   without waiting for a FETCH per batch. It sees one snapshot, so it needs no transaction (and
 *   never leaves one open while the connection goes back).
 * - PGlite: a cursor (DECLARE … CURSOR / FETCH) inside a transaction, which holds the one
 *   connection: other queries wait until the stream ends.
 *
 * A stream also ends when its `signal` aborts (the export's deadline): however steadily the reader
 * reads, the connection goes back then, and the stream fails rather than end short.
 *
 * `openCopyStream` is the same for PostgreSQL's own CSV (`COPY (…) TO STDOUT`): where PostgreSQL
 * can write what the reader wants, it does so several times faster than rows parsed and encoded
 * in Node (see bench/README.md).
 */
import type { Duplex } from 'node:stream'
import type { PGlite } from '@electric-sql/pglite'
import type { SQL } from 'drizzle-orm'
import { PgDialect } from 'drizzle-orm/pg-core'
import pg from 'pg'
import pgCopy from 'pg-copy-streams'
import type { Database, PostgresDatabase } from './client.js'

export type TextRow = (string | null)[]

export interface StreamOptions<T> {
  batchSize: number
  encode: (rows: TextRow[]) => T
  /** How long the whole statement may run (PostgreSQL): a download may take longer than an ordinary query. */
  timeLimitMs: number
  /** How long a batch may wait for the reader before the stream fails and frees its connection. */
  stallLimitMs: number
  /** Aborting it fails the stream and frees its connection at once, whatever the reader is doing. */
  signal?: AbortSignal
}

export interface RowStream<T> {
  batches: AsyncIterableIterator<T>
  /** Must be called when the reader is done or gone: a stream never read does not end on its own. */
  close(): Promise<unknown>
}

const dialect = new PgDialect()

/**
 * Opens the stream and reads its first batch, so that a failing query is still an ordinary error
 * (nothing sent to the reader yet).
 */
export async function openRowStream<T>(database: Database, query: SQL, options: StreamOptions<T>): Promise<RowStream<T>> {
  const { sql: text, params } = dialect.sqlToQuery(query)
  const batches = database.driver === 'postgres' ? postgresBatches(database.pool, text, params, options) : pgliteBatches(database.client, text, params, options)
  return opened(batches)
}

/** Reads the first item now, so that a failure to begin is an ordinary rejection; hands back the rest. */
async function opened<T>(batches: AsyncGenerator<T>): Promise<RowStream<T>> {
  const first = await batches.next()
  let pending: IteratorResult<T> | undefined = first
  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]() {
      return this
    },
    async next() {
      if (pending) {
        const result = pending
        pending = undefined
        return result
      }
      return batches.next()
    },
    async return() {
      await batches.return(undefined)
      return { value: undefined, done: true }
    },
  }
  return { batches: iterator, close: () => batches.return(undefined) }
}

/**
 * The query with each row's fields handed to `onRow` as they arrive, where pg.Query would collect
 * them all into one result (and parse each through its type parsers); `onEnd` is called once, with
 * the error if it failed.
 */
class StreamedQuery extends pg.Query {
  declare callback: (error: Error | null) => void

  constructor(text: string, values: unknown[], timeLimitMs: number, private readonly onRow: (row: TextRow) => void, onEnd: (error?: Error) => void) {
    super(text, values)
    let ended = false
    this.callback = (error) => {
      if (ended) return
      ended = true
      onEnd(error ?? undefined)
    }
    // pg's own timer for a query (read from the query object when it has one): a little past the
    // server's limit, like the pool's.
    Object.assign(this, { query_timeout: timeLimitMs + 5_000 })
  }

  /** pg calls this for each DataRow message. */
  handleDataRow(message: { fields: TextRow }) {
    this.onRow(message.fields)
  }
}

/**
 * A pooled client of its own for one stream, with the stream's statement limit. Once released,
 * the connection is someone else's: it is never paused, resumed or destroyed again.
 */
class StreamSession {
  released = false

  private constructor(
    readonly client: pg.PoolClient,
    readonly socket: Duplex,
  ) {}

  static async open(pool: pg.Pool, timeLimitMs: number): Promise<StreamSession> {
    const client = await pool.connect()
    const session = new StreamSession(client, (client as unknown as { connection: { stream: Duplex } }).connection.stream)
    try {
      await client.query(`SET statement_timeout = ${Math.trunc(timeLimitMs)}`)
    } catch (error) {
      session.abandon('the stream could not begin')
      throw error
    }
    return session
  }

  /** The statement has ended, everything it sent is read: the connection goes back, with the pool's statement limit. */
  finish(): void {
    if (this.released) return
    this.released = true
    this.socket.resume()
    this.client.query('RESET statement_timeout').then(
      () => this.client.release(),
      (error: Error) => this.client.release(error),
    )
  }

  /** Dropping the connection is what stops a statement that is still sending; the pool discards it. */
  abandon(reason: string): void {
    if (this.released) return
    this.released = true
    this.socket.destroy()
    this.client.release(new Error(reason))
  }
}

/** Resolves the waiting side, if any: each side of a stream waits for the other with one of these. */
class Wake {
  private waiting: (() => void) | undefined

  wait(): Promise<void> {
    return new Promise((resolve) => (this.waiting = resolve))
  }

  wake(): void {
    const waiting = this.waiting
    this.waiting = undefined
    waiting?.()
  }
}

/**
 * Calls `stop` when `signal` aborts (at once if it already has); returns the function that stops
 * listening, for when the stream ends first.
 */
function onAbort(signal: AbortSignal | undefined, stop: () => void): () => void {
  if (!signal) return () => {}
  if (signal.aborted) {
    stop()
    return () => {}
  }
  signal.addEventListener('abort', stop, { once: true })
  return () => signal.removeEventListener('abort', stop)
}

/** Hands `value` to the reader, calling `onStall` should it take longer than `limitMs` to come back for more. */
async function* yieldWithin<T>(value: T, limitMs: number, onStall: () => void): AsyncGenerator<T> {
  const stalled = setTimeout(onStall, limitMs)
  try {
    yield value
  } finally {
    clearTimeout(stalled)
  }
}

async function* postgresBatches<T>(pool: pg.Pool, text: string, params: unknown[], options: StreamOptions<T>): AsyncGenerator<T> {
  const session = await StreamSession.open(pool, options.timeLimitMs)
  const ready: T[] = []
  const reader = new Wake()
  let batch: TextRow[] = []
  let ended = false
  let failure: Error | undefined
  const stopOnAbort = onAbort(options.signal, () => {
    session.abandon('the stream was aborted')
    reader.wake()
  })
  try {
    const onRow = (row: TextRow) => {
      batch.push(row)
      if (batch.length < options.batchSize) return
      ready.push(options.encode(batch))
      batch = []
      // Two batches waiting for the reader: stop reading until it takes one.
      if (ready.length >= 2) session.socket.pause()
      reader.wake()
    }
    const onEnd = (error?: Error) => {
      ended = true
      if (error) {
        failure = error
        session.abandon('the streamed query failed')
      } else {
        // The rows not yet taken are all in `ready`, so the connection goes back now.
        if (batch.length > 0) ready.push(options.encode(batch))
        session.finish()
      }
      reader.wake()
    }
    // Aborted while it waited for a connection: the statement is never sent.
    options.signal?.throwIfAborted()
    session.client.query(new StreamedQuery(text, params, options.timeLimitMs, onRow, onEnd))
    for (;;) {
      options.signal?.throwIfAborted()
      if (ready.length > 0) {
        const next = ready.shift()!
        if (ready.length < 2 && !session.released) session.socket.resume()
        yield* yieldWithin(next, options.stallLimitMs, () => session.abandon('the reader stopped reading'))
        continue
      }
      if (failure) throw failure
      if (ended) return
      await reader.wait()
    }
  } finally {
    stopOnAbort()
    // Reached also when the reader stops early (it went away).
    session.abandon('the stream stopped before its query ended')
  }
}

async function* pgliteBatches<T>(client: PGlite, text: string, params: unknown[], options: StreamOptions<T>): AsyncGenerator<T> {
  const ready: T[] = []
  const reader = new Wake()
  const producer = new Wake()
  let finished = false
  let failure: unknown
  let stop = false
  const fetching = client
    .transaction(async (tx) => {
      await tx.query(`DECLARE row_stream NO SCROLL CURSOR FOR ${text}`, params)
      while (!stop) {
        const { rows } = await tx.query<TextRow>(`FETCH ${Math.trunc(options.batchSize)} FROM row_stream`, [], { rowMode: 'array' })
        // Stopped while fetching (the stream was aborted): nobody will take this batch.
        if (rows.length === 0 || stop) break
        ready.push(options.encode(rows))
        // Wait for the reader to take this batch before fetching the next one.
        const taken = producer.wait()
        reader.wake()
        await taken
      }
      await tx.query('CLOSE row_stream')
    })
    .then(
      () => undefined,
      (error: unknown) => {
        failure = error
      },
    )
    .finally(() => {
      finished = true
      reader.wake()
    })
  // A reader that stops must not hold the one connection: the stream fails rather than end short.
  const fail = (error: unknown) => {
    failure ??= error
    stop = true
    producer.wake()
    reader.wake()
  }
  const onStall = () => fail(new Error('the reader stopped reading'))
  const stopOnAbort = onAbort(options.signal, () => fail(options.signal!.reason))
  try {
    for (;;) {
      if (failure) throw failure
      if (ready.length > 0) {
        yield* yieldWithin(ready.shift()!, options.stallLimitMs, onStall)
        producer.wake()
        continue
      }
      if (finished) return
      await reader.wait()
    }
  } finally {
    stopOnAbort()
    stop = true
    producer.wake()
    await fetching
  }
}

export type CopyStreamOptions = Omit<StreamOptions<never>, 'batchSize' | 'encode'>

/**
 * PostgreSQL only: the query's result as CSV written by PostgreSQL (`COPY (…) TO STDOUT WITH
 * (FORMAT csv, HEADER)`), chunk by chunk as it arrives, on a session of its own with the same
 * limits as the row stream. COPY takes no parameters, so the query's are written into its text as
 * quoted literals.
 */
export async function openCopyStream(database: PostgresDatabase, query: SQL, options: CopyStreamOptions): Promise<RowStream<Buffer>> {
  const { sql: text, params } = dialect.sqlToQuery(query)
  const inlined = text.replace(/\$(\d+)/g, (_, index: string) => {
    const value = params[Number(index) - 1]
    return pg.escapeLiteral(value instanceof Date ? value.toISOString() : String(value))
  })
  return opened(copiedChunks(database.pool, `COPY (${inlined}) TO STDOUT WITH (FORMAT csv, HEADER)`, options))
}

/**
 * pg arms a read timer (`query_timeout`) for every query and clears it through the query's
 * `callback`, which a COPY stream never calls: the stream gets its own limit, as the row stream's
 * query does, and the timer is cleared once the stream is done (else the pool's limit would end a
 * long download, and the timer would outlive it).
 */
type CopyQuery = ReturnType<typeof pgCopy.to> & { callback?: (error?: Error) => void }

async function* copiedChunks(pool: pg.Pool, statement: string, options: CopyStreamOptions): AsyncGenerator<Buffer> {
  const session = await StreamSession.open(pool, options.timeLimitMs)
  const copy: CopyQuery = Object.assign(pgCopy.to(statement), { query_timeout: options.timeLimitMs + 5_000 })
  session.client.query(copy)
  const stopOnAbort = onAbort(options.signal, () => {
    session.abandon('the stream was aborted')
    copy.destroy(options.signal!.reason as Error)
  })
  try {
    for await (const chunk of copy) {
      options.signal?.throwIfAborted()
      yield* yieldWithin(chunk as Buffer, options.stallLimitMs, () => session.abandon('the reader stopped reading'))
    }
    session.finish()
  } finally {
    stopOnAbort()
    copy.callback?.()
    // Reached also when the reader stops early (it went away) or the COPY failed.
    session.abandon('the stream stopped before its COPY ended')
  }
}
