/**
 * The db layer's row stream (src/db/stream.ts), on the driver under test: batches in order, an
 * error before the first batch is an ordinary rejection, and a reader that stops or goes away
 * frees the database.
 */
import { sql } from 'drizzle-orm'
import t from 'tap'
import { openRowStream, type StreamOptions, type TextRow } from '../../src/db/stream.js'
import { createTestDatabase } from '../helpers/database.js'

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
