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
 */
import { type SQL, sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../db/client.js'
import type { Counts, Discrepancies } from './schemas.js'

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
 * Every scan of the stocktake with the device it names (`device_id` null: unknown), then the seen
 * devices themselves (one row each, with their status). The scans matched when stored and the few
 * that were not are read apart: together, the planner expected every scan to need matching again
 * and hashed the whole devices table twice to do it (1.5 s of 2 at a million devices).
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
  ),
  seen_devices AS MATERIALIZED (
    SELECT d.* FROM devices d WHERE d.id IN (SELECT device_id FROM seen WHERE device_id IS NOT NULL)
  )`
}

/** Devices expected in the stocktake and not seen. Scope conditions are left out, not made always-true, for a plain plan. */
function missingWhere(scope: StocktakeScopeRow): SQL {
  return sql`d.status IN ('in_stock', 'assigned')
    ${scope.scopeCustodianId ? sql`AND d.current_custodian_id = ${scope.scopeCustodianId}` : sql``}
    ${scope.scopeKind ? sql`AND d.kind = ${scope.scopeKind}::device_kind` : sql``}
    AND NOT EXISTS (SELECT 1 FROM seen_devices sd WHERE sd.id = d.id)`
}

const unknownGroups = sql`SELECT identifier_type, min(identifier) AS shown, count(*)::int AS scans
  FROM seen WHERE device_id IS NULL GROUP BY identifier_type, lower(identifier)`

/** The whole discrepancies document as one jsonb value (what the API returns and what closing freezes). */
export function discrepancyDocumentSql(scope: StocktakeScopeRow): SQL {
  return sql`WITH ${seenCtes(scope.id)}
  SELECT jsonb_build_object(
    'missing', COALESCE((
      SELECT jsonb_agg(${deviceEntry} ORDER BY d.asset_tag, d.id) FROM devices d WHERE ${missingWhere(scope)}
    ), '[]'::jsonb),
    'unknown', COALESCE((
      SELECT jsonb_agg(jsonb_build_object('identifier', u.shown, 'identifierType', u.identifier_type, 'scans', u.scans)
        ORDER BY u.identifier_type, lower(u.shown))
      FROM (${unknownGroups}) u
    ), '[]'::jsonb),
    'reportedMissingButSeen', COALESCE((
      SELECT jsonb_agg(${deviceEntry} || jsonb_build_object('incident',
          CASE WHEN i.id IS NULL THEN NULL ELSE jsonb_build_object('id', i.id, 'reference', i.reference) END)
        ORDER BY d.asset_tag, d.id)
      FROM seen_devices d
      LEFT JOIN incidents i ON i.device_id = d.id AND i.status = 'open'
      WHERE d.status IN ('lost', 'stolen')
    ), '[]'::jsonb),
    'retiredButSeen', COALESCE((
      SELECT jsonb_agg(${deviceEntry} ORDER BY d.asset_tag, d.id)
      FROM seen_devices d
      WHERE d.status = 'retired'
    ), '[]'::jsonb)
  ) AS document`
}

export async function computeDiscrepancies(db: DbOrTx, scope: StocktakeScopeRow): Promise<Discrepancies> {
  const [row] = await rowsOf<{ document: Discrepancies }>(db, discrepancyDocumentSql(scope))
  return row!.document
}

/** The counts of an open stocktake: the same classes, counted rather than listed. */
export async function liveCounts(db: DbOrTx, scope: StocktakeScopeRow): Promise<Counts> {
  const [row] = await rowsOf<Counts>(
    db,
    sql`WITH ${seenCtes(scope.id)}
    SELECT
      (SELECT count(*) FROM seen)::int AS scans,
      (SELECT count(*) FROM devices d WHERE ${missingWhere(scope)})::int AS missing,
      (SELECT count(*) FROM (${unknownGroups}) u)::int AS unknown,
      (SELECT count(*) FROM seen_devices d WHERE d.status IN ('lost', 'stolen'))::int AS "reportedMissingButSeen",
      (SELECT count(*) FROM seen_devices d WHERE d.status = 'retired')::int AS "retiredButSeen"`,
  )
  return row!
}

/** The counts of a closed stocktake, read from its frozen document (and its scans, which no longer change). */
export async function frozenCounts(db: DbOrTx, stocktakeId: string): Promise<Counts> {
  const [row] = await rowsOf<Counts>(
    db,
    sql`SELECT
      (SELECT count(*) FROM stocktake_scans WHERE stocktake_id = st.id)::int AS scans,
      jsonb_array_length(st.frozen_discrepancies -> 'missing') AS missing,
      jsonb_array_length(st.frozen_discrepancies -> 'unknown') AS unknown,
      jsonb_array_length(st.frozen_discrepancies -> 'reportedMissingButSeen') AS "reportedMissingButSeen",
      jsonb_array_length(st.frozen_discrepancies -> 'retiredButSeen') AS "retiredButSeen"
    FROM stocktakes st WHERE st.id = ${stocktakeId}`,
  )
  return row!
}
