/**
 * Work shared by concurrent requests: a batch is sent as soon as the previous one of its kind is
 * done (or, where a kind allows two at once, one of the two before it), so a lone request waits for nothing and a busy service sends fewer, larger statements —
 * one round trip, and for a write one commit, for many requests. Under load most of a request's
 * cost was per statement (a round trip, a parse, for a write a commit), not the rows it touched.
 *
 * Modules name their batches (`batched`, `batchedTransaction`); the queues are kept here, one
 * per database handle, so each app (and each test's app) has its own. Inside a transaction there
 * is nothing to share: the item runs alone, on the transaction's connection.
 */
import DataLoader from 'dataloader'
import { PgTransaction } from 'drizzle-orm/pg-core'
import type { Db, DbOrTx, Tx } from './client.js'

/** Answers each item of a batch in order, with an Error for an item that failed on its own. */
export type BatchRun<Item, Result> = (db: DbOrTx, batch: readonly Item[]) => Promise<(Result | Error)[]>

export interface BatchOptions {
  maxBatchSize?: number
  /**
   * How many batches may run at once (default 1). A transaction whose serial part is only its
   * tail (a lock taken late and held to commit) can let the next batch's earlier statements run
   * meanwhile; where every statement is serial, a second batch only splits the queue.
   */
  inFlight?: number
}

/**
 * Calls that arrive while `inFlight` batches run go together in the next one. No cache: every
 * call is a read or write of its own.
 */
function batchQueue<Item, Result>(run: (batch: readonly Item[]) => Promise<(Result | Error)[]>, { maxBatchSize = 1_000, inFlight = 1 }: BatchOptions) {
  const running = new Set<Promise<void>>()
  const slotFree = async () => {
    while (running.size >= inFlight) await Promise.race(running)
  }
  const loader = new DataLoader<Item, Result>(
    (batch) => {
      const done = run(batch)
      const settled: Promise<void> = done.then(
        () => {},
        () => {},
      ).finally(() => running.delete(settled))
      running.add(settled)
      return done
    },
    {
      cache: false,
      maxBatchSize,
      batchScheduleFn: (dispatch) => {
        void slotFree().then(() => setImmediate(dispatch))
      },
    },
  )
  return (item: Item) => loader.load(item)
}

interface Queue {
  run: BatchRun<never, unknown>
  enqueue: (item: unknown) => Promise<unknown>
}

const queuesByHandle = new WeakMap<Db, Map<string, Queue>>()

/**
 * `(db, item) => result`, where items sent on the same handle while a batch of `name` runs are
 * answered together by one call of `run`. A name belongs to one `run`.
 */
export function batched<Item, Result>(name: string, run: BatchRun<Item, Result>, options: BatchOptions = {}): (db: DbOrTx, item: Item) => Promise<Result> {
  return async (db, item) => {
    if (db instanceof PgTransaction) {
      const [result] = await run(db, [item])
      if (result instanceof Error) throw result
      return result as Result
    }
    let queues = queuesByHandle.get(db)
    if (!queues) queuesByHandle.set(db, (queues = new Map()))
    let queue = queues.get(name)
    if (!queue) {
      queue = { run: run as BatchRun<never, unknown>, enqueue: batchQueue((batch) => run(db, batch as Item[]), options) as Queue['enqueue'] }
      queues.set(name, queue)
    } else if (queue.run !== run) {
      throw new Error(`two different batches are named ${name}`)
    }
    return queue.enqueue(item) as Promise<Result>
  }
}

/**
 * A batch whose work is one transaction for all its items: `work` answers each item (an Error
 * for one refused on its own, with nothing of it written). Should the transaction fail as a whole,
 * each item is tried again in a transaction of its own, so one item's error (a constraint, say) is
 * its own and no one else's.
 */
export function batchedTransaction<Item, Result>(
  name: string,
  work: (tx: Tx, batch: readonly Item[]) => Promise<(Result | Error)[]>,
  options: BatchOptions = {},
): (db: DbOrTx, item: Item) => Promise<Result> {
  const alone = (db: DbOrTx, item: Item) =>
    db.transaction((tx) => work(tx, [item])).then(
      ([result]) => result!,
      (error: Error) => error,
    )
  return batched<Item, Result>(
    name,
    async (db, batch) => {
      if (batch.length === 1) return [await alone(db, batch[0]!)]
      try {
        return await db.transaction((tx) => work(tx, batch))
      } catch {
        const results: (Result | Error)[] = []
        for (const item of batch) results.push(await alone(db, item))
        return results
      }
    },
    options,
  )
}
