/**
 * Incidents: a device reported lost or stolen, then recovered or written off (closed).
 *
 * Every change is a transaction that reads what it changes (locked), decides the new state in
 * code — the device's move from its lifecycle, the incident from `toIncident` — and stores those
 * values with their audit events. A report also ends the device's open assignment and keeps a
 * snapshot of what was true at loss (custodian, device kind, encryption, MDM, classification).
 * Its reference comes from a per-year counter row moved on in the same transaction, so a report
 * that fails gives its number back and references stay gap-free.
 *
 * Reports that arrive together share one transaction (`batchedTransaction`): the year's counter
 * row stays locked from the moment a number is taken until commit, so reports of a year queue on
 * it, and one commit for many reports is what lets them through. Two such transactions may run at
 * once: the devices they lock differ (or the second waits for the first), and they take the
 * counter in turn.
 *
 * Risk is computed at read time while an incident is open, so `outstanding_30d` follows the clock
 * with nothing to update; at recovery or closure it is frozen (frozen_risk_* columns) as it stood
 * at that moment, and that frozen score is shown from then on.
 */
import { and, asc, desc, eq, gte, isNull, lt, or, type SQL, sql } from 'drizzle-orm'
import { batchedTransaction } from '../../db/batches.js'
import type { DbOrTx, Tx } from '../../db/client.js'
import { newId } from '../../db/ids.js'
import { preparedQuery, preparedStatement } from '../../db/prepared.js'
import { rowsAsJson } from '../../db/rows.js'
import { assignments, devices, incidentNotes, incidents } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import { decodeCursor, toPage } from '../../http/pagination.js'
import { staleVersion } from '../../http/preconditions.js'
import { iso } from '../../http/schemas.js'
import { problems, type ProblemFieldError } from '../../plugins/problems.js'
import { ukMidnight } from '../../time/uk.js'
import { erasePersonalValues } from '../audit/personal.js'
import { AUDIT_EVENTS_FROM_ARRAYS, type AuditChange, auditEventsFrom, auditEventValues, recordAudit } from '../audit/trail.js'
import { toAssignment } from '../assignments/service.js'
import { toDevice } from '../devices/service.js'
import { transition } from '../devices/lifecycle.js'
import { computeRisk, type Risk, type RiskFactor, riskLevelSql, riskScoreSql } from './risk.js'
import type {
  CloseInput,
  CreateIncidentInput,
  Incident,
  IncidentListFilter,
  IncidentNote,
  RecoveryInput,
  UpdateIncidentInput,
} from './schemas.js'

/** The constraints a client's input can break, by the field it got wrong (handed to the problems plugin by app.ts). */
export const incidentConstraints = {
  incidents_one_open_per_device: { path: 'body.deviceId', message: 'the device already has an open incident' },
}

type IncidentRow = typeof incidents.$inferSelect
type NoteRow = typeof incidentNotes.$inferSelect

const ICO_DEADLINE_MS = 72 * 60 * 60 * 1000
/** Clock skew allowed on times a client says have happened. */
const FUTURE_GRACE_MS = 60_000

/** What a caller may see: free text is for `security` only. */
export interface View {
  freeText: boolean
}
export const FULL_VIEW: View = { freeText: true }

export function riskOf(row: IncidentRow, now: Date = new Date()): Risk {
  if (row.status !== 'open' && row.frozenRiskScore !== null && row.frozenRiskLevel !== null) {
    return { score: row.frozenRiskScore, level: row.frozenRiskLevel, factors: (row.frozenRiskFactors ?? []) as RiskFactor[] }
  }
  return computeRisk(row, now)
}

export function toIncident(row: IncidentRow, view: View, now: Date = new Date()): Incident {
  const text = (value: string | null) => (view.freeText ? value : null)
  return {
    id: row.id,
    reference: row.reference,
    status: row.status,
    deviceId: row.deviceId,
    custodianId: row.custodianId,
    kind: row.kind,
    occurredAt: iso(row.occurredAt),
    reportedAt: iso(row.reportedAt)!,
    location: { category: row.locationCategory, description: text(row.locationDescription) },
    circumstances: text(row.circumstances),
    policeReference: row.policeReference,
    personalDataAtRisk: row.personalDataAtRisk,
    remoteWipe: row.remoteWipe,
    icoDeadline: iso(row.icoDeadline),
    icoReportedAt: iso(row.icoReportedAt),
    recoveredAt: iso(row.recoveredAt),
    recovery: row.recoveryCondition ? { condition: row.recoveryCondition, notes: text(row.recoveryNotes) } : null,
    closedAt: iso(row.closedAt),
    closeReason: text(row.closeReason),
    risk: riskOf(row, now),
    createdAt: iso(row.createdAt)!,
    updatedAt: iso(row.updatedAt)!,
    version: row.version,
  }
}

