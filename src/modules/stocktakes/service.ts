/**
 * Stocktakes: a physical count of the devices, reconciled against the register. Scans arrive in
 * batches while the stocktake is open; closing freezes what it found, so later changes to the
 * devices never rewrite the record of what the count showed.
 *
 * Locking: a scan batch holds the stocktake row FOR SHARE (batches run side by side), closing takes
 * it FOR UPDATE, so it waits for batches in flight, counts them, and every later batch sees `closed`.
 */
import { and, asc, eq, gt, type SQL, sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../db/client.js'
import { newId } from '../../db/ids.js'
import { custodians, stocktakes } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import { decodeCursor, encodeCursor, toPage } from '../../http/pagination.js'
import { iso } from '../../http/schemas.js'
import { problems } from '../../plugins/problems.js'
import { recordAudit } from '../audit/trail.js'
import {
  computeDiscrepancies,
  decodeDiscrepancyCursor,
  discrepancyCursorOf,
  freezeDiscrepancies,
  frozenCounts,
  frozenDiscrepancies,
  frozenDiscrepancyItems,
  isoText,
  liveCounts,
  liveDiscrepancyItems,
} from './discrepancies.js'
import type {
  Counts,
  CreateStocktakeInput,
  DeviceEntryBody,
  Discrepancies,
  DiscrepancyClass,
  ScanBatch,
  ScanReceiptBody,
  Stocktake,
} from './schemas.js'

/** The constraints a client's input can break, by the field it got wrong (handed to the problems plugin by app.ts). */
export const stocktakeConstraints = {
  stocktakes_scope_custodian_id_custodians_id_fk: { path: 'body.scope.custodianId', message: 'is not a known custodian' },
}

/** Every column but the frozen document, which can be large and is read only when asked for. */
const summaryColumns = {
  id: stocktakes.id,
  name: stocktakes.name,
  status: stocktakes.status,
  scopeCustodianId: stocktakes.scopeCustodianId,
  scopeKind: stocktakes.scopeKind,
  closedAt: stocktakes.closedAt,
  createdAt: stocktakes.createdAt,
  updatedAt: stocktakes.updatedAt,
  createdBy: stocktakes.createdBy,
  version: stocktakes.version,
}

type StocktakeRow = typeof stocktakes.$inferSelect

export function toStocktake(row: StocktakeRow, counts: Counts): Stocktake {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    scope: { custodianId: row.scopeCustodianId, kind: row.scopeKind },
    counts,
    closedAt: iso(row.closedAt),
    createdAt: iso(row.createdAt)!,
    updatedAt: iso(row.updatedAt)!,
    createdBy: row.createdBy,
    version: row.version,
  }
}

const countsOf = (db: DbOrTx, row: StocktakeRow): Promise<Counts> =>
  row.status === 'closed' ? frozenCounts(db, row.id) : liveCounts(db, row)

async function findStocktake(db: DbOrTx, id: string, lock?: 'share' | 'update'): Promise<StocktakeRow> {
  const query = db.select(summaryColumns).from(stocktakes).where(eq(stocktakes.id, id))
  const [row] = await (lock === 'share' ? query.for('share') : lock === 'update' ? query.for('update') : query)
  if (!row) throw problems.notFound(`There is no stocktake ${id}.`)
  return row
}

export async function createStocktake(db: DbOrTx, context: WriteContext, input: CreateStocktakeInput): Promise<Stocktake> {
  return db.transaction(async (tx) => {
    const custodianId = input.scope?.custodianId ?? null
    if (custodianId) {
      const [custodian] = await tx.select({ id: custodians.id }).from(custodians).where(eq(custodians.id, custodianId))
      if (!custodian) {
        throw problems.unprocessable(`There is no custodian ${custodianId}.`, [
          { path: 'body.scope.custodianId', message: 'is not a known custodian' },
        ])
      }
    }
    const [row] = await tx
      .insert(stocktakes)
      .values({
        id: newId(),
        name: input.name,
        scopeCustodianId: custodianId,
        scopeKind: input.scope?.kind ?? null,
        createdBy: context.actor,
      })
      .returning(summaryColumns)
    // No scans yet, so every device in scope counts as missing.
    const created = toStocktake(row!, await liveCounts(tx, row!))
    await recordAudit(tx, context, { action: 'stocktake.created', entityType: 'stocktake', entityId: created.id, after: created })
    return created
  })
}

export async function getStocktake(db: DbOrTx, id: string): Promise<Stocktake> {
  const row = await findStocktake(db, id)
  return toStocktake(row, await countsOf(db, row))
}

