/**
 * Statements shared by concurrent requests (DataLoader does the collecting): a batch is sent as
 * soon as the previous one of its kind is done, so a lone request waits for nothing and a busy
 * service sends fewer, larger statements — one round trip, and for a write one commit, for many
 * requests. Under load most of a request's cost was per statement (a round trip, a parse, for a
 * write a commit), not the rows it touched.
 */
import DataLoader from 'dataloader'
import type { Db } from './client.js'

/**
 * Calls that arrive while a batch runs go together in the next one. No cache: every call is a
 * read or write of its own. `run` answers each item in order, with an Error for an item that
 * failed on its own (that call rejects with it).
 */
export function batchQueue<Item, Result>(run: (batch: readonly Item[]) => Promise<(Result | Error)[]>, maxBatchSize = 1_000) {
  let previous: Promise<unknown> = Promise.resolve()
  const loader = new DataLoader<Item, Result>(
    (batch) => {
      const done = run(batch)
      previous = done.catch(() => {})
      return done
    },
    {
      cache: false,
      maxBatchSize,
      batchScheduleFn: (dispatch) => {
        void previous.finally(() => setImmediate(dispatch))
      },
    },
  )
  return (item: Item) => loader.load(item)
}

/** One batch queue per database handle (each app has its own), made on first use. */
export function batchQueuePerHandle<Item, Result>(make: (db: Db) => (item: Item) => Promise<Result>): (db: Db, item: Item) => Promise<Result> {
  const byHandle = new WeakMap<Db, (item: Item) => Promise<Result>>()
  return (db, item) => {
    let queue = byHandle.get(db)
    if (!queue) {
      queue = make(db)
      byHandle.set(db, queue)
    }
    return queue(item)
  }
}