export function toNote(row: NoteRow, view: View): IncidentNote {
  return {
    id: row.id,
    incidentId: row.incidentId,
    text: view.freeText ? row.text : null,
    createdAt: iso(row.createdAt)!,
    createdBy: row.createdBy,
  }
}

/** Real-world times: not in the future; collects the field errors rather than stopping at one. */
function checkPast(errors: ProblemFieldError[], path: string, value: Date | null, now: Date): void {
  if (value && value.getTime() > now.getTime() + FUTURE_GRACE_MS) errors.push({ path, message: 'must not be in the future' })
}

function checkNotBefore(errors: ProblemFieldError[], path: string, value: Date | null, floor: Date, floorName: string): void {
  if (value && value.getTime() < floor.getTime()) errors.push({ path, message: `must not be before ${floorName}` })
}

const parseTime = (value: string | null | undefined): Date | null => (value ? new Date(value) : null)

interface Report {
  context: WriteContext
  input: CreateIncidentInput
  now: Date
  reportedAt: Date
  occurredAt: Date | null
}

export async function reportIncident(db: DbOrTx, context: WriteContext, input: CreateIncidentInput): Promise<Incident> {
  const now = new Date()
  const reportedAt = parseTime(input.reportedAt) ?? now
  const occurredAt = parseTime(input.occurredAt)
  const errors: ProblemFieldError[] = []
  checkPast(errors, 'body.reportedAt', reportedAt, now)
  checkPast(errors, 'body.occurredAt', occurredAt, now)
  if (occurredAt && occurredAt.getTime() > reportedAt.getTime()) {
    errors.push({ path: 'body.occurredAt', message: 'must not be after reportedAt' })
  }
  if (errors.length > 0) throw problems.validation(errors)
  return writeReport(db, { context, input, now, reportedAt, occurredAt })
}

/**
 * The devices reported, locked (in id order, so two batches lock them in the same order), each
 * with its open assignment if any. The assignments are read once the locks are held, in a
 * statement of their own: a join would show an assignment as it was before a return that held the
 * device's lock committed (only the locked rows are read again), and nothing changes an assignment
 * without that lock.
 */
async function lockDevicesWithOpenAssignment(tx: Tx, ids: string[]) {
  const locked = await tx.select().from(devices).where(sql`${devices.id} = ANY(${sql.param(ids)}::uuid[])`).orderBy(asc(devices.id)).for('update')
  const open = await tx
    .select()
    .from(assignments)
    .where(and(sql`${assignments.deviceId} = ANY(${sql.param(ids)}::uuid[])`, isNull(assignments.returnedAt)))
  const openByDevice = new Map(open.map((assignment) => [assignment.deviceId, assignment]))
  return locked.map((device) => ({ device, assignment: openByDevice.get(device.id) ?? null }))
}

type DeviceRow = typeof devices.$inferSelect
type AssignmentRow = typeof assignments.$inferSelect

