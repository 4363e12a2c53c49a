/**
 * Writes batched across concurrent requests (DataLoader does the collecting): a batch is sent as
 * soon as the previous one of its kind is done, so a lone request waits for nothing and a busy
 * service sends fewer, larger statements — one round trip and one commit for many requests.
 */
import DataLoader from 'dataloader'

/**
 * A DataLoader for writes: no cache (every call is a write of its own), and the next batch only
 * once the one before it has finished. `write` answers each item in order, with an Error for an
 * item that failed on its own (that call rejects with it).
 */
export function writeBatcher<Item, Result>(write: (batch: readonly Item[]) => Promise<(Result | Error)[]>, maxBatchSize = 1_000) {
  let previous: Promise<unknown> = Promise.resolve()
  const loader = new DataLoader<Item, Result>(
    (batch) => {
      const written = write(batch)
      previous = written.catch(() => {})
      return written
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
