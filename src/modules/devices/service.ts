/**
 * Devices: the register's inventory. Status only ever changes through the lifecycle
 * (`lifecycle.ts`) — assignment, return, loss, recovery, retirement — never by an edit.
 */
import { and, asc, eq, gt, gte, lte, type SQL, sql } from 'drizzle-orm'
import type { AnyPgColumn } from 'drizzle-orm/pg-core'
import { type Config, wholeMatch } from '../../config.js'
import type { DbOrTx } from '../../db/client.js'
import { newId } from '../../db/ids.js'
import { preparedQuery } from '../../db/prepared.js'
import { devices } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import { decodeCursor, toPage } from '../../http/pagination.js'
import { staleVersion } from '../../http/preconditions.js'
import { iso } from '../../http/schemas.js'
import { problems } from '../../plugins/problems.js'
import { recordAudit } from '../audit/trail.js'
import { likeEscape } from '../custodians/service.js'
import { transition } from './lifecycle.js'
import type { CreateDeviceInput, Device, UpdateDeviceInput } from './schemas.js'

/** The constraints a client's input can break, by the field it got wrong (handed to the problems plugin by app.ts). */
export const deviceConstraints = {
  devices_asset_tag_key: { path: 'body.assetTag', message: 'a device with this asset tag is already registered' },
  devices_serial_number_key: { path: 'body.serialNumber', message: 'a device with this serial number is already registered' },
}

export type DeviceRow = typeof devices.$inferSelect

/**
 * An organisation's own asset-tag scheme (ASSET_TAG_PATTERN), on top of what `AssetTag` allows.
 * It is configuration, which the schemas (module constants) cannot hold: the devices module is
 * handed it at registration, and it is applied to a new device, a changed tag and every imported
 * row. Returns why a tag does not follow the scheme, or undefined when it does.
 */
export type AssetTagRule = (tag: string) => string | undefined

export function assetTagRule(config: Pick<Config, 'ASSET_TAG_PATTERN' | 'ASSET_TAG_EXAMPLE'>): AssetTagRule {
  const source = config.ASSET_TAG_PATTERN
  if (source === undefined) return () => undefined
  const pattern = wholeMatch(source)
  // The configuration requires the example beside the pattern.
  const message = `must follow this register's asset-tag scheme, e.g. ${config.ASSET_TAG_EXAMPLE}`
  return (tag) => (pattern.test(tag) ? undefined : message)
}

/** Refuses a tag that breaks the scheme as the schemas refuse a bad field: 400 naming `body.assetTag`. */
function checkAssetTag(rule: AssetTagRule, tag: string | undefined): void {
  const mismatch = tag === undefined ? undefined : rule(tag)
  if (mismatch) throw problems.validation([{ path: 'body.assetTag', message: mismatch }])
}

export function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    assetTag: row.assetTag,
    kind: row.kind,
    make: row.make,
    model: row.model,
    serialNumber: row.serialNumber,
    imei: row.imei,
    encrypted: row.encrypted,
    mdmEnrolled: row.mdmEnrolled,
    classification: row.classification,
    purchasedOn: row.purchasedOn,
    costPence: row.costPence,
    status: row.status,
    currentCustodianId: row.currentCustodianId,
    lastSeenAt: iso(row.lastSeenAt),
    retiredAt: iso(row.retiredAt),
    retireReason: row.retireReason,
    createdAt: iso(row.createdAt)!,
    updatedAt: iso(row.updatedAt)!,
    version: row.version,
  }
}

/** The insert values of a new device (the CSV import builds its rows in SQL: see import/write.ts). */
function newDeviceValues(input: CreateDeviceInput, actor: string): typeof devices.$inferInsert {
  return {
    id: newId(),
    assetTag: input.assetTag,
    kind: input.kind,
    make: input.make,
    model: input.model,
    serialNumber: input.serialNumber,
    imei: input.imei ?? null,
    encrypted: input.encrypted,
    mdmEnrolled: input.mdmEnrolled,
    classification: input.classification,
    purchasedOn: input.purchasedOn ?? null,
    costPence: input.costPence ?? null,
    createdBy: actor,
  }
}

export async function createDevice(db: DbOrTx, context: WriteContext, input: CreateDeviceInput, tagRule: AssetTagRule): Promise<Device> {
  checkAssetTag(tagRule, input.assetTag)
  return db.transaction(async (tx) => {
    // A duplicate asset tag or serial is refused by the unique indexes (a 409 naming the field).
    const [row] = await tx.insert(devices).values(newDeviceValues(input, context.actor)).returning()
    const created = toDevice(row!)
    await recordAudit(tx, context, { action: 'device.created', entityType: 'device', entityId: created.id, after: created })
    return created
  })
}