/** What a report changes, decided from the device as it stands: nothing is written yet. */
function planReport(report: Report, device: DeviceRow, open: AssignmentRow | null) {
  const { context, input, now, reportedAt, occurredAt } = report
  const status = transition(device.status, input.kind === 'lost' ? 'report_lost' : 'report_stolen')
  const deviceAfter: DeviceRow = { ...device, status, currentCustodianId: null, updatedAt: now, version: device.version + 1 }
  // The assignment ends when the loss was reported (never before it began).
  const ended: AssignmentRow | null = open && {
    ...open,
    returnedAt: new Date(Math.max(open.assignedAt.getTime(), reportedAt.getTime())),
    endedBy: 'incident',
  }
  const row: IncidentRow = {
    id: newId(),
    reference: '', // numbered with the others of its batch, before anything is written
    status: 'open',
    deviceId: device.id,
    kind: input.kind,
    occurredAt,
    reportedAt,
    locationCategory: input.location.category,
    locationDescription: input.location.description ?? null,
    circumstances: input.circumstances,
    policeReference: input.policeReference ?? null,
    personalDataAtRisk: input.personalDataAtRisk,
    remoteWipe: input.remoteWipe ?? 'not_requested',
    icoDeadline: input.personalDataAtRisk ? new Date(reportedAt.getTime() + ICO_DEADLINE_MS) : null,
    icoReportedAt: null,
    recoveredAt: null,
    recoveryCondition: null,
    recoveryNotes: null,
    closedAt: null,
    closeReason: null,
    freeTextErasedAt: null,
    custodianId: device.currentCustodianId,
    deviceKind: device.kind,
    deviceEncrypted: device.encrypted,
    deviceMdmEnrolled: device.mdmEnrolled,
    deviceClassification: device.classification,
    frozenRiskScore: null,
    frozenRiskLevel: null,
    frozenRiskFactors: null,
    createdAt: now,
    updatedAt: now,
    createdBy: context.actor,
    version: 1,
  }
  return { report, device, deviceAfter, ended, row }
}

type PlannedReport = ReturnType<typeof planReport>

/**
 * Each year's counter moved on by its reports' count, in year order (so two transactions lock
 * counter rows in the same order); returns each year's last number. The UK year reported: New Year
 * falls in GMT, so the UTC year is the UK year.
 */
const moveCounters = preparedStatement<{ year: number; last_number: number }>(
  'incident_counters_move',
  () => sql`INSERT INTO incident_counters AS c (year, last_number)
    SELECT * FROM unnest(${sql.placeholder('years')}::int[], ${sql.placeholder('counts')}::int[]) ORDER BY 1
    ON CONFLICT (year) DO UPDATE SET last_number = c.last_number + excluded.last_number
    RETURNING c.year, c.last_number`,
)

/** `INC-<year>-<number>`, the number at least four digits. */
const referenceOf = (year: number, number: number) => `INC-${year}-${String(number).padStart(4, '0')}`

/** The next numbers of each year, handed out in the order the reports arrived. */
async function numberReports(tx: Tx, planned: PlannedReport[]): Promise<void> {
  const counts = new Map<number, number>()
  for (const { row } of planned) counts.set(row.reportedAt.getUTCFullYear(), (counts.get(row.reportedAt.getUTCFullYear()) ?? 0) + 1)
  const moved = await moveCounters(tx, { years: [...counts.keys()], counts: [...counts.values()] })
  const next = new Map(moved.map(({ year, last_number }) => [year, Number(last_number) - counts.get(year)! + 1]))
  for (const { row } of planned) {
    const year = row.reportedAt.getUTCFullYear()
    const number = next.get(year)!
    next.set(year, number + 1)
    row.reference = referenceOf(year, number)
  }
}

/**
 * The values decided in code, stored as given — the incidents, their devices' new state, the
 * assignments they end — with their audit events, in one round trip: the year's counter row is
 * locked from numbering until commit, so every round trip here holds up the year's next reports.
 */
const storeReports = preparedStatement(
  'incident_reports_store',
  () => sql`WITH created AS (
      INSERT INTO incidents SELECT * FROM jsonb_populate_recordset(NULL::incidents, ${sql.placeholder('incidents')}::jsonb)),
    changed_devices AS (
      UPDATE devices d SET status = u.status, current_custodian_id = u.current_custodian_id, updated_at = u.updated_at, version = u.version
      FROM jsonb_populate_recordset(NULL::devices, ${sql.placeholder('devices')}::jsonb) u
      WHERE d.id = u.id),
    ended_assignments AS (
      UPDATE assignments a SET returned_at = u.returned_at, ended_by = u.ended_by
      FROM jsonb_populate_recordset(NULL::assignments, ${sql.placeholder('assignments')}::jsonb) u
      WHERE a.id = u.id),
    ${auditEventsFrom(AUDIT_EVENTS_FROM_ARRAYS)}
    SELECT 1`,
)

/**
 * The reports of one batch, in one transaction: each is checked against its device as it stands
 * (a second report of the same device sees it as the first left it), the good ones numbered and
 * stored, and each answered with its incident or the problem that refused it.
 */
