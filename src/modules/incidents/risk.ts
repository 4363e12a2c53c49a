/**
 * The risk score of an incident, exactly as the contract's table: points per factor, summed and
 * capped at 100, and a level from the total. One pure function, used by the incident responses
 * and by the reports, so the two can never disagree.
 *
 * While an incident is open the score follows its current state and the clock (`outstanding_30d`
 * is computed at read time from `now`); once recovered or closed, the score stored at that moment
 * is shown instead (see incidents/service.ts).
 *
 * Lists filter by level and reports rank by score inside the database, so each factor also has an
 * SQL twin next to its TypeScript rule (`riskScoreSql`); a test checks that the two agree on every
 * combination of factors.
 */
import { type SQL, sql } from 'drizzle-orm'
import { incidents } from '../../db/schema.js'

export type RiskLevel = 'low' | 'medium' | 'high' | 'critical'

export interface RiskFactor {
  code: string
  points: number
}

export interface Risk {
  score: number
  level: RiskLevel
  factors: RiskFactor[]
}

export interface RiskInput {
  kind: 'lost' | 'stolen'
  status: 'open' | 'recovered' | 'closed'
  reportedAt: Date
  locationCategory: string
  personalDataAtRisk: boolean
  remoteWipe: 'not_requested' | 'requested' | 'confirmed' | 'not_possible'
  deviceEncrypted: boolean
  deviceMdmEnrolled: boolean
  deviceClassification: 'official' | 'official_sensitive' | 'secret'
}

export const OUTSTANDING_DAYS = 30
const DAY_MS = 24 * 60 * 60 * 1000

/** The instant before which an incident reported and still open is outstanding for 30 days. */
const outstandingCutoff = (now: Date) => new Date(now.getTime() - OUTSTANDING_DAYS * DAY_MS)

interface FactorRule extends RiskFactor {
  applies: (i: RiskInput, now: Date) => boolean
  /** The same rule over the `incidents` columns, for queries. */
  appliesSql: (now: Date) => SQL
}

/** The factors in the contract's order, each with its points and when it applies. */
export const RISK_FACTORS: readonly FactorRule[] = [
  {
    code: 'unencrypted',
    points: 40,
    applies: (i) => !i.deviceEncrypted,
    appliesSql: () => sql`NOT ${incidents.deviceEncrypted}`,
  },
  {
    code: 'classification_secret',
    points: 40,
    applies: (i) => i.deviceClassification === 'secret',
    appliesSql: () => sql`${incidents.deviceClassification} = 'secret'`,
  },
  {
    code: 'classification_official_sensitive',
    points: 20,
    applies: (i) => i.deviceClassification === 'official_sensitive',
    appliesSql: () => sql`${incidents.deviceClassification} = 'official_sensitive'`,
  },
  {
    code: 'personal_data',
    points: 20,
    applies: (i) => i.personalDataAtRisk,
    appliesSql: () => sql`${incidents.personalDataAtRisk}`,
  },
  {
    code: 'wipe_unconfirmed',
    points: 15,
    applies: (i) => i.remoteWipe !== 'confirmed',
    appliesSql: () => sql`${incidents.remoteWipe} <> 'confirmed'`,
  },
  {
    code: 'stolen',
    points: 10,
    applies: (i) => i.kind === 'stolen',
    appliesSql: () => sql`${incidents.kind} = 'stolen'`,
  },
  {
    code: 'abroad',
    points: 10,
    applies: (i) => i.locationCategory === 'abroad',
    appliesSql: () => sql`${incidents.locationCategory} = 'abroad'`,
  },
  {
    code: 'not_mdm_enrolled',
    points: 10,
    applies: (i) => !i.deviceMdmEnrolled,
    appliesSql: () => sql`NOT ${incidents.deviceMdmEnrolled}`,
  },
  {
    code: 'outstanding_30d',
    points: 5,
    applies: (i, now) => i.status === 'open' && i.reportedAt.getTime() <= outstandingCutoff(now).getTime(),
    // The cutoff is computed here, in milliseconds, not with SQL calendar intervals: "30 days" of
    // interval arithmetic in a UK session time zone would be 30 × 24 h ± 1 h across a clock change.
    appliesSql: (now) =>
      sql`(${incidents.status} = 'open' AND ${incidents.reportedAt} <= ${outstandingCutoff(now).toISOString()}::timestamptz)`,
  },
]

export const MAX_SCORE = 100

/** Lowest score of each level, highest first. */
const LEVEL_FLOORS: readonly [RiskLevel, number][] = [
  ['critical', 75],
  ['high', 50],
  ['medium', 25],
]

export function riskLevel(score: number): RiskLevel {
  for (const [level, floor] of LEVEL_FLOORS) if (score >= floor) return level
  return 'low'
}

export function computeRisk(input: RiskInput, now: Date = new Date()): Risk {
  const factors = RISK_FACTORS.filter((factor) => factor.applies(input, now)).map(({ code, points }) => ({ code, points }))
  const score = Math.min(MAX_SCORE, factors.reduce((sum, factor) => sum + factor.points, 0))
  return { score, level: riskLevel(score), factors }
}

/** `computeRisk(...).score` of the `incidents` row in SQL, as if it were open now (ignores any frozen score). */
export function liveRiskScoreSql(now: Date = new Date()): SQL {
  const terms = RISK_FACTORS.map(
    (factor) => sql`(CASE WHEN ${factor.appliesSql(now)} THEN ${sql.raw(String(factor.points))} ELSE 0 END)`,
  )
  return sql`LEAST(${sql.raw(String(MAX_SCORE))}, ${sql.join(terms, sql` + `)})`
}

/**
 * The score an incident shows: computed from its current state while open, the frozen score once
 * recovered or closed. An integer SQL expression over the `incidents` columns.
 */
export function riskScoreSql(now: Date = new Date()): SQL {
  return sql`(CASE WHEN ${incidents.status} = 'open' THEN ${liveRiskScoreSql(now)} ELSE ${incidents.frozenRiskScore} END)`
}

/** `riskLevel(score)` in SQL, for any integer score expression. */
export function riskLevelSql(score: SQL): SQL {
  const branches = LEVEL_FLOORS.map(([level, floor]) => sql`WHEN ${score} >= ${sql.raw(String(floor))} THEN ${sql.raw(`'${level}'`)}`)
  return sql`(CASE ${sql.join(branches, sql` `)} ELSE 'low' END)`
}
