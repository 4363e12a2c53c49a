/**
 * The risk summary of a period: counts computed by aggregates in SQL (incidents count in the
 * period by `reportedAt`, boundaries at UK midnight), read in one read-only repeatable-read
 * transaction so that the months, kinds and totals all describe the same instant and add up.
 *
 * `highestRisk` is ranked in SQL with the risk rule's SQL twin (`liveRiskScoreSql`) and then
 * described by `computeRisk` itself, so the score and factors shown are those of the one rule.
 */
import { type SQL, sql } from 'drizzle-orm'
import { z } from 'zod'
import { type Db, rowsOf, type Tx } from '../../db/client.js'
import { incidents } from '../../db/schema.js'
import { ukMidnight } from '../../time/uk.js'
import { computeRisk, liveRiskScoreSql, type RiskInput } from '../incidents/risk.js'
import { icoOverdueSql } from '../incidents/service.js'
import { type Period, PeriodBasis } from './periods.js'

const Count = z.int().min(0)

export const RiskSummarySchema = z
  .object({
    period: z.object({ from: z.string(), to: z.string(), basis: PeriodBasis }),
    totals: z.object({
      reported: Count,
      lost: Count,
      stolen: Count,
      recovered: Count,
      closed: Count,
      outstanding: Count,
      recoveryRate: z.number().meta({ description: 'recovered / reported, 4 decimals; 0 when none reported.' }),
    }),
    byKind: z.array(z.object({ kind: z.enum(['lost', 'stolen']), reported: Count, recovered: Count, outstanding: Count })),
    byLocation: z.array(z.object({ category: z.string(), reported: Count })),
    byMonth: z.array(
      z.object({ month: z.string().meta({ description: 'UK-local month reported, YYYY-MM' }), lost: Count, stolen: Count, recovered: Count }),
    ),
    exposure: z.object({
      outstandingUnencrypted: Count,
      outstandingSensitive: Count,
      outstandingWipeUnconfirmed: Count,
      personalDataIncidents: Count,
      icoOverdue: Count,
    }),
    timeToReportHours: z.object({
      median: z.number().nullable().meta({ description: 'Hours from occurredAt to reportedAt, 2 decimals; null when none.' }),
      p90: z.number().nullable(),
    }),
    highestRisk: z.array(
      z.object({
        id: z.string(),
        reference: z.string(),
        score: z.int(),
        level: z.enum(['low', 'medium', 'high', 'critical']),
        factors: z.array(z.object({ code: z.string(), points: z.int() })),
      }),
    ),
    repeatCustodians: z
      .array(z.object({ custodianId: z.string(), name: z.string().nullable().meta({ description: 'Null once the custodian is erased.' }), incidents: Count }))
      .optional()
      .meta({ description: 'Only for the security role: custodians with two or more incidents in the period.' }),
  })
  .meta({ id: 'RiskSummary' })

export type RiskSummary = z.infer<typeof RiskSummarySchema>

export const HIGHEST_RISK_LIMIT = 10

// Numbers are cast in SQL (::int, ::float8) so both drivers parse them alike.
const rows = rowsOf

/** The period's incidents: reported from UK midnight of `from` to UK midnight of `to`. */
export function inPeriod(period: Pick<Period, 'from' | 'to'>): SQL {
  return sql`${incidents.reportedAt} >= ${ukMidnight(period.from)} AND ${incidents.reportedAt} < ${ukMidnight(period.to)}`
}

const round = (value: number, places: number) => Math.round(value * 10 ** places) / 10 ** places

export function recoveryRate(recovered: number, reported: number): number {
  return reported === 0 ? 0 : round(recovered / reported, 4)
}

interface TotalsRow {
  reported: number
  lost: number
  stolen: number
  recovered: number
  closed: number
  outstanding: number
  outstanding_unencrypted: number
  outstanding_sensitive: number
  outstanding_wipe_unconfirmed: number
  personal_data_incidents: number
  ico_overdue: number
  median_hours: number | null
  p90_hours: number | null
}