async function writeReports(tx: Tx, reports: readonly Report[]): Promise<(Incident | Error)[]> {
  const found = await lockDevicesWithOpenAssignment(tx, [...new Set(reports.map((report) => report.input.deviceId))])
  const current = new Map(found.map(({ device, assignment }) => [device.id, { device, assignment }]))
  const outcomes = reports.map((report) => {
    const standing = current.get(report.input.deviceId)
    if (!standing) {
      const id = report.input.deviceId
      return problems.unprocessable(`There is no device ${id}.`, [{ path: 'body.deviceId', message: 'names no device' }])
    }
    try {
      const planned = planReport(report, standing.device, standing.assignment)
      current.set(planned.device.id, { device: planned.deviceAfter, assignment: null })
      return planned
    } catch (error) {
      return error as Error
    }
  })
  const planned = outcomes.filter((outcome): outcome is PlannedReport => !(outcome instanceof Error))
  if (planned.length === 0) return outcomes as Error[]

  await numberReports(tx, planned)
  const answers = new Map<PlannedReport, Incident>()
  const events = planned.map((plan) => {
    const incident = toIncident(plan.row, FULL_VIEW, plan.report.now)
    answers.set(plan, incident)
    const changes: AuditChange[] = [
      { action: 'incident.reported', entityType: 'incident', entityId: plan.row.id, after: incident },
      {
        action: `device.reported_${plan.report.input.kind}`,
        entityType: 'device',
        entityId: plan.device.id,
        before: toDevice(plan.device),
        // As with a return, the event carries the assignment it ended.
        after: { ...toDevice(plan.deviceAfter), assignment: plan.ended ? toAssignment(plan.ended) : null },
      },
    ]
    return { context: plan.report.context, changes }
  })
  await storeReports(tx, {
    incidents: rowsAsJson(incidents, planned.map((plan) => plan.row)),
    devices: rowsAsJson(devices, planned.map((plan) => plan.deviceAfter)),
    assignments: rowsAsJson(assignments, planned.flatMap((plan) => (plan.ended ? [plan.ended] : []))),
    ...auditEventValues(events),
  })
  return outcomes.map((outcome) => (outcome instanceof Error ? outcome : answers.get(outcome)!))
}

// Two batches at once: the next one locks its devices and reads their assignments while this one
// stores and commits; only the year's counter, held from numbering to commit, makes them take turns.
const writeReport = batchedTransaction('incident-reports', writeReports, { inFlight: 2 })

const incidentById = preparedQuery('incident_by_id', (db) =>
  db.select().from(incidents).where(eq(incidents.id, sql.placeholder('id'))),
)

async function findIncident(db: DbOrTx, id: string, lock = false): Promise<IncidentRow> {
  const [row] = lock ? await db.select().from(incidents).where(eq(incidents.id, id)).for('update') : await incidentById(db, { id })
  if (!row) throw problems.notFound(`There is no incident ${id}.`)
  return row
}

export async function getIncident(db: DbOrTx, id: string, view: View): Promise<Incident> {
  return toIncident(await findIncident(db, id), view)
}

export async function updateIncident(
  db: DbOrTx,
  context: WriteContext,
  id: string,
  version: number,
  change: UpdateIncidentInput,
): Promise<Incident> {
  const now = new Date()
  return db.transaction(async (tx) => {
    const current = await findIncident(tx, id)
    if (current.version !== version) staleVersion('incident')
    const icoReportedAt = change.icoReportedAt === undefined ? undefined : parseTime(change.icoReportedAt)
    if (icoReportedAt) {
      const errors: ProblemFieldError[] = []
      checkPast(errors, 'body.icoReportedAt', icoReportedAt, now)
      checkNotBefore(errors, 'body.icoReportedAt', icoReportedAt, current.reportedAt, 'reportedAt')
      if (errors.length > 0) throw problems.validation(errors)
    }
    const [row] = await tx
      .update(incidents)
      .set({
        ...(change.policeReference !== undefined ? { policeReference: change.policeReference } : {}),
        ...(change.remoteWipe !== undefined ? { remoteWipe: change.remoteWipe } : {}),
        ...(icoReportedAt !== undefined ? { icoReportedAt } : {}),
        ...(change.location !== undefined ? { locationDescription: change.location.description } : {}),
        ...(change.circumstances !== undefined ? { circumstances: change.circumstances } : {}),
        updatedAt: now,
        version: sql`${incidents.version} + 1`,
      })
      // The version check is repeated inside the UPDATE: of two writers holding the same ETag, one wins.
      .where(and(eq(incidents.id, id), eq(incidents.version, version)))
      .returning()
    if (!row) staleVersion('incident')
    const before = toIncident(current, FULL_VIEW, now)
    const after = toIncident(row, FULL_VIEW, now)
    await recordAudit(tx, context, { action: 'incident.updated', entityType: 'incident', entityId: id, before, after })
    return after
  })
}

