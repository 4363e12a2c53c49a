/**
 * The write of incident reports, several at a time: reports that arrive together go in ONE
 * statement and one commit, whatever their number.
 *
 * Why: a report takes the next number from its year's counter row, and that row stays locked until
 * the statement's commit has been flushed to disk, so every report of a year queues on it. One at
 * a time, that bounded the service at one report per commit (and a statement, a round trip and a
 * commit of CPU for each). Now each batch takes a block of numbers at once — in the order the
 * reports arrived — and the next batch is sent as soon as this one is done (see batchQueue).
 *
 * A report is written only if its device still has the version it was read at (see tryReport in
 * service.ts); one that is not written is answered `null` and tried again from the read. If the
 * statement fails as a whole, nothing of it was written and each report is written again alone, so
 * one report's error (a constraint, say) is its own and no one else's.
 */
import { getTableColumns, sql } from 'drizzle-orm'
import { PgTransaction } from 'drizzle-orm/pg-core'
import { batchQueue, batchQueuePerHandle } from '../../db/batches.js'
import type { Db, DbOrTx } from '../../db/client.js'
import { preparedStatement } from '../../db/prepared.js'
import { type deviceStatus, incidents } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import { type AuditChange, auditBatchValues, auditEventsCte } from '../audit/trail.js'

type IncidentRow = typeof incidents.$inferSelect

export interface ReportWrite {
  context: WriteContext
  /** The new incident; its `reference` is taken by the statement. */
  incident: IncidentRow
  /** The device's status after the report, if it still has version `deviceVersion`. */
  deviceStatus: (typeof deviceStatus.enumValues)[number]
  deviceVersion: number
  /** The device's open assignment, ended by the report. */
  endedAssignment: { id: string; returnedAt: Date } | null
  /** Its audit events; the incident's own event gets the reference merged into its `after`. */
  changes: AuditChange[]
}

const placeholder = (name: string) => sql.placeholder(name)

/** The incidents table's columns, in order, by their names in the database. */
const INCIDENT_COLUMNS = Object.entries(getTableColumns(incidents)).map(([key, column]) => ({ key: key as keyof IncidentRow, name: column.name }))

/**
 * Reports number r = 1…n (`r.report_no`): each device changed if it still has the version read,
 * its open assignment ended; then each year's counter moved on by its reports' count, and numbers
 * handed out in report order; the incidents written (sent as one jsonb array, keyed by column
 * name) and the events of the reports that went through. Years are counted in year order, so two
 * batches lock their counter rows in the same order. The UK year reported: New Year falls in GMT,
 * so the UTC year is the UK year.
 */
const reportBatchStatement = preparedStatement<{ report_no: number; reference: string }>(
  'incident_report_batch',
  () => sql`WITH report AS (
        SELECT * FROM unnest(${placeholder('device_ids')}::uuid[], ${placeholder('device_versions')}::int[],
                             ${placeholder('statuses')}::device_status[], ${placeholder('nows')}::timestamptz[],
                             ${placeholder('assignment_ids')}::uuid[], ${placeholder('returned_ats')}::timestamptz[],
                             ${placeholder('years')}::int[], ${placeholder('incident_ids')}::uuid[])
          WITH ORDINALITY AS r(device_id, device_version, status, now, assignment_id, returned_at, year, incident_id, report_no)),
      changed_device AS (
        UPDATE devices d SET status = r.status, current_custodian_id = NULL, updated_at = r.now, version = d.version + 1
        FROM report r
        WHERE d.id = r.device_id AND d.version = r.device_version
        RETURNING d.id),
      going AS (SELECT r.* FROM report r JOIN changed_device c ON c.id = r.device_id),
      ended_assignment AS (
        UPDATE assignments a SET returned_at = g.returned_at, ended_by = 'incident'
        FROM going g
        WHERE a.id = g.assignment_id AND a.returned_at IS NULL),
      counted AS (
        INSERT INTO incident_counters AS c (year, last_number)
        SELECT year, count(*) FROM going GROUP BY year ORDER BY year
        ON CONFLICT (year) DO UPDATE SET last_number = c.last_number + excluded.last_number
        RETURNING c.year, c.last_number),
      numbered AS (
        SELECT g.report_no, g.incident_id,
               k.last_number - count(*) OVER (PARTITION BY g.year) + row_number() OVER (PARTITION BY g.year ORDER BY g.report_no) AS number,
               g.year
        FROM going g JOIN counted k ON k.year = g.year),
      referenced AS (
        SELECT report_no, incident_id, 'INC-' || year || '-' || lpad(number::text, greatest(4, length(number::text)), '0') AS reference
        FROM numbered),
      created AS (
        INSERT INTO incidents (${sql.join(
          INCIDENT_COLUMNS.map(({ name }) => sql.identifier(name)),
          sql`, `,
        )})
        SELECT ${sql.join(
          INCIDENT_COLUMNS.map(({ key, name }) => (key === 'reference' ? sql`f.reference` : sql`i.${sql.identifier(name)}`)),
          sql`, `,
        )}
        FROM jsonb_populate_recordset(NULL::incidents, ${placeholder('incidents')}::jsonb) i
        JOIN referenced f ON f.incident_id = i.id),
      ${auditEventsCte({
        join: sql`JOIN referenced f ON f.report_no = u.request_no`,
        after: sql`CASE WHEN u.entity_id = f.incident_id THEN u.after::jsonb || jsonb_build_object('reference', f.reference) ELSE u.after::jsonb END`,
      })}
    SELECT report_no::int AS report_no, reference FROM referenced`,
)

