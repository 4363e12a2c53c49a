/**
 * Waiting on events, not on the clock: a test that needs something to have happened (a request
 * to be waiting on a lock, a server to be closing) polls for exactly that. The timeout is only an
 * outer bound, far past what an idle machine needs, so a busy machine makes a test slower, never
 * wrong; reaching it fails the test with what was awaited and the last thing seen.
 */
import type pg from 'pg'

export interface WaitOptions {
  /** The outer bound. */
  timeoutMs?: number
  /** Between polls. */
  intervalMs?: number
}

/**
 * Polls `probe` until it returns something other than `undefined` or `false`, and returns that.
 * `describe` names what was awaited, for the error if it never came.
 */
export async function waitUntil<T>(
  describe: string | (() => string),
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 60_000, intervalMs = 10 }: WaitOptions = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const result = await probe()
    if (result !== undefined && result !== false) return result
    if (performance.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${typeof describe === 'string' ? describe : describe()}: it never happened`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** Something that runs SQL: a pg.Client, or a `Database`'s `query`. */
type Query = (text: string, params: unknown[]) => Promise<{ n: number }[]>

export const onClient =
  (client: pg.Client): Query =>
  async (text, params) =>
    (await client.query<{ n: number }>(text, params)).rows

/**
 * How many backends of `database` are waiting on a lock right now. pg_stat_activity is read
 * once per transaction, so the snapshot is cleared first: a caller polling inside the
 * transaction that holds the lock would otherwise see its first reading for ever.
 */
export async function lockWaiters(query: Query, database: string): Promise<number> {
  await query('SELECT pg_stat_clear_snapshot()', [])
  const [row] = await query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
    [database],
  )
  return row!.n
}

/** Resolves once at least `count` backends of `database` wait on a lock. */
export async function waitForLockWaiters(query: Query, database: string, count: number, options?: WaitOptions): Promise<void> {
  let seen = 0
  await waitUntil(
    () => `${count} requests waiting on a lock in ${database} (last seen: ${seen})`,
    async () => (seen = await lockWaiters(query, database)) >= count,
    options,
  )
}