/** Locks an open incident for its last change, or says why it cannot change that way (409). */
async function lockOpenIncident(tx: DbOrTx, id: string, verb: string): Promise<IncidentRow> {
  const row = await findIncident(tx, id, true)
  if (row.status !== 'open') {
    throw problems.conflict(`Incident ${row.reference} is ${row.status}; only an open incident can be ${verb}.`)
  }
  return row
}

/** The risk as it stood at `at`, kept from now on (the incident was open until then). */
function frozenRisk(row: IncidentRow, at: Date) {
  const risk = computeRisk({ ...row, status: 'open' }, at)
  return { frozenRiskScore: risk.score, frozenRiskLevel: risk.level, frozenRiskFactors: risk.factors }
}

export async function recoverIncident(db: DbOrTx, context: WriteContext, id: string, input: RecoveryInput): Promise<Incident> {
  const now = new Date()
  const recoveredAt = new Date(input.recoveredAt)
  return db.transaction(async (tx) => {
    const current = await lockOpenIncident(tx, id, 'recovered')
    const errors: ProblemFieldError[] = []
    checkPast(errors, 'body.recoveredAt', recoveredAt, now)
    checkNotBefore(errors, 'body.recoveredAt', recoveredAt, current.reportedAt, 'the incident was reported')
    if (errors.length > 0) throw problems.validation(errors)

    const [device] = await tx.select().from(devices).where(eq(devices.id, current.deviceId)).for('update')
    const status = transition(device!.status, 'recover')
    const [deviceAfter] = await tx
      .update(devices)
      .set({ status, updatedAt: now, version: sql`${devices.version} + 1` })
      .where(eq(devices.id, device!.id))
      .returning()
    // Frozen as at the recovery itself: a find entered late did not leave the incident outstanding longer.
    const [row] = await tx
      .update(incidents)
      .set({
        status: 'recovered',
        recoveredAt,
        recoveryCondition: input.condition,
        recoveryNotes: input.notes ?? null,
        ...frozenRisk(current, recoveredAt),
        updatedAt: now,
        version: sql`${incidents.version} + 1`,
      })
      .where(eq(incidents.id, id))
      .returning()
    const before = toIncident(current, FULL_VIEW, now)
    const after = toIncident(row!, FULL_VIEW, now)
    await recordAudit(tx, context, [
      { action: 'incident.recovered', entityType: 'incident', entityId: id, before, after },
      { action: 'device.recovered', entityType: 'device', entityId: device!.id, before: toDevice(device!), after: toDevice(deviceAfter!) },
    ])
    return after
  })
}

export async function closeIncident(db: DbOrTx, context: WriteContext, id: string, input: CloseInput): Promise<Incident> {
  const now = new Date()
  return db.transaction(async (tx) => {
    const current = await lockOpenIncident(tx, id, 'closed')
    const [row] = await tx
      .update(incidents)
      .set({
        status: 'closed',
        closedAt: now,
        closeReason: input.reason,
        ...frozenRisk(current, now),
        updatedAt: now,
        version: sql`${incidents.version} + 1`,
      })
      .where(eq(incidents.id, id))
      .returning()
    const before = toIncident(current, FULL_VIEW, now)
    const after = toIncident(row!, FULL_VIEW, now)
    await recordAudit(tx, context, { action: 'incident.closed', entityType: 'incident', entityId: id, before, after })
    return after
  })
}

export async function addNote(db: DbOrTx, context: WriteContext, incidentId: string, text: string): Promise<IncidentNote> {
  return db.transaction(async (tx) => {
    await findIncident(tx, incidentId)
    const [row] = await tx
      .insert(incidentNotes)
      .values({ id: newId(), incidentId, text, createdBy: context.actor })
      .returning()
    const note = toNote(row!, FULL_VIEW)
    await recordAudit(tx, context, { action: 'incident.note_added', entityType: 'incident', entityId: incidentId, after: note })
    return note
  })
}

