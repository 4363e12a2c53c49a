/**
 * What a stocktake found wrong, computed in the database with set operations (anti-joins and
 * GROUP BY), so that a stocktake of tens of thousands of devices never passes them through Node:
 *
 * - missing: devices in scope, in stock or assigned, with no scan;
 * - unknown: scanned identifiers that match no device (grouped case-insensitively);
 * - reportedMissingButSeen: lost or stolen devices that were scanned, with their open incident;
 * - retiredButSeen: retired devices that were scanned.
 *
 * The scope (custodian, kind) says which devices are expected, so it limits `missing` only; a
 * lost or retired device turning up is worth knowing whoever's stocktake found it.
 *
 * A scan is matched to its device when stored; one that matched nothing then is matched again
 * here, so that a device registered after it was scanned counts as seen rather than as unknown.
 *
 * Each class is defined once (`classes` below): its items, where they come from, and their order.
 * The whole document and the keyset pages of one class are both built from that definition. At
 * closing, every item is stored as it stands (`stocktake_findings`: later device changes do not
 * alter it) with its class's order key, so that a closed stocktake's page is a range of an index,
 * in the same order as the open stocktake's and taking the same cursors.
 */
import { type SQL, sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../db/client.js'
import { scanIdentifierType } from '../../db/schema.js'
import { type CursorKey, type CursorPart, decodeCursor } from '../../http/pagination.js'
import { problems } from '../../plugins/problems.js'
import { type Counts, DISCREPANCY_CLASSES, type DeviceEntryBody, type Discrepancies, type DiscrepancyClass, type DiscrepancyItemBody, type UnknownIdentifierBody } from './schemas.js'

export interface StocktakeScopeRow {
  id: string
  scopeCustodianId: string | null
  scopeKind: string | null
}

/** A time as the API writes it (`toISOString()`), built in SQL for documents made there. */
export const isoText = (column: SQL) => sql`to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

const deviceEntry = sql`jsonb_build_object(
  'id', d.id, 'assetTag', d.asset_tag, 'serialNumber', d.serial_number, 'kind', d.kind, 'status', d.status,
  'currentCustodianId', d.current_custodian_id, 'lastSeenAt', ${isoText(sql`d.last_seen_at`)})`

/**
 * Every scan of the stocktake with the device it names (`device_id` null: unknown). The scans
 * matched when stored and the few that were not are read apart: together, the planner expected
 * every scan to need matching again and hashed the whole devices table twice to do it (most of the
 * time at a million devices, bench/README.md). The classes test devices against it (`seenDevice`)
 * rather than copy the seen devices' rows out first, which cost more than all the rest for a page
 * of one class.
 */
function seenCtes(stocktakeId: string): SQL {
  return sql`seen AS MATERIALIZED (
    SELECT s.identifier_type, s.identifier, s.device_id
    FROM stocktake_scans s
    WHERE s.stocktake_id = ${stocktakeId} AND s.device_id IS NOT NULL
    UNION ALL
    SELECT s.identifier_type, s.identifier, COALESCE(by_tag.id, by_serial.id)
    FROM stocktake_scans s
    LEFT JOIN devices by_tag ON s.identifier_type = 'asset_tag' AND lower(by_tag.asset_tag) = lower(s.identifier)
    LEFT JOIN devices by_serial ON s.identifier_type = 'serial_number' AND lower(by_serial.serial_number) = lower(s.identifier)
    WHERE s.stocktake_id = ${stocktakeId} AND s.device_id IS NULL
  )`
}

/** The device `d` was scanned in this stocktake. */
const seenDevice = sql`d.id IN (SELECT device_id FROM seen WHERE device_id IS NOT NULL)`

/** Devices expected in the stocktake and not seen. Scope conditions are left out, not made always-true, for a plain plan. */
function missingWhere(scope: StocktakeScopeRow): SQL {
  return sql`d.status IN ('in_stock', 'assigned')
    ${scope.scopeCustodianId ? sql`AND d.current_custodian_id = ${scope.scopeCustodianId}` : sql``}
    ${scope.scopeKind ? sql`AND d.kind = ${scope.scopeKind}::device_kind` : sql``}
    AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.device_id = d.id)`
}

const unknownGroups = sql`SELECT identifier_type, min(identifier) AS shown, count(*)::int AS scans
  FROM seen WHERE device_id IS NULL GROUP BY identifier_type, lower(identifier)`

/**
 * How a class's items are ordered: by a two-part key, which a page's cursor holds as the last item
 * shows it, so one cursor serves an open stocktake and, once closed, its stored findings.
 * `rows` is the key on the rows items are built from, `given` the same key from a cursor's values.
 * A finding stores the key as text, which orders alike: the first part decides (asset tags are
 * unique regardless of case; unknown identifiers are grouped so), and the identifier types'
 * names sort as the enum does.
 */
interface ClassOrder {
  cursorShape: readonly CursorPart[]
  cursorOf(item: DiscrepancyItemBody): CursorKey
  rows: [SQL, SQL]
  given(key: CursorKey): [SQL, SQL]
}

/** Devices by asset tag, then id (tags are unique regardless of case; the id only makes the order total). */
const byAssetTag: ClassOrder = {
  cursorShape: ['text', 'uuid'],
  cursorOf: (item) => [(item as DeviceEntryBody).assetTag, (item as DeviceEntryBody).id],
  rows: [sql`d.asset_tag`, sql`d.id`],
  given: ([tag, id]) => [sql`${tag}::text`, sql`${id}::uuid`],
}

/** Unknown identifiers by kind, then the identifier regardless of case (as they are grouped). */
const byIdentifier: ClassOrder = {
  cursorShape: ['text', 'text'],
  cursorOf: (item) => [(item as UnknownIdentifierBody).identifierType, (item as UnknownIdentifierBody).identifier],
  rows: [sql`u.identifier_type`, sql`lower(u.shown)`],
  given: ([type, identifier]) => [sql`${type}::scan_identifier_type`, sql`lower(${identifier}::text)`],
}

const ORDERS: Record<DiscrepancyClass, ClassOrder> = {
  missing: byAssetTag,
  unknown: byIdentifier,
  reportedMissingButSeen: byAssetTag,
  retiredButSeen: byAssetTag,
}

/** Each class: its items as jsonb, built from the rows of `from` that pass `where` (under seenCtes). */
function classes(scope: StocktakeScopeRow): Record<DiscrepancyClass, { item: SQL; from: SQL; where: SQL }> {
  return {
    missing: { item: deviceEntry, from: sql`devices d`, where: missingWhere(scope) },
    unknown: {
      item: sql`jsonb_build_object('identifier', u.shown, 'identifierType', u.identifier_type, 'scans', u.scans)`,
      from: sql`(${unknownGroups}) u`,
      where: sql`true`,
    },
    reportedMissingButSeen: {
      item: sql`${deviceEntry} || jsonb_build_object('incident',
          CASE WHEN i.id IS NULL THEN NULL ELSE jsonb_build_object('id', i.id, 'reference', i.reference) END)`,
      from: sql`devices d LEFT JOIN incidents i ON i.device_id = d.id AND i.status = 'open'`,
      where: sql`d.status IN ('lost', 'stolen') AND ${seenDevice}`,
    },
    retiredButSeen: { item: deviceEntry, from: sql`devices d`, where: sql`d.status = 'retired' AND ${seenDevice}` },
  }
}

const orderBy = ([first, second]: [SQL, SQL]) => sql`${first}, ${second}`
const after = (key: [SQL, SQL], given: [SQL, SQL]) => sql`(${key[0]}, ${key[1]}) > (${given[0]}, ${given[1]})`

/** The whole discrepancies document of an open stocktake as one jsonb value, computed now. */
function discrepancyDocumentSql(scope: StocktakeScopeRow): SQL {
  const lists = Object.entries(classes(scope)).map(([name, { item, from, where }]) => {
    const order = ORDERS[name as DiscrepancyClass]
    return sql`${name}::text, COALESCE((SELECT jsonb_agg(${item} ORDER BY ${orderBy(order.rows)}) FROM ${from} WHERE ${where}), '[]'::jsonb)`
  })
  return sql`WITH ${seenCtes(scope.id)}
  SELECT jsonb_build_object(${sql.join(lists, sql`, `)}) AS document`
}

export async function computeDiscrepancies(db: DbOrTx, scope: StocktakeScopeRow): Promise<Discrepancies> {
  const [row] = await rowsOf<{ document: Discrepancies }>(db, discrepancyDocumentSql(scope))
  return row!.document
}

/** Stores every item of every class as it stands now, with its order key: what closing does. */
export async function freezeDiscrepancies(db: DbOrTx, scope: StocktakeScopeRow): Promise<void> {
  const selects = Object.entries(classes(scope)).map(([name, { item, from, where }]) => {
    const [first, second] = ORDERS[name as DiscrepancyClass].rows
    return sql`SELECT ${scope.id}::uuid, ${name}::text, (${first})::text, (${second})::text, ${item} FROM ${from} WHERE ${where}`
  })
  await db.execute(sql`INSERT INTO stocktake_findings (stocktake_id, class, sort_first, sort_second, item)
    WITH ${seenCtes(scope.id)}
    ${sql.join(selects, sql` UNION ALL `)}`)
}

/** The whole document of a closed stocktake, from its findings. */
export async function frozenDiscrepancies(db: DbOrTx, stocktakeId: string): Promise<Discrepancies> {
  const lists = DISCREPANCY_CLASSES.map(
    (name) => sql`${name}::text, COALESCE((SELECT jsonb_agg(f.item ORDER BY f.sort_first, f.sort_second)
      FROM stocktake_findings f WHERE f.stocktake_id = ${stocktakeId} AND f.class = ${name}), '[]'::jsonb)`,
  )
  const [row] = await rowsOf<{ document: Discrepancies }>(db, sql`SELECT jsonb_build_object(${sql.join(lists, sql`, `)}) AS document`)
  return row!.document
}

/** A page of one class: up to `rows` items (a page and one more, to tell whether another follows), after the cursor's key. */
export interface DiscrepancyPageRequest {
  discrepancyClass: DiscrepancyClass
  after: CursorKey | undefined
  rows: number
}

/** Reads a page's cursor for a class; one that is not ours is a 400 naming it. */
export function decodeDiscrepancyCursor(discrepancyClass: DiscrepancyClass, cursor: string | undefined): CursorKey | undefined {
  const order = ORDERS[discrepancyClass]
  const key = decodeCursor(cursor, order.cursorShape)
  if (key && order === byIdentifier && !(scanIdentifierType.enumValues as readonly unknown[]).includes(key[0])) {
    throw problems.validation([{ path: 'querystring.cursor', message: 'is not a cursor this service issued' }])
  }
  return key
}

export const discrepancyCursorOf = (discrepancyClass: DiscrepancyClass, item: DiscrepancyItemBody): CursorKey =>
  ORDERS[discrepancyClass].cursorOf(item)

/** A page of one class of an open stocktake, computed now. */
export async function liveDiscrepancyItems(db: DbOrTx, scope: StocktakeScopeRow, page: DiscrepancyPageRequest): Promise<DiscrepancyItemBody[]> {
  const { item, from, where } = classes(scope)[page.discrepancyClass]
  const order = ORDERS[page.discrepancyClass]
  const rows = await rowsOf<{ item: DiscrepancyItemBody }>(
    db,
    sql`WITH ${seenCtes(scope.id)}
    SELECT ${item} AS item FROM ${from}
    WHERE ${where} ${page.after ? sql`AND ${after(order.rows, order.given(page.after))}` : sql``}
    ORDER BY ${orderBy(order.rows)} LIMIT ${page.rows}`,
  )
  return rows.map((row) => row.item)
}

/** A page of one class of a closed stocktake: a range of its findings' primary key. */
export function frozenPageSql(stocktakeId: string, page: DiscrepancyPageRequest): SQL {
  const given = page.after ? ORDERS[page.discrepancyClass].given(page.after) : undefined
  return sql`SELECT f.item FROM stocktake_findings f
    WHERE f.stocktake_id = ${stocktakeId} AND f.class = ${page.discrepancyClass}
      ${given ? sql`AND (f.sort_first, f.sort_second) > ((${given[0]})::text, (${given[1]})::text)` : sql``}
    ORDER BY f.sort_first, f.sort_second LIMIT ${page.rows}`
}

export async function frozenDiscrepancyItems(db: DbOrTx, stocktakeId: string, page: DiscrepancyPageRequest): Promise<DiscrepancyItemBody[]> {
  const rows = await rowsOf<{ item: DiscrepancyItemBody }>(db, frozenPageSql(stocktakeId, page))
  return rows.map((row) => row.item)
}

/** The counts of an open stocktake: the same classes, counted rather than listed (a device has at most one open incident). */
export async function liveCounts(db: DbOrTx, scope: StocktakeScopeRow): Promise<Counts> {
  const counts = Object.entries(classes(scope)).map(
    ([name, { from, where }]) => sql`(SELECT count(*) FROM ${from} WHERE ${where})::int AS ${sql.identifier(name)}`,
  )
  const [row] = await rowsOf<Counts>(
    db,
    sql`WITH ${seenCtes(scope.id)}
    SELECT (SELECT count(*) FROM seen)::int AS scans, ${sql.join(counts, sql`, `)}`,
  )
  return row!
}

/** The counts of a closed stocktake, from its findings (and its scans, which no longer change). */
export async function frozenCounts(db: DbOrTx, stocktakeId: string): Promise<Counts> {
  const counts = DISCREPANCY_CLASSES.map(
    (name) => sql`(SELECT count(*) FROM stocktake_findings f WHERE f.stocktake_id = ${stocktakeId} AND f.class = ${name})::int AS ${sql.identifier(name)}`,
  )
  const [row] = await rowsOf<Counts>(
    db,
    sql`SELECT (SELECT count(*) FROM stocktake_scans WHERE stocktake_id = ${stocktakeId})::int AS scans, ${sql.join(counts, sql`, `)}`,
  )
  return row!
}
