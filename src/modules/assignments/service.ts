/**
 * Who holds which device. An assignment is opened by `assignDevice` and closed by `returnDevice`
 * (or by a loss report, in incidents). The device row is locked first, so concurrent requests on
 * one device queue up and see each other's result; the partial unique index
 * `assignments_one_open_per_device` is the last word should anything get past that.
 */
import { and, desc, eq, gt, isNull, lt, max, or, type SQL, sql } from 'drizzle-orm'
import type { DbOrTx } from '../../db/client.js'
import { newId } from '../../db/ids.js'
import { assignments, custodians, devices } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import { decodeCursor, toPage } from '../../http/pagination.js'
import { iso } from '../../http/schemas.js'
import { problems } from '../../plugins/problems.js'
import { recordAudit } from '../audit/trail.js'
import { findCustodian } from '../custodians/service.js'
import { transition } from '../devices/lifecycle.js'
import { findDevice, lockDevice, toDevice } from '../devices/service.js'
import type { AssignInput, Assignment, ReturnInput, UnreturnedItem } from './schemas.js'

/** The constraints a client's input can break, by the field it got wrong (handed to the problems plugin by app.ts). */
export const assignmentConstraints = {
  assignments_one_open_per_device: { path: 'path.id', message: 'the device already has an open assignment' },
  assignments_custodian_id_custodians_id_fk: { path: 'body.custodianId', message: 'no custodian has this id' },
}

type AssignmentRow = typeof assignments.$inferSelect

export function toAssignment(row: AssignmentRow): Assignment {
  return {
    id: row.id,
    deviceId: row.deviceId,
    custodianId: row.custodianId,
    assignedAt: iso(row.assignedAt)!,
    returnedAt: iso(row.returnedAt),
    endedBy: row.endedBy,
    createdAt: iso(row.createdAt)!,
    createdBy: row.createdBy,
  }
}

export async function assignDevice(db: DbOrTx, context: WriteContext, deviceId: string, input: AssignInput): Promise<Assignment> {
  return db.transaction(async (tx) => {
    const device = await lockDevice(tx, deviceId)
    const custodian = await findCustodian(tx, input.custodianId, true)
    if (!custodian) {
      throw problems.unprocessable(`There is no custodian ${input.custodianId}.`, [{ path: 'body.custodianId', message: 'no custodian has this id' }])
    }
    const status = transition(device.status, 'assign')
    if (!custodian.active) {
      throw problems.conflict('The custodian is not active (left or deactivated); devices go only to active custodians.', [
        { path: 'body.custodianId', message: 'is not active' },
      ])
    }
    const assignedAt = input.assignedAt ? new Date(input.assignedAt) : new Date()
    // History does not overlap: a device is handed out again only after it came back.
    const [previous] = await tx
      .select({ returnedAt: max(assignments.returnedAt) })
      .from(assignments)
      .where(eq(assignments.deviceId, deviceId))
    if (previous?.returnedAt && assignedAt < previous.returnedAt) {
      throw problems.unprocessable('The device was still with its previous custodian at that time.', [
        { path: 'body.assignedAt', message: `must not be before the previous return (${iso(previous.returnedAt)})` },
      ])
    }
    const [row] = await tx
      .insert(assignments)
      .values({ id: newId(), deviceId, custodianId: custodian.id, assignedAt, createdBy: context.actor })
      .returning()
    const [updated] = await tx
      .update(devices)
      .set({ status, currentCustodianId: custodian.id, updatedAt: new Date(), version: sql`${devices.version} + 1` })
      .where(eq(devices.id, deviceId))
      .returning()
    const assignment = toAssignment(row!)
    await recordAudit(tx, context, {
      action: 'device.assigned',
      entityType: 'device',
      entityId: deviceId,
      before: toDevice(device),
      after: { ...toDevice(updated!), assignment },
    })
    return assignment
  })
}