export async function listNotes(db: DbOrTx, incidentId: string, page: { limit: number; cursor?: string | undefined }, view: View) {
  await findIncident(db, incidentId)
  const cursor = decodeCursor(page.cursor, ['uuid'])
  const rows = await db
    .select()
    .from(incidentNotes)
    .where(and(eq(incidentNotes.incidentId, incidentId), cursor ? sql`${incidentNotes.id} > ${String(cursor[0])}` : undefined))
    .orderBy(asc(incidentNotes.id))
    .limit(page.limit + 1)
  return toPage(rows, page.limit, (row) => [row.id], (row) => toNote(row, view))
}

/** Personal data at risk, past the 72-hour deadline, not yet reported to the ICO. */
/** Personal data at risk, past the 72-hour deadline, not reported to the ICO: the lists and the reports. */
export function icoOverdueSql(now: Date): SQL {
  return sql`(${incidents.personalDataAtRisk} AND ${incidents.icoReportedAt} IS NULL AND ${incidents.icoDeadline} < ${now.toISOString()}::timestamptz)`
}

/** Newest reported first; the cursor is the last item's (reportedAt, id). */
export async function listIncidents(db: DbOrTx, filter: IncidentListFilter, view: View) {
  const now = new Date()
  if (filter.from && filter.to && filter.from >= filter.to) {
    throw problems.validation([{ path: 'querystring.to', message: 'must be after from' }])
  }
  const cursor = decodeCursor(filter.cursor, ['time', 'uuid'])
  const cursorAt = cursor ? new Date(String(cursor[0])) : undefined
  const conditions: (SQL | undefined)[] = [
    filter.status ? eq(incidents.status, filter.status) : undefined,
    filter.kind ? eq(incidents.kind, filter.kind) : undefined,
    filter.from ? gte(incidents.reportedAt, ukMidnight(filter.from)) : undefined,
    filter.to ? lt(incidents.reportedAt, ukMidnight(filter.to)) : undefined,
    filter.deviceId ? eq(incidents.deviceId, filter.deviceId) : undefined,
    filter.custodianId ? eq(incidents.custodianId, filter.custodianId) : undefined,
    filter.riskLevel ? sql`${riskLevelSql(riskScoreSql(now))} = ${filter.riskLevel}` : undefined,
    filter.icoOverdue === true ? icoOverdueSql(now) : undefined,
    filter.icoOverdue === false ? sql`NOT ${icoOverdueSql(now)}` : undefined,
    cursor
      ? or(
          lt(incidents.reportedAt, cursorAt!),
          and(eq(incidents.reportedAt, cursorAt!), lt(incidents.id, String(cursor[1]))),
        )
      : undefined,
  ]
  const rows = await db
    .select()
    .from(incidents)
    .where(and(...conditions))
    .orderBy(desc(incidents.reportedAt), desc(incidents.id))
    .limit(filter.limit + 1)
  return toPage(
    rows,
    filter.limit,
    (row) => [row.reportedAt.toISOString(), row.id],
    (row) => toIncident(row, view, now),
  )
}

/**
 * Erases an incident's free text (the retention schedule, years after it ended): circumstances,
 * the location's description, recovery notes, the close reason and every note, in the register
 * and in the audit trail. Everything structured stays, so counts, risk and FOI rows do not change.
 * The erasure's own event says who and why, not what. Erasing twice changes nothing.
 */
export async function eraseIncidentFreeText(db: DbOrTx, context: WriteContext, id: string, reason: string): Promise<{ valuesErased: number }> {
  return db.transaction(async (tx) => {
    const [current] = await tx.select().from(incidents).where(eq(incidents.id, id)).for('update')
    if (!current) throw problems.notFound(`There is no incident ${id}.`)
    if (current.freeTextErasedAt) return { valuesErased: 0 }
    const [row] = await tx
      .update(incidents)
      .set({ circumstances: null, locationDescription: null, recoveryNotes: null, closeReason: null, freeTextErasedAt: sql`now()` })
      .where(eq(incidents.id, id))
      .returning({ erasedAt: incidents.freeTextErasedAt })
    await tx.update(incidentNotes).set({ text: null }).where(eq(incidentNotes.incidentId, id))
    const valuesErased = await erasePersonalValues(tx, 'incident', id)
    await recordAudit(tx, context, {
      action: 'incident.free_text_erased',
      entityType: 'incident',
      entityId: id,
      after: { erasedAt: iso(row!.erasedAt), reason, valuesErased },
    })
    return { valuesErased }
  })
}
