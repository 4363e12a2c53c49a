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
 * Characters that change how text reads without being part of it: the bidirectional overrides,
 * embeddings and isolates (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F, U+061C). In
 * a name or a make they can show a reader one thing while another is stored and searched.
 */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/
/** C0 controls, DEL and C1 controls (NUL among them: PostgreSQL text cannot hold it). */
const CONTROLS = /\p{Cc}/u
/** The same, less the tab and line ends that text of several lines keeps. */
const CONTROLS_BUT_LINES = /(?![\t\n\r])\p{Cc}/u
/** Half of a surrogate pair alone: valid JSON, but no text; PostgreSQL would store U+FFFD. */
const LONE_SURROGATE = /\p{Cs}/u

/**
 * Text a person types, as every text field of the API takes it: trimmed, not blank, bounded,
 * storable as sent, and showing what it holds: no control characters (NUL included) and no
 * bidirectional controls. Short text (names, makes, models, places, references) is one line;
 * `multiline` free text (circumstances, notes, reasons) may keep tabs and line breaks.
 */
export const Text = (max: number, { multiline = false }: { multiline?: boolean } = {}) =>
  z
    .string()
    .trim()
    .min(1, { error: 'must not be blank' })
    .max(max, { error: `must be at most ${max} characters` })
    .refine((value) => !(multiline ? CONTROLS_BUT_LINES : CONTROLS).test(value), {
      error: multiline
        ? 'must not contain control characters (such as NUL) other than tabs and line breaks'
        : 'must not contain control characters (such as NUL, a tab or a line break)',
      abort: true,
    })
    .refine((value) => !BIDI_CONTROLS.test(value), {
      error: 'must not contain bidirectional control characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C)',
      abort: true,
    })
    .refine((value) => !LONE_SURROGATE.test(value), { error: 'must not contain broken Unicode (an unpaired surrogate)', abort: true })

/** A query-string boolean: only the words `true` and `false`. */
export const QueryBoolean = z.enum(['true', 'false'], { error: 'must be true or false' }).transform((v) => v === 'true')

/** Times leave the service as RFC 3339 UTC strings. */
export const iso = (value: Date | null | undefined): string | null => (value ? value.toISOString() : null)

/** A time that may not lie in the future (real-world events), with a minute's grace for clock skew. */
export function notInFuture(value: string | undefined | null): boolean {
  return value == null || Date.parse(value) <= Date.now() + 60_000
}
