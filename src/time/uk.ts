/**
 * UK local time. Every `from`/`to` date in the API means midnight in Europe/London (GMT or BST),
 * as the UK's own publications count; the conversion happens in SQL so it uses PostgreSQL's own
 * time zone data, the same on both drivers.
 */
import { type SQL, sql } from 'drizzle-orm'

export const UK_TIME_ZONE = 'Europe/London'

// Built once: constructing an Intl formatter is far too slow to do per row of an import (bench/README.md).
const UK_DATE = new Intl.DateTimeFormat('en-CA', { timeZone: UK_TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' })

/** Today's date in UK local time, `YYYY-MM-DD`. */
export function ukToday(now = new Date()): string {
  return UK_DATE.format(now)
}

/** The instant a `YYYY-MM-DD` day begins in UK local time, as a SQL expression. */
export function ukMidnight(date: string): SQL {
  return sql`((${date})::date::timestamp AT TIME ZONE 'Europe/London')`
}
