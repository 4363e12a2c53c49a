/**
 * UK local time. Every `from`/`to` date in the API means midnight in Europe/London (GMT or BST),
 * as the UK's own publications count; the conversion happens in SQL so it uses PostgreSQL's own
 * time zone data, the same on both drivers.
 */
import { type SQL, sql } from 'drizzle-orm'

export const UK_TIME_ZONE = 'Europe/London'

/** The instant a `YYYY-MM-DD` day begins in UK local time, as a SQL expression. */
export function ukMidnight(date: string): SQL {
  return sql`((${date})::date::timestamp AT TIME ZONE 'Europe/London')`
}
