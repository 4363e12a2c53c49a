/**
 * The db layer's batching (src/db/batches.ts), on the driver under test: concurrent items share
 * runs, each is answered with its own result or error, a failed transaction is retried item by
 * item, and inside a transaction an item runs alone on it.
 */
import { sql } from 'drizzle-orm'
import t from 'tap'
import { batched, batchedTransaction } from '../../src/db/batches.js'
import { rowsOf } from '../../src/db/client.js'
import { createTestDatabase } from '../helpers/database.js'
import { waitUntil } from '../helpers/wait.js'

t.test('items sent while a run is under way share the next run, and each gets its own answer or error', async (t) => {
  const database = await createTestDatabase(t)
  const runs: number[][] = []
  let release!: () => void
  const firstRunHeld = new Promise<void>((resolve) => (release = resolve))
  const double = batched<number, number>('test-double', async (db, batch) => {
    runs.push([...batch])
    if (runs.length === 1) await firstRunHeld
    const rows = await rowsOf<{ n: number }>(db, sql`SELECT n * 2 AS n FROM unnest(${sql.param([...batch])}::int[]) WITH ORDINALITY AS u(n, i) ORDER BY i`)
    return rows.map(({ n }, i) => (batch[i] === 13 ? new Error('unlucky') : n))
  })
  const first = double(database.db, 0)
  await waitUntil('the first run to start', () => runs.length === 1)
  const rest = Array.from({ length: 19 }, (_, i) => double(database.db, i + 1))
  release()
  const answers = await Promise.allSettled([first, ...rest])
  t.same(
    answers.map((a) => (a.status === 'fulfilled' ? a.value : (a.reason as Error).message)),
    Array.from({ length: 20 }, (_, i) => (i === 13 ? 'unlucky' : i * 2)),
    'each call its own answer, in order; one Error rejects only its own call',
  )
  t.same(runs, [[0], Array.from({ length: 19 }, (_, i) => i + 1)], 'a lone item ran at once; the ones sent meanwhile together, in order')
})

t.test('a name belongs to one batch', async (t) => {
  const database = await createTestDatabase(t)
  const first = batched<number, number>('test-name', async (_db, batch) => [...batch])
  const second = batched<number, number>('test-name', async (_db, batch) => batch.map(() => 0))
  t.equal(await first(database.db, 1), 1)
  await t.rejects(second(database.db, 1), /two different batches are named test-name/)
})

t.test('a failed shared transaction is retried item by item: one item\'s failure is its own', async (t) => {
  const database = await createTestDatabase(t)
  await database.query('CREATE TABLE batch_probe (n int PRIMARY KEY)')
  await database.query('INSERT INTO batch_probe VALUES (3)')
  let transactions = 0
  const insert = batchedTransaction<number, number>('test-insert', async (tx, batch) => {
    transactions++
    await tx.execute(sql`INSERT INTO batch_probe SELECT unnest(${sql.param([...batch])}::int[])`)
    return [...batch]
  })
  const answers = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => insert(database.db, n)))
  t.same(answers.map((a) => a.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'], 'only the duplicate is refused')
  t.match(String((answers[2] as PromiseRejectedResult).reason?.cause?.message ?? (answers[2] as PromiseRejectedResult).reason), /duplicate key|unique/)
  t.same(await database.query('SELECT n FROM batch_probe ORDER BY n'), [1, 2, 3, 4, 5].map((n) => ({ n })), 'the others written, nothing twice')
  t.ok(transactions > 1, 'the batch that failed was tried again')
})

t.test('inside a transaction an item runs alone, on that transaction', async (t) => {
  const database = await createTestDatabase(t)
  await database.query('CREATE TABLE batch_probe (n int PRIMARY KEY)')
  const sizes: number[] = []
  const insert = batchedTransaction<number, number>('test-in-tx', async (tx, batch) => {
    sizes.push(batch.length)
    await tx.execute(sql`INSERT INTO batch_probe SELECT unnest(${sql.param([...batch])}::int[])`)
    return [...batch]
  })
  await database.db
    .transaction(async (tx) => {
      t.equal(await insert(tx, 1), 1)
      t.equal(await insert(tx, 2), 2)
      throw new Error('roll back')
    })
    .catch(() => {})
  t.same(sizes, [1, 1])
  t.same(await database.query('SELECT n FROM batch_probe'), [], 'rolled back with the transaction it ran in')
})

t.test('with inFlight 2, a second batch runs while the first is held, and a third waits for one of them', async (t) => {
  const database = await createTestDatabase(t)
  const runs: number[][] = []
  const releases: (() => void)[] = []
  const echo = batched<number, number>(
    'test-in-flight',
    async (_db, batch) => {
      runs.push([...batch])
      await new Promise<void>((resolve) => releases.push(resolve))
      return [...batch]
    },
    { inFlight: 2 },
  )
  const first = echo(database.db, 1)
  await waitUntil('the first run to start', () => runs.length === 1)
  const second = echo(database.db, 2)
  await waitUntil('the second run to start beside the first', () => runs.length === 2)
  const third = [echo(database.db, 3), echo(database.db, 4)]
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(runs.length, 2, 'no third run while two are under way')
  releases[0]!()
  await waitUntil('the third run to start once one is done', () => runs.length === 3)
  t.same(runs[2], [3, 4], 'the calls made meanwhile went together')
  releases[1]!()
  releases[2]!()
  t.same(await Promise.all([first, second, ...third]), [1, 2, 3, 4])
})
