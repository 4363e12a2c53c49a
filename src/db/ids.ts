/**
 * Row ids are UUIDv7: unique without coordination, and time-ordered, so `ORDER BY id` is creation
 * order and a keyset cursor over `id` alone is stable.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { v7 } from 'uuid'

export const newId = (): string => v7()

/**
 * Ids for many rows made at once (an import), as newId makes them but with one call for the
 * random bytes of a whole batch rather than one per id. Every id carries the same creation time,
 * `msecs`, and uuid's counter (`seq`), which starts at random and goes up by one per id, so the
 * ids sort in the order they were asked for, across calls too.
 */
export class BatchIds {
  private seq = randomInt(2 ** 31)

  constructor(readonly msecs: number = Date.now()) {}

  /** The next `count` ids. */
  next(count: number): string[] {
    const random = randomBytes(16 * count)
    const ids = new Array<string>(count)
    for (let i = 0; i < count; i++) ids[i] = v7({ msecs: this.msecs, seq: this.seq++, random: random.subarray(16 * i, 16 * i + 16) })
    return ids
  }
}
