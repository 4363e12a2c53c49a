/**
 * Keyset pagination: `?limit=` (1..200, default 50) and an opaque `?cursor=`, answered with
 * `{ items, nextCursor }`. The cursor is the sort key of the last item returned, base64url-encoded
 * JSON; the next page is the rows strictly after it in the list's stable order. No OFFSET, so a
 * page deep in a large list costs the same as the first.
 */
import { z } from 'zod'
import { problems } from '../plugins/problems.js'

export const PAGE_LIMIT_MAX = 200

export const PageQuery = {
  limit: z.coerce
    .number({ error: 'must be an integer from 1 to 200' })
    .int({ error: 'must be an integer from 1 to 200' })
    .min(1, { error: 'must be an integer from 1 to 200' })
    .max(PAGE_LIMIT_MAX, { error: 'must be an integer from 1 to 200' })
    .default(50),
  cursor: z.string().max(500, { error: 'is not a cursor this service issued' }).optional(),
}

/** The response of every list: items, and the cursor of the next page (null on the last). */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() })

export type CursorKey = (string | number | null)[]

/** What each part of a list's sort key is, so a cursor that is not ours never reaches SQL. */
export type CursorPart = 'uuid' | 'int' | 'time' | 'time?' | 'text'

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/

const partIsValid: Record<CursorPart, (value: unknown) => boolean> = {
  uuid: (value) => typeof value === 'string' && UUID_PATTERN.test(value),
  int: (value) => Number.isSafeInteger(value),
  time: (value) => typeof value === 'string' && TIME_PATTERN.test(value) && !Number.isNaN(Date.parse(value)),
  'time?': (value) => value === null || partIsValid.time(value),
  text: (value) => typeof value === 'string' && value.length <= 200 && !value.includes('\u0000'),
}

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url')
}

/** Decodes a cursor into a key of the given shape; a cursor that is not ours is a 400 naming it. */
export function decodeCursor(cursor: string | undefined, shape: readonly CursorPart[]): CursorKey | undefined {
  if (cursor === undefined) return undefined
  try {
    const key: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(key) && key.length === shape.length && shape.every((part, i) => partIsValid[part](key[i]))) {
      return key as CursorKey
    }
  } catch {
    // fall through to the problem below
  }
  throw problems.validation([{ path: 'querystring.cursor', message: 'is not a cursor this service issued' }])
}

/**
 * Given up to `limit + 1` rows fetched in list order, returns the page and the cursor after it.
 * Fetching one extra row tells whether there is a next page without a second query.
 */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  keyOf: (row: Row) => CursorKey,
  toItem: (row: Row) => Item,
): { items: Item[]; nextCursor: string | null } {
  const pageRows = rows.slice(0, limit)
  const last = pageRows[pageRows.length - 1]
  return {
    items: pageRows.map(toItem),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null,
  }
}
