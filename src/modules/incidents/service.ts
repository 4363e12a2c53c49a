/**
 * Incidents: a device reported lost or stolen, then recovered or written off (closed).
 *
 * A report checks the device's lifecycle move on a read, then makes the whole change in one
 * statement shared with whichever reports arrive at the same time (report-batches.ts), on
 * condition that the device is unchanged since the read: the device set lost/stolen and its open
 * assignment ended, the incident written with a snapshot of what was true at loss (custodian,
 * device kind, encryption, MDM, classification), and the audit events appended. The reference
 * comes from a per-year counter row moved on in that statement, so a failed report takes its
 * number with it and references stay gap-free.
 *
 * Risk is computed at read time while an incident is open, so `outstanding_30d` follows the clock
 * with nothing to update; at recovery or closure it is frozen (frozen_risk_* columns) as it stood
 * at that moment, and that frozen score is shown from then on.
 */
import { and, asc, desc, eq, gte, isNull, lt, or, type SQL, sql } from 'drizzle-orm'
import { PgTransaction } from 'drizzle-orm/pg-core'
import { batchQueue, batchQueuePerHandle } from '../../db/batches.js'
import type { DbOrTx } from '../../db/client.js'
import { newId } from '../../db/ids.js'
import { preparedQuery } from '../../db/prepared.js'
import { assignments, devices, incidentNotes, incidents } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import { decodeCursor, toPage } from '../../http/pagination.js'
import { staleVersion } from '../../http/preconditions.js'
import { iso } from '../../http/schemas.js'
import { problems, type ProblemFieldError } from '../../plugins/problems.js'
import { ukMidnight } from '../../time/uk.js'
import { recordAudit } from '../audit/trail.js'
import { toAssignment } from '../assignments/service.js'
import { toDevice } from '../devices/service.js'
import { transition } from '../devices/lifecycle.js'
import { writeReport } from './report-batches.js'
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

/** Devices as they stand, each with its open assignment if any: what reports are checked against. */
const devicesWithOpenAssignment = preparedQuery('devices_with_open_assignment', (db) =>
  db
    .select({ device: devices, assignment: assignments })
    .from(devices)
    .leftJoin(assignments, and(eq(assignments.deviceId, devices.id), isNull(assignments.returnedAt)))
    .where(sql`${devices.id} = ANY(${sql.placeholder('ids')}::uuid[])`),
)

type DeviceWithOpenAssignment = Awaited<ReturnType<typeof devicesWithOpenAssignment>>[number]

/** The reads of reports arriving together, in one statement (see batchQueue); null for no such device. */
const deviceReadQueue = batchQueuePerHandle((db) =>
  batchQueue<string, DeviceWithOpenAssignment | null>(async (ids) => {
    const rows = await devicesWithOpenAssignment(db, { ids: [...new Set(ids)] })
    const byId = new Map(rows.map((row) => [row.device.id, row]))
    return ids.map((id) => byId.get(id) ?? null)
  }),
)

async function deviceWithOpenAssignment(db: DbOrTx, id: string): Promise<DeviceWithOpenAssignment | null> {
  if (db instanceof PgTransaction) return (await devicesWithOpenAssignment(db, { ids: [id] }))[0] ?? null
  return deviceReadQueue(db, id)
}

/** Reports whose device changed between their read and their write are tried again this often. */
const REPORT_ATTEMPTS = 5

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

  for (let attempt = 1; ; attempt++) {
    const reported = await tryReport(db, context, input, now, reportedAt, occurredAt)
    if (reported) return reported
    if (attempt === REPORT_ATTEMPTS) throw problems.conflict('The device kept changing while the report was made; try again.')
  }
}

/**
 * One attempt at a report: the device is read and its move checked here, then one statement,
 * autocommitted and shared with other reports (writeReport), makes the whole change on condition
 * that the device still has the version that was read (assignments change the device's version
 * too). Returns null, with nothing written, when the device had changed in between.
 *
 * Why no transaction: the year's counter row is locked from the moment a number is taken until
 * commit, so all reports of a year queue on it. Inside a transaction that lock was also held while
 * Node took the statement's result and sent COMMIT: under load, milliseconds of event-loop delay
 * per report, and the benchmark's creates/s were bounded by exactly that.
 */
async function tryReport(
  db: DbOrTx,
  context: WriteContext,
  input: CreateIncidentInput,
  now: Date,
  reportedAt: Date,
  occurredAt: Date | null,
): Promise<Incident | null> {
  const found = await deviceWithOpenAssignment(db, input.deviceId)
  if (!found) {
    throw problems.unprocessable(`There is no device ${input.deviceId}.`, [{ path: 'body.deviceId', message: 'names no device' }])
  }
  const { device, assignment: open } = found
  const status = transition(device.status, input.kind === 'lost' ? 'report_lost' : 'report_stolen')
  const deviceAfter = { ...device, status, currentCustodianId: null, updatedAt: now, version: device.version + 1 }
  // The assignment ends when the loss was reported (never before it began).
  const ended = open && { ...open, returnedAt: new Date(Math.max(open.assignedAt.getTime(), reportedAt.getTime())), endedBy: 'incident' }

  const row: IncidentRow = {
    id: newId(),
    reference: '', // taken by the statement
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
  const created = toIncident(row, FULL_VIEW, now)
  const reference = await writeReport(db, {
    context,
    incident: row,
    deviceStatus: status,
    deviceVersion: device.version,
    endedAssignment: ended ? { id: ended.id, returnedAt: ended.returnedAt } : null,
    changes: [
      { action: 'incident.reported', entityType: 'incident', entityId: row.id, after: created },
      {
        action: `device.reported_${input.kind}`,
        entityType: 'device',
        entityId: device.id,
        before: toDevice(device),
        // As with a return, the event carries the assignment it ended.
        after: { ...toDevice(deviceAfter), assignment: ended ? toAssignment(ended) : null },
      },
    ],
  })
  return reference === null ? null : { ...created, reference }
}

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