async function totalsOf(tx: Tx, period: Period, now: Date) {
  const open = sql`${incidents.status} = 'open'`
  const hours = sql`extract(epoch FROM (${incidents.reportedAt} - ${incidents.occurredAt})) / 3600`
  const [row] = await rows<TotalsRow>(
    tx,
    sql`SELECT
      count(*)::int AS reported,
      (count(*) FILTER (WHERE ${incidents.kind} = 'lost'))::int AS lost,
      (count(*) FILTER (WHERE ${incidents.kind} = 'stolen'))::int AS stolen,
      (count(*) FILTER (WHERE ${incidents.status} = 'recovered'))::int AS recovered,
      (count(*) FILTER (WHERE ${incidents.status} = 'closed'))::int AS closed,
      (count(*) FILTER (WHERE ${open}))::int AS outstanding,
      (count(*) FILTER (WHERE ${open} AND NOT ${incidents.deviceEncrypted}))::int AS outstanding_unencrypted,
      (count(*) FILTER (WHERE ${open} AND ${incidents.deviceClassification} IN ('official_sensitive', 'secret')))::int
        AS outstanding_sensitive,
      (count(*) FILTER (WHERE ${open} AND ${incidents.remoteWipe} <> 'confirmed'))::int AS outstanding_wipe_unconfirmed,
      (count(*) FILTER (WHERE ${incidents.personalDataAtRisk}))::int AS personal_data_incidents,
      (count(*) FILTER (WHERE ${icoOverdueSql(now)}))::int AS ico_overdue,
      (percentile_cont(0.5) WITHIN GROUP (ORDER BY ${hours}) FILTER (WHERE ${incidents.occurredAt} IS NOT NULL))::float8
        AS median_hours,
      (percentile_cont(0.9) WITHIN GROUP (ORDER BY ${hours}) FILTER (WHERE ${incidents.occurredAt} IS NOT NULL))::float8
        AS p90_hours
    FROM ${incidents} WHERE ${inPeriod(period)}`,
  )
  return row!
}

async function byKindOf(tx: Tx, period: Period) {
  // Every kind appears, with zeros, so the shape never depends on the data.
  return rows<{ kind: 'lost' | 'stolen'; reported: number; recovered: number; outstanding: number }>(
    tx,
    sql`SELECT k.kind::text AS kind,
      count(i.id)::int AS reported,
      (count(i.id) FILTER (WHERE i.status = 'recovered'))::int AS recovered,
      (count(i.id) FILTER (WHERE i.status = 'open'))::int AS outstanding
    FROM unnest(enum_range(NULL::incident_kind)) AS k(kind)
    LEFT JOIN (SELECT * FROM ${incidents} WHERE ${inPeriod(period)}) AS i ON i.kind = k.kind
    GROUP BY k.kind ORDER BY k.kind`,
  )
}

async function byLocationOf(tx: Tx, period: Period) {
  return rows<{ category: string; reported: number }>(
    tx,
    sql`SELECT c.category::text AS category, count(i.id)::int AS reported
    FROM unnest(enum_range(NULL::location_category)) AS c(category)
    LEFT JOIN (SELECT * FROM ${incidents} WHERE ${inPeriod(period)}) AS i ON i.location_category = c.category
    GROUP BY c.category ORDER BY c.category`,
  )
}

async function byMonthOf(tx: Tx, period: Period) {
  // Months are UK-local: every month the period touches, zeros included.
  const month = sql`to_char(${incidents.reportedAt} AT TIME ZONE 'Europe/London', 'YYYY-MM')`
  return rows<{ month: string; lost: number; stolen: number; recovered: number }>(
    tx,
    sql`WITH months AS (
      SELECT to_char(m, 'YYYY-MM') AS month
      FROM generate_series(date_trunc('month', ${period.from}::date), (${period.to}::date - 1)::timestamp, interval '1 month') AS m
    ), counted AS (
      SELECT ${month} AS month,
        count(*) FILTER (WHERE ${incidents.kind} = 'lost') AS lost,
        count(*) FILTER (WHERE ${incidents.kind} = 'stolen') AS stolen,
        count(*) FILTER (WHERE ${incidents.status} = 'recovered') AS recovered
      FROM ${incidents} WHERE ${inPeriod(period)} GROUP BY 1
    )
    SELECT months.month, coalesce(c.lost, 0)::int AS lost, coalesce(c.stolen, 0)::int AS stolen,
      coalesce(c.recovered, 0)::int AS recovered
    FROM months LEFT JOIN counted AS c USING (month) ORDER BY months.month`,
  )
}