export interface StocktakeListFilter {
  status?: StocktakeRow['status'] | undefined
  limit: number
  cursor?: string | undefined
}

/** Newest last (id order). Each item's counts are computed as for a single read. */
export async function listStocktakes(db: DbOrTx, filter: StocktakeListFilter) {
  const cursor = decodeCursor(filter.cursor, ['uuid'])
  const conditions: (SQL | undefined)[] = [
    filter.status ? eq(stocktakes.status, filter.status) : undefined,
    cursor ? gt(stocktakes.id, String(cursor[0])) : undefined,
  ]
  const rows = await db
    .select(summaryColumns)
    .from(stocktakes)
    .where(and(...conditions))
    .orderBy(asc(stocktakes.id))
    .limit(filter.limit + 1)
  const page = rows.slice(0, filter.limit)
  const items: Stocktake[] = []
  for (const row of page) items.push(toStocktake(row, await countsOf(db, row)))
  const last = page[page.length - 1]
  return { items, nextCursor: rows.length > filter.limit && last ? encodeCursor([last.id]) : null }
}

/**
 * Stores a batch of scans with one INSERT … SELECT over unnest()ed arrays, matching each to its
 * device by asset tag or serial number (any case; the identifiers arrive trimmed), then moves each
 * matched device's `lastSeenAt` forward, never back.
 */
export async function addScans(db: DbOrTx, context: WriteContext, id: string, scans: ScanBatch): Promise<ScanReceiptBody> {
  const ids = scans.map(() => newId())
  const types = scans.map((scan) => (scan.assetTag !== undefined ? 'asset_tag' : 'serial_number'))
  const identifiers = scans.map((scan) => (scan.assetTag ?? scan.serialNumber)!)
  const seenAts = scans.map((scan) => new Date(scan.seenAt).toISOString())
  const locations = scans.map((scan) => scan.location ?? null)
  return db.transaction(async (tx) => {
    const stocktake = await findStocktake(tx, id, 'share')
    if (stocktake.status !== 'open') throw problems.conflict(`Stocktake ${id} is closed; it takes no more scans.`)
    const [stored] = await rowsOf<{ accepted: number; matched: number }>(
      tx,
      sql`WITH input AS (
        SELECT * FROM unnest(${sql.param(ids)}::uuid[], ${sql.param(types)}::scan_identifier_type[],
          ${sql.param(identifiers)}::text[], ${sql.param(seenAts)}::timestamptz[], ${sql.param(locations)}::text[])
          AS u(id, identifier_type, identifier, seen_at, location)
      ), inserted AS (
        INSERT INTO stocktake_scans (id, stocktake_id, identifier_type, identifier, device_id, seen_at, location, created_by)
        SELECT i.id, ${id}, i.identifier_type, i.identifier, COALESCE(by_tag.id, by_serial.id), i.seen_at, i.location, ${context.actor}
        FROM input i
        LEFT JOIN devices by_tag ON i.identifier_type = 'asset_tag' AND lower(by_tag.asset_tag) = lower(i.identifier)
        LEFT JOIN devices by_serial ON i.identifier_type = 'serial_number' AND lower(by_serial.serial_number) = lower(i.identifier)
        RETURNING device_id
      )
      SELECT count(*)::int AS accepted, count(device_id)::int AS matched FROM inserted`,
    )
    // Rows are locked in id order so that two batches touching the same devices cannot deadlock.
    await tx.execute(sql`WITH latest AS (
        SELECT device_id, max(seen_at) AS seen_at FROM stocktake_scans
        WHERE id = ANY(${sql.param(ids)}::uuid[]) AND device_id IS NOT NULL GROUP BY device_id
      ), locked AS MATERIALIZED (
        SELECT d.id, l.seen_at FROM devices d JOIN latest l ON l.device_id = d.id
        WHERE d.last_seen_at IS NULL OR d.last_seen_at < l.seen_at
        ORDER BY d.id FOR NO KEY UPDATE OF d
      )
      UPDATE devices d SET last_seen_at = GREATEST(d.last_seen_at, k.seen_at) FROM locked k WHERE d.id = k.id`)
    const receipt = { accepted: stored!.accepted, matched: stored!.matched, unknown: stored!.accepted - stored!.matched }
    await recordAudit(tx, context, { action: 'stocktake.scans_added', entityType: 'stocktake', entityId: id, after: receipt })
    return receipt
  })
}