const deviceById = preparedQuery('device_by_id', (db) =>
  db.select().from(devices).where(eq(devices.id, sql.placeholder('id'))),
)

export async function findDevice(db: DbOrTx, id: string): Promise<DeviceRow | undefined> {
  const [row] = await deviceById(db, { id })
  return row
}

/** Reads the device and locks its row to the end of the transaction: state changes queue here. */
export async function lockDevice(tx: DbOrTx, id: string): Promise<DeviceRow> {
  const [row] = await tx.select().from(devices).where(eq(devices.id, id)).for('update')
  if (!row) throw problems.notFound(`There is no device ${id}.`)
  return row
}

export async function getDevice(db: DbOrTx, id: string): Promise<Device> {
  const row = await findDevice(db, id)
  if (!row) throw problems.notFound(`There is no device ${id}.`)
  return toDevice(row)
}

export async function updateDevice(
  db: DbOrTx,
  context: WriteContext,
  id: string,
  version: number,
  change: UpdateDeviceInput,
  tagRule: AssetTagRule,
): Promise<Device> {
  checkAssetTag(tagRule, change.assetTag)
  return db.transaction(async (tx) => {
    const current = await findDevice(tx, id)
    if (!current) throw problems.notFound(`There is no device ${id}.`)
    if (current.version !== version) staleVersion('device')
    // The version check is repeated inside the UPDATE: of two writers holding the same ETag, one wins.
    const [row] = await tx
      .update(devices)
      .set({ ...change, updatedAt: new Date(), version: sql`${devices.version} + 1` })
      .where(and(eq(devices.id, id), eq(devices.version, version)))
      .returning()
    if (!row) staleVersion('device')
    const before = toDevice(current)
    const after = toDevice(row)
    await recordAudit(tx, context, { action: 'device.updated', entityType: 'device', entityId: id, before, after })
    return after
  })
}

export async function retireDevice(db: DbOrTx, context: WriteContext, id: string, reason: string): Promise<Device> {
  return db.transaction(async (tx) => {
    const current = await lockDevice(tx, id)
    const status = transition(current.status, 'retire')
    const now = new Date()
    const [row] = await tx
      .update(devices)
      .set({ status, retiredAt: now, retireReason: reason, updatedAt: now, version: sql`${devices.version} + 1` })
      .where(eq(devices.id, id))
      .returning()
    const before = toDevice(current)
    const after = toDevice(row!)
    await recordAudit(tx, context, { action: 'device.retired', entityType: 'device', entityId: id, before, after })
    return after
  })
}

export interface DeviceListFilter {
  status?: DeviceRow['status'] | undefined
  kind?: DeviceRow['kind'] | undefined
  custodianId?: string | undefined
  q?: string | undefined
  limit: number
  cursor?: string | undefined
}

export async function listDevices(db: DbOrTx, filter: DeviceListFilter) {
  return toPage(await deviceListQuery(db, filter), filter.limit, (row) => [row.id], toDevice)
}

/** The list's query (one row more than the page, to know whether another follows); exported for its plan's test. */
export function deviceListQuery(db: DbOrTx, filter: DeviceListFilter) {
  const cursor = decodeCursor(filter.cursor, ['uuid'])
  // `lower(x) LIKE 'prefix%'` is what the text_pattern_ops unique indexes can serve.
  const prefix = filter.q ? `${likeEscape(filter.q.toLowerCase())}%` : undefined
  // Under an equality filter, ordering by (that column, id) is the same order — the column is
  // constant — and lets PostgreSQL walk that filter's (column, id) index instead of the primary key.
  const leading = filter.custodianId ? devices.currentCustodianId : filter.status ? devices.status : filter.kind ? devices.kind : undefined
  // The leading filter is written as a range (x >= v AND x <= v): as an equality, the planner drops
  // the column from the ordering, walks the primary key and filters, which reads every device
  // until 51 match: slow wherever status follows age, as it does (see bench/README.md).
  const matches = (column: AnyPgColumn, value: string | undefined) =>
    value === undefined ? undefined : column === leading ? and(gte(column, value), lte(column, value)) : eq(column, value)
  const conditions: (SQL | undefined)[] = [
    matches(devices.status, filter.status),
    matches(devices.kind, filter.kind),
    matches(devices.currentCustodianId, filter.custodianId),
    prefix ? sql`(lower(${devices.assetTag}) LIKE ${prefix} OR lower(${devices.serialNumber}) LIKE ${prefix})` : undefined,
    cursor ? gt(devices.id, String(cursor[0])) : undefined,
  ]
  return db
    .select()
    .from(devices)
    .where(and(...conditions))
    .orderBy(...(leading ? [asc(leading)] : []), asc(devices.id))
    .limit(filter.limit + 1)
}