interface OpenIncidentRow {
  id: string
  reference: string
  kind: RiskInput['kind']
  reported_ms: number
  location_category: string
  personal_data_at_risk: boolean
  remote_wipe: RiskInput['remoteWipe']
  device_encrypted: boolean
  device_mdm_enrolled: boolean
  device_classification: RiskInput['deviceClassification']
}

async function highestRiskOf(tx: Tx, period: Period, now: Date) {
  const open = await rows<OpenIncidentRow>(
    tx,
    sql`SELECT ${incidents.id} AS id, ${incidents.reference} AS reference, ${incidents.kind}::text AS kind,
      (extract(epoch FROM ${incidents.reportedAt}) * 1000)::float8 AS reported_ms,
      ${incidents.locationCategory}::text AS location_category, ${incidents.personalDataAtRisk} AS personal_data_at_risk,
      ${incidents.remoteWipe}::text AS remote_wipe, ${incidents.deviceEncrypted} AS device_encrypted,
      ${incidents.deviceMdmEnrolled} AS device_mdm_enrolled, ${incidents.deviceClassification}::text AS device_classification
    FROM ${incidents}
    WHERE ${incidents.status} = 'open' AND ${inPeriod(period)}
    ORDER BY ${liveRiskScoreSql(now)} DESC, ${incidents.reportedAt}, ${incidents.reference}
    LIMIT ${HIGHEST_RISK_LIMIT}`,
  )
  return open.map((row) => {
    const risk = computeRisk(
      {
        kind: row.kind,
        status: 'open',
        reportedAt: new Date(row.reported_ms),
        locationCategory: row.location_category,
        personalDataAtRisk: row.personal_data_at_risk,
        remoteWipe: row.remote_wipe,
        deviceEncrypted: row.device_encrypted,
        deviceMdmEnrolled: row.device_mdm_enrolled,
        deviceClassification: row.device_classification,
      },
      now,
    )
    return { id: row.id, reference: row.reference, ...risk }
  })
}

async function repeatCustodiansOf(tx: Tx, period: Period) {
  return rows<{ custodianId: string; name: string | null; incidents: number }>(
    tx,
    // Counted per custodian id first, then joined: joining first hashed every custodian to count
    // a year's incidents (see bench/README.md).
    sql`SELECT c.id AS "custodianId", c.name, repeated.incidents
    FROM (SELECT ${incidents.custodianId} AS custodian_id, count(*)::int AS incidents
          FROM ${incidents} WHERE ${inPeriod(period)} AND ${incidents.custodianId} IS NOT NULL
          GROUP BY ${incidents.custodianId} HAVING count(*) >= 2) AS repeated
    JOIN custodians AS c ON c.id = repeated.custodian_id
    ORDER BY repeated.incidents DESC, c.name NULLS LAST, c.id`,
  )
}

export async function riskSummary(
  db: Db,
  period: Period,
  options: { withCustodians: boolean; now?: Date },
): Promise<RiskSummary> {
  const now = options.now ?? new Date()
  return db.transaction(
    async (tx) => {
      const totals = await totalsOf(tx, period, now)
      const byKind = await byKindOf(tx, period)
      const byLocation = await byLocationOf(tx, period)
      const byMonth = await byMonthOf(tx, period)
      const highestRisk = await highestRiskOf(tx, period, now)
      const repeatCustodians = options.withCustodians ? await repeatCustodiansOf(tx, period) : undefined
      const hours = (value: number | null) => (value === null ? null : round(value, 2))
      return {
        period: { from: period.from, to: period.to, basis: period.basis },
        totals: {
          reported: totals.reported,
          lost: totals.lost,
          stolen: totals.stolen,
          recovered: totals.recovered,
          closed: totals.closed,
          outstanding: totals.outstanding,
          recoveryRate: recoveryRate(totals.recovered, totals.reported),
        },
        byKind,
        byLocation,
        byMonth,
        exposure: {
          outstandingUnencrypted: totals.outstanding_unencrypted,
          outstandingSensitive: totals.outstanding_sensitive,
          outstandingWipeUnconfirmed: totals.outstanding_wipe_unconfirmed,
          personalDataIncidents: totals.personal_data_incidents,
          icoOverdue: totals.ico_overdue,
        },
        timeToReportHours: { median: hours(totals.median_hours), p90: hours(totals.p90_hours) },
        highestRisk,
        ...(repeatCustodians ? { repeatCustodians } : {}),
      }
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  )
}