export async function getDiscrepancies(db: DbOrTx, id: string): Promise<Discrepancies> {
  const stocktake = await findStocktake(db, id)
  if (stocktake.status === 'closed') return frozenDiscrepancies(db, id)
  return computeDiscrepancies(db, stocktake)
}

export interface DiscrepancyPageFilter {
  limit: number
  cursor?: string | undefined
}

/**
 * One class of the discrepancies, a keyset page at a time, in the whole document's order: computed
 * now while the stocktake is open, read from the document frozen at closing once it is closed.
 */
export async function getDiscrepancyPage(db: DbOrTx, id: string, discrepancyClass: DiscrepancyClass, filter: DiscrepancyPageFilter) {
  const after = decodeDiscrepancyCursor(discrepancyClass, filter.cursor)
  const stocktake = await findStocktake(db, id)
  const page = { discrepancyClass, after, rows: filter.limit + 1 }
  const items = stocktake.status === 'closed' ? await frozenDiscrepancyItems(db, id, page) : await liveDiscrepancyItems(db, stocktake, page)
  return toPage(
    items,
    filter.limit,
    (item) => discrepancyCursorOf(discrepancyClass, item),
    (item) => item,
  )
}

export async function closeStocktake(db: DbOrTx, context: WriteContext, id: string): Promise<Stocktake> {
  return db.transaction(async (tx) => {
    // Waits for scan batches in flight; this statement's successor then sees all of them.
    const current = await findStocktake(tx, id, 'update')
    if (current.status !== 'open') throw problems.conflict(`Stocktake ${id} is already closed.`)
    await freezeDiscrepancies(tx, current)
    const [row] = await tx
      .update(stocktakes)
      .set({
        status: 'closed',
        closedAt: sql`now()`,
        updatedAt: sql`now()`,
        version: sql`${stocktakes.version} + 1`,
      })
      .where(eq(stocktakes.id, id))
      .returning(summaryColumns)
    const closed = toStocktake(row!, await frozenCounts(tx, id))
    await recordAudit(tx, context, {
      action: 'stocktake.closed',
      entityType: 'stocktake',
      entityId: id,
      before: toStocktake(current, closed.counts),
      after: closed,
    })
    return closed
  })
}

export interface OverdueFilter {
  days: number
  limit: number
  cursor?: string | undefined
}

const overdueColumns = sql`d.id, d.asset_tag AS "assetTag", d.serial_number AS "serialNumber", d.kind, d.status,
  d.current_custodian_id AS "currentCustodianId", ${isoText(sql`d.last_seen_at`)} AS "lastSeenAt",
  to_char(d.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "seenKey"`

type OverdueRow = DeviceEntryBody & { seenKey: string | null }

/**
 * In-service devices not seen for `days` days, or never: never-seen first (by id), then the
 * longest unseen. Two index-ordered queries, one per part, so the cursor `[lastSeenAt|null, id]`
 * stays a plain keyset however many devices have never been seen.
 */
export async function overdueAudit(db: DbOrTx, filter: OverdueFilter) {
  const cursor = decodeCursor(filter.cursor, ['time?', 'uuid'])
  const inService = sql`d.status IN ('in_stock', 'assigned')`
  const rows: OverdueRow[] = []
  if (!cursor || cursor[0] === null) {
    rows.push(
      ...(await rowsOf<OverdueRow>(
        db,
        sql`SELECT ${overdueColumns} FROM devices d WHERE ${inService} AND d.last_seen_at IS NULL
          ${cursor ? sql`AND d.id > ${cursor[1]}` : sql``}
          ORDER BY d.id LIMIT ${filter.limit + 1}`,
      )),
    )
  }
  if (rows.length <= filter.limit) {
    const after = cursor && cursor[0] !== null ? sql`AND (d.last_seen_at, d.id) > (${cursor[0]}::timestamptz, ${cursor[1]}::uuid)` : sql``
    rows.push(
      ...(await rowsOf<OverdueRow>(
        db,
        sql`SELECT ${overdueColumns} FROM devices d
          WHERE ${inService} AND d.last_seen_at < now() - make_interval(days => ${filter.days}) ${after}
          ORDER BY d.last_seen_at, d.id LIMIT ${filter.limit + 1 - rows.length}`,
      )),
    )
  }
  const page = rows.slice(0, filter.limit)
  const last = page[page.length - 1]
  return {
    items: page.map(({ seenKey: _seenKey, ...entry }) => entry),
    nextCursor: rows.length > filter.limit && last ? encodeCursor([last.seenKey, last.id]) : null,
  }
}
