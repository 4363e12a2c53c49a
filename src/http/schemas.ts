/**
 * Small zod shapes shared by every module: ids, dates, times, and the headers of safe writes.
 */
import { z } from 'zod'

export const Uuid = z.uuid({ error: 'must be a UUID' })

export const IdParams = z.strictObject({ id: Uuid })

/**
 * Years a register can mean. ISO formats allow year 0000, which PostgreSQL refuses; bounding the
 * year keeps such a value a 400 naming the field instead of a database error.
 */
const plausibleYear = (value: string) => value.slice(0, 4) >= '1900' && value.slice(0, 4) <= '2999'
const YEAR_RANGE = { error: 'must be in the years 1900 to 2999' }

/** A calendar date, `YYYY-MM-DD`, that really exists (no 2023-02-30). */
export const DateString = z.iso.date({ error: 'must be a date, YYYY-MM-DD' }).refine(plausibleYear, YEAR_RANGE)

/** An RFC 3339 time with an offset (`2023-11-20T16:45:00Z`, `2023-11-20T16:45:00+01:00`). */
export const Timestamp = z.iso
  .datetime({ offset: true, error: 'must be an RFC 3339 time with offset, e.g. 2023-11-20T16:45:00Z' })
  .refine(plausibleYear, YEAR_RANGE)

/**
 * Free text a person types: trimmed, not blank, bounded, and storable as sent (PostgreSQL text
 * has no NUL; an unpaired surrogate would be silently stored as U+FFFD).
 */
export const Text = (max: number) =>
  z
    .string()
    .trim()
    .min(1, { error: 'must not be blank' })
    .max(max, { error: `must be at most ${max} characters` })
    .refine((value) => !value.includes('\u0000') && !/\p{Cs}/u.test(value), { error: 'must not contain NUL characters or broken Unicode' })

/** A query-string boolean: only the words `true` and `false`. */
export const QueryBoolean = z.enum(['true', 'false'], { error: 'must be true or false' }).transform((v) => v === 'true')

/** Times leave the service as RFC 3339 UTC strings. */
export const iso = (value: Date | null | undefined): string | null => (value ? value.toISOString() : null)

/** A time that may not lie in the future (real-world events), with a minute's grace for clock skew. */
export function notInFuture(value: string | undefined | null): boolean {
  return value == null || Date.parse(value) <= Date.now() + 60_000
}