export async function returnDevice(db: DbOrTx, context: WriteContext, deviceId: string, input: ReturnInput): Promise<Assignment> {
  return db.transaction(async (tx) => {
    const device = await lockDevice(tx, deviceId)
    const status = transition(device.status, 'return')
    const [open] = await tx
      .select()
      .from(assignments)
      .where(and(eq(assignments.deviceId, deviceId), isNull(assignments.returnedAt)))
    if (!open) throw problems.conflict('The device is marked assigned but has no open assignment; ask an administrator.')
    const now = new Date()
    // Defaulting to now never precedes an assignedAt given a few seconds "in the future" (clock skew).
    const returnedAt = input.returnedAt ? new Date(input.returnedAt) : new Date(Math.max(now.getTime(), open.assignedAt.getTime()))
    if (returnedAt < open.assignedAt) {
      throw problems.unprocessable('A device cannot come back before it was handed out.', [
        { path: 'body.returnedAt', message: `must not be before the assignment began (${iso(open.assignedAt)})` },
      ])
    }
    const [closed] = await tx.update(assignments).set({ returnedAt }).where(eq(assignments.id, open.id)).returning()
    const [updated] = await tx
      .update(devices)
      .set({ status, currentCustodianId: null, updatedAt: now, version: sql`${devices.version} + 1` })
      .where(eq(devices.id, deviceId))
      .returning()
    const assignment = toAssignment(closed!)
    await recordAudit(tx, context, {
      action: 'device.returned',
      entityType: 'device',
      entityId: deviceId,
      before: toDevice(device),
      after: { ...toDevice(updated!), assignment },
    })
    return assignment
  })
}

interface Page {
  limit: number
  cursor?: string | undefined
}

/** Newest assignment first; the cursor is (assignedAt, id) of the last one shown. */
async function listAssignments(db: DbOrTx, where: SQL, page: Page) {
  const cursor = decodeCursor(page.cursor, ['time', 'uuid'])
  const at = cursor ? new Date(String(cursor[0])) : undefined
  const after =
    cursor && at
      ? or(lt(assignments.assignedAt, at), and(eq(assignments.assignedAt, at), lt(assignments.id, String(cursor[1]))))
      : undefined
  const rows = await db
    .select()
    .from(assignments)
    .where(and(where, after))
    .orderBy(desc(assignments.assignedAt), desc(assignments.id))
    .limit(page.limit + 1)
  return toPage(rows, page.limit, (row) => [iso(row.assignedAt), row.id], toAssignment)
}

export async function listDeviceAssignments(db: DbOrTx, deviceId: string, page: Page) {
  if (!(await findDevice(db, deviceId))) throw problems.notFound(`There is no device ${deviceId}.`)
  return listAssignments(db, eq(assignments.deviceId, deviceId), page)
}

export async function listCustodianAssignments(db: DbOrTx, custodianId: string, page: Page) {
  if (!(await findCustodian(db, custodianId))) throw problems.notFound(`There is no custodian ${custodianId}.`)
  return listAssignments(db, eq(assignments.custodianId, custodianId), page)
}

/** Devices still out with custodians who are inactive or have left, by device id. */
export async function listUnreturned(db: DbOrTx, page: Page) {
  const cursor = decodeCursor(page.cursor, ['uuid'])
  const rows = await db
    .select({
      device: {
        id: devices.id,
        assetTag: devices.assetTag,
        kind: devices.kind,
        make: devices.make,
        model: devices.model,
        serialNumber: devices.serialNumber,
        classification: devices.classification,
      },
      custodian: { id: custodians.id, kind: custodians.kind, name: custodians.name, active: custodians.active, leftOn: custodians.leftOn },
      assignmentId: assignments.id,
      since: assignments.assignedAt,
      // Days in UK local dates, as the leaving date is one.
      daysSinceLeaving: sql<number | null>`((now() AT TIME ZONE 'Europe/London')::date - ${custodians.leftOn})`.mapWith((v) =>
        v === null ? null : Number(v),
      ),
    })
    .from(devices)
    .innerJoin(custodians, eq(custodians.id, devices.currentCustodianId))
    .innerJoin(assignments, and(eq(assignments.deviceId, devices.id), isNull(assignments.returnedAt)))
    .where(
      and(
        eq(devices.status, 'assigned'),
        or(eq(custodians.active, false), sql`${custodians.leftOn} IS NOT NULL`),
        cursor ? gt(devices.id, String(cursor[0])) : undefined,
      ),
    )
    .orderBy(devices.id)
    .limit(page.limit + 1)
  return toPage(
    rows,
    page.limit,
    (row) => [row.device.id],
    (row): UnreturnedItem => ({ ...row, since: iso(row.since)! }),
  )
}
