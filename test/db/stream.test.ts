/**
 * The db layer's row stream (src/db/stream.ts), on the driver under test: batches in order, an
 * error before the first batch is an ordinary rejection, and a reader that stops or goes away, or
 * a stream whose signal aborts (an export's deadline), frees the database.
 */
import { sql } from 'drizzle-orm'
import t from 'tap'
import { openCopyStream, openRowStream, type StreamOptions, type TextRow } from '../../src/db/stream.js'
import { createTestDatabase, driverUnderTest } from '../helpers/database.js'
import { waitUntil } from '../helpers/wait.js'

const options = (overrides: Partial<StreamOptions<TextRow[]>> = {}): StreamOptions<TextRow[]> => ({
  batchSize: 1000,
  encode: (rows) => rows,
  timeLimitMs: 60_000,
  stallLimitMs: 60_000,
  ...overrides,
})

const series = (n: number) => sql`SELECT g::text AS n, (g % 2 = 0)::text AS even, NULL::text AS nothing FROM generate_series(1, ${n}::int) AS g ORDER BY g`

t.test('rows come as text tuples in batches, in order, the last one short', async (t) => {
  const database = await createTestDatabase(t)
  const stream = await openRowStream(database, series(2500), options())
  const batches: TextRow[][] = []
  for await (const batch of stream.batches) batches.push(batch)
  t.same(batches.map((b) => b.length), [1000, 1000, 500])
  t.same(batches[0]![0], ['1', 'false', null])
  t.same(batches.flat().map((row) => Number(row[0])), Array.from({ length: 2500 }, (_, i) => i + 1))
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }], 'the database is free afterwards')
})

t.test('a query that fails is refused when opened, before anything is read', async (t) => {
  const database = await createTestDatabase(t)
  await t.rejects(openRowStream(database, sql`SELECT (1 / (g - g))::text FROM generate_series(1, 3) AS g`, options()), /division by zero/)
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }], 'and the database is free')
})

t.test('a reader that goes away mid-stream frees the database', async (t) => {
  const database = await createTestDatabase(t)
  const stream = await openRowStream(database, series(200_000), options({ batchSize: 100 }))
  const first = await stream.batches.next()
  t.equal((first.value as TextRow[]).length, 100)
  await stream.close()
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }])
  if (database.driver === 'postgres') {
    t.equal(database.pool.totalCount - database.pool.idleCount, 0, 'no connection is still checked out')
  }
})

t.test('a reader that stops reading fails the stream after the stall limit, and frees the database', async (t) => {
  const database = await createTestDatabase(t)
  const stream = await openRowStream(database, series(200_000), options({ batchSize: 100, stallLimitMs: 200 }))
  await stream.batches.next()
  // The reader holds a batch past the limit: the one wait in this suite that is the behaviour itself.
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }], 'the database was freed while the reader stalled')
  await t.rejects(
    (async () => {
      for await (const batch of stream.batches) void batch
    })(),
    'the rest of the stream fails rather than ending short',
  )
  await stream.close()
})

t.test('a stream whose signal aborts fails then, however steadily it is read, and frees the database', async (t) => {
  const database = await createTestDatabase(t)
  const deadline = new AbortController()
  const stream = await openRowStream(database, series(200_000), options({ batchSize: 100, signal: deadline.signal }))
  let batches = 0
  // A reader that keeps coming back for more: the stall limit never trips, only the signal can end it.
  const reading = (async () => {
    for await (const batch of stream.batches) {
      void batch
      batches++
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  await waitUntil('a few batches to be read', () => batches >= 3)
  deadline.abort(new Error('past the deadline'))
  await t.rejects(reading, /past the deadline/, 'the stream fails rather than end short')
  t.ok(batches < 2_000, `it stopped early (${batches} of 2000 batches)`)
  await stream.close()
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }], 'the database is free')
  if (database.driver === 'postgres') t.equal(database.pool.totalCount - database.pool.idleCount, 0, 'no connection is still checked out')
})

t.test('a signal that aborts while the reader holds a batch frees the database at once', async (t) => {
  const database = await createTestDatabase(t)
  const deadline = new AbortController()
  const stream = await openRowStream(database, series(200_000), options({ batchSize: 100, signal: deadline.signal }))
  await stream.batches.next()
  deadline.abort(new Error('past the deadline'))
  // The reader has not come back: on PGlite this query waits for the stream's one connection.
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }], 'the database is free while the reader still holds its batch')
  if (database.driver === 'postgres') t.equal(database.pool.totalCount - database.pool.idleCount, 0, 'the connection went back')
  await t.rejects(stream.batches.next(), /past the deadline/)
  await stream.close()
})

t.test('a signal aborted before the stream opens: refused, nothing held', async (t) => {
  const database = await createTestDatabase(t)
  const deadline = new AbortController()
  deadline.abort(new Error('already past the deadline'))
  await t.rejects(openRowStream(database, series(10), options({ signal: deadline.signal })), /already past the deadline/)
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }])
  if (database.driver === 'postgres') t.equal(database.pool.totalCount - database.pool.idleCount, 0)
})

const copySkip = driverUnderTest === 'postgres' ? false : 'PGlite has no COPY stream'

t.test('PostgreSQL COPY: a signal that aborts mid-stream frees the connection and fails the stream', { skip: copySkip }, async (t) => {
  const database = await createTestDatabase(t)
  if (database.driver !== 'postgres') throw new Error('skipped on PGlite')
  const deadline = new AbortController()
  const stream = await openCopyStream(database, series(500_000), { timeLimitMs: 60_000, stallLimitMs: 60_000, signal: deadline.signal })
  await stream.batches.next()
  deadline.abort(new Error('past the deadline'))
  await waitUntil('the connection to go back', () => database.pool.totalCount - database.pool.idleCount === 0)
  await t.rejects(
    (async () => {
      for await (const chunk of stream.batches) void chunk
    })(),
    /past the deadline/,
  )
  await stream.close()
  t.same(await database.query('SELECT 1 AS one'), [{ one: 1 }])
})