/** Writes these reports in one statement: each one's reference, or null where its device had changed. */
async function writeReports(db: DbOrTx, reports: readonly ReportWrite[]): Promise<(string | null)[]> {
  const rows = await reportBatchStatement(db, {
    device_ids: reports.map((r) => r.incident.deviceId),
    device_versions: reports.map((r) => r.deviceVersion),
    statuses: reports.map((r) => r.deviceStatus),
    nows: reports.map((r) => r.incident.updatedAt.toISOString()),
    assignment_ids: reports.map((r) => r.endedAssignment?.id ?? null),
    returned_ats: reports.map((r) => r.endedAssignment?.returnedAt.toISOString() ?? null),
    years: reports.map((r) => r.incident.reportedAt.getUTCFullYear()),
    incident_ids: reports.map((r) => r.incident.id),
    incidents: JSON.stringify(reports.map((r) => Object.fromEntries(INCIDENT_COLUMNS.map(({ key, name }) => [name, r.incident[key]])))),
    ...auditBatchValues(reports.map((r) => ({ context: r.context, changes: r.changes }))),
  })
  const references = new Map(rows.map((row) => [row.report_no, row.reference]))
  return reports.map((_, index) => references.get(index + 1) ?? null)
}

/**
 * One batch: a device's first report in it is written, a second one is answered null (tried again
 * from the read, when the first has changed the device). If the statement fails, the reports are
 * written one by one, each with its own result or error.
 */
async function writeBatch(db: Db, batch: readonly ReportWrite[]): Promise<(string | null | Error)[]> {
  const firstOfDevice = new Map<string, ReportWrite>()
  for (const report of batch) if (!firstOfDevice.has(report.incident.deviceId)) firstOfDevice.set(report.incident.deviceId, report)
  const written = [...firstOfDevice.values()]
  let references: Map<ReportWrite, string | null | Error>
  try {
    const results = await writeReports(db, written)
    references = new Map(written.map((report, index) => [report, results[index]!]))
  } catch (error) {
    references = new Map()
    if (written.length === 1) references.set(written[0]!, error as Error)
    else {
      for (const report of written) {
        references.set(report, await writeReports(db, [report]).then(([reference]) => reference!, (alone: Error) => alone))
      }
    }
  }
  return batch.map((report) => (references.has(report) ? references.get(report)! : null))
}

const reportQueue = batchQueuePerHandle((db) => batchQueue<ReportWrite, string | null>((batch) => writeBatch(db, batch)))

/**
 * Writes a report with whichever others are waiting on the same database handle: its reference,
 * or null (nothing written) if its device had changed since it was read. In a transaction it is
 * written on its own, on the transaction's connection.
 */
export function writeReport(db: DbOrTx, report: ReportWrite): Promise<string | null> {
  if (db instanceof PgTransaction) return writeReports(db, [report]).then(([reference]) => reference!)
  return reportQueue(db, report)
}
