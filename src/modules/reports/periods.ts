/**
 * The reporting period shared by the risk summary, its chart and the FOI export:
 * `?year=2023&basis=calendar|financial` or `?from=&to=` (dates, `to` exclusive). Pure: the dates
 * become instants only in SQL (`ukMidnight`), so midnight is Europe/London's, BST included.
 *
 * A UK financial year runs 1 April to 31 March and is named by the year it starts (fy2023-24).
 */
import { z } from 'zod'
import { DateString } from '../../http/schemas.js'
import { problems, type ProblemFieldError } from '../../plugins/problems.js'

export const MIN_YEAR = 1990
export const MAX_YEAR = 2100
/** A range longer than this is a mistake, not a report (and a byMonth of thousands of rows). */
export const MAX_RANGE_YEARS = 50

export const PeriodBasis = z.enum(['calendar', 'financial', 'range'])
export type PeriodBasis = z.infer<typeof PeriodBasis>

/** The query string of every period-based report. Which combination is allowed is checked by `resolvePeriod`. */
export const PeriodQuery = z.strictObject({
  year: z
    .string()
    .regex(/^[0-9]{4}$/, { error: 'must be a four-digit year' })
    .optional()
    .meta({ description: 'A calendar year, or with basis=financial the year a financial year starts (1 April).' }),
  basis: z
    .enum(['calendar', 'financial'], { error: 'must be calendar or financial' })
    .optional()
    .meta({ description: 'How `year` is counted; default calendar.' }),
  from: DateString.optional().meta({ description: 'First day of the period (UK local), with `to`.' }),
  to: DateString.optional().meta({ description: 'Day after the period (exclusive, UK local), with `from`.' }),
})
export type PeriodQuery = z.infer<typeof PeriodQuery>

export interface Period {
  /** First day, `YYYY-MM-DD`, inclusive. */
  from: string
  /** Day after the last, `YYYY-MM-DD`, exclusive. */
  to: string
  basis: PeriodBasis
  /** For file names: `2023`, `fy2023-24`, `2023-01-01_2023-07-01`. */
  label: string
  /** For people: `calendar year 2023`, `financial year 2023-24`, `2023-01-01 to 2023-06-30`. */
  description: string
}

const field = (name: string, message: string): ProblemFieldError => ({ path: `querystring.${name}`, message })

function addDays(date: string, days: number): string {
  const at = new Date(`${date}T00:00:00Z`)
  at.setUTCDate(at.getUTCDate() + days)
  return at.toISOString().slice(0, 10)
}

function yearPeriod(year: number, basis: 'calendar' | 'financial'): Period {
  if (basis === 'calendar') {
    return { from: `${year}-01-01`, to: `${year + 1}-01-01`, basis, label: `${year}`, description: `calendar year ${year}` }
  }
  const next = String((year + 1) % 100).padStart(2, '0')
  return {
    from: `${year}-04-01`,
    to: `${year + 1}-04-01`,
    basis,
    label: `fy${year}-${next}`,
    description: `financial year ${year}-${next}`,
  }
}

/** Turns the query into a period, or throws a 400 naming the parameter at fault. */
export function resolvePeriod(query: PeriodQuery): Period {
  const byYear = query.year !== undefined
  const byRange = query.from !== undefined || query.to !== undefined
  if (byYear && byRange) {
    const extra = query.from !== undefined ? 'from' : 'to'
    throw problems.validation([field(extra, 'give either year (with basis) or from and to, not both')])
  }
  if (!byYear && !byRange) {
    if (query.basis !== undefined) throw problems.validation([field('year', 'is required with basis')])
    throw problems.validation([field('year', 'give a year (with basis) or from and to')])
  }
  if (byYear) {
    const year = Number(query.year)
    if (year < MIN_YEAR || year > MAX_YEAR) {
      throw problems.validation([field('year', `must be from ${MIN_YEAR} to ${MAX_YEAR}`)])
    }
    return yearPeriod(year, query.basis ?? 'calendar')
  }
  if (query.basis !== undefined) throw problems.validation([field('basis', 'goes with year, not with from and to')])
  if (query.from === undefined) throw problems.validation([field('from', 'is required with to')])
  if (query.to === undefined) throw problems.validation([field('to', 'is required with from')])
  const { from, to } = query
  // YYYY-MM-DD strings compare as dates.
  if (from >= to) throw problems.validation([field('to', 'must be after from (to is exclusive)')])
  const [fromYear, fromRest] = [Number(from.slice(0, 4)), from.slice(4)]
  if (to > `${fromYear + MAX_RANGE_YEARS}${fromRest}`) {
    throw problems.validation([field('to', `must be at most ${MAX_RANGE_YEARS} years after from`)])
  }
  return { from, to, basis: 'range', label: `${from}_${to}`, description: `${from} to ${addDays(to, -1)}` }
}
