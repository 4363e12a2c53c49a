/**
 * A device's timeline, read from the two places that already record what happened to it — no
 * event table of its own:
 *
 * - the audit trail: events of the device itself, and of its incidents (`incidents.device_id`);
 * - stocktake scans that matched the device ("seen in stocktake X").
 *
 * Newest first, keyset paginated over (at, key). Summaries are built here from structured
 * columns only, never from free text (circumstances, notes, reasons), so the timeline is safe for
 * every role that may read devices: a note shows as "note added", not what it says.
 */
import { sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../db/client.js'
import { decodeCursor, toPage } from '../../http/pagination.js'
import { problems } from '../../plugins/problems.js'
import type { TimelineItem } from './schemas.js'
import { findDevice } from './service.js'

interface TimelineRow {
  /** Full-precision UTC text, used for the cursor. */
  at: string
  key: string
  action: string
  actor: string
  entity_type: string
  entity_id: string
  reference: string | null
  incident_kind: string | null
  custodian_id: string | null
  custodian_name: string | null
  changed: string | null
  stocktake_name: string | null
}

const TYPES: Record<string, TimelineItem['type']> = {
  'device.created': 'created',
  'device.updated': 'updated',
  'device.assigned': 'assigned',
  'device.returned': 'returned',
  'device.reported_lost': 'reported_lost',
  'device.reported_stolen': 'reported_stolen',
  'device.recovered': 'recovered',
  'device.retired': 'retired',
  'incident.reported': 'incident_reported',
  'incident.updated': 'incident_updated',
  'incident.note_added': 'note_added',
  'incident.recovered': 'recovered',
  'incident.closed': 'closed',
  'stocktake.device_seen': 'seen_in_stocktake',
}

const ENTITY_TYPES = new Set<TimelineItem['entityType']>(['device', 'incident', 'stocktake', 'assignment', 'custodian'])

function summarise(row: TimelineRow): string {
  const incident = row.reference ? `Incident ${row.reference}` : 'Incident'
  const who = row.custodian_name ?? 'a custodian'
  switch (row.action) {
    case 'device.created':
      return 'Added to the register'
    case 'device.updated':
      return row.changed ? `Details changed: ${row.changed.split(',').join(', ')}` : 'Details changed'
    case 'device.assigned':
      return `Assigned to ${who}`
    case 'device.returned':
      return `Returned by ${who}`
    case 'device.reported_lost':
      return 'Reported lost'
    case 'device.reported_stolen':
      return 'Reported stolen'
    case 'device.recovered':
      return 'Recovered'
    case 'device.retired':
      return 'Retired'
    case 'incident.reported':
      return `${incident} reported${row.incident_kind ? ` (${row.incident_kind})` : ''}`
    case 'incident.updated':
      return `${incident} updated`
    case 'incident.note_added':
      return `${incident}: note added`
    case 'incident.recovered':
      return `${incident}: device recovered`
    case 'incident.closed':
      return `${incident} closed`
    case 'stocktake.device_seen':
      return `Seen in stocktake ${row.stocktake_name ?? ''}`.trim()
    default:
      return row.action
  }
}

function toItem(row: TimelineRow): TimelineItem {
  const entityType = ENTITY_TYPES.has(row.entity_type as TimelineItem['entityType']) ? (row.entity_type as TimelineItem['entityType']) : 'device'
  return {
    id: row.key.startsWith('audit:') ? `audit:${Number(row.key.slice(6))}` : row.key,
    at: new Date(row.at).toISOString(),
    type: TYPES[row.action] ?? 'other',
    action: row.action,
    actor: row.actor,
    summary: summarise(row),
    entityType,
    entityId: row.entity_id,
    custodianId: row.custodian_id,
  }
}

export async function deviceTimeline(db: DbOrTx, deviceId: string, page: { limit: number; cursor?: string | undefined }) {
  if (!(await findDevice(db, deviceId))) throw problems.notFound(`There is no device ${deviceId}.`)
  const cursor = decodeCursor(page.cursor, ['time', 'text'])
  const after = cursor ? sql`WHERE (e.at, e.key) < (${String(cursor[0])}::timestamptz, ${String(cursor[1])})` : sql``
  // Only structured columns leave the database; `before`/`after` are read for ids and field names.
  const query = sql`
    WITH events AS (
      SELECT ae.at,
             'audit:' || lpad(ae.id::text, 19, '0') AS key,
             ae.action, ae.actor, ae.entity_type, ae.entity_id::text AS entity_id,
             i.reference, i.kind::text AS incident_kind,
             CASE
               WHEN ae.action = 'device.assigned' THEN ae.after ->> 'currentCustodianId'
               WHEN ae.action = 'device.returned' THEN ae.before ->> 'currentCustodianId'
               WHEN ae.entity_type = 'incident' THEN i.custodian_id::text
             END AS custodian_id,
             CASE WHEN ae.action = 'device.updated' THEN (
               SELECT string_agg(f.key, ',' ORDER BY f.key)
               FROM jsonb_each(ae.after) AS f
               WHERE f.key NOT IN ('version', 'updatedAt') AND (ae.before -> f.key) IS DISTINCT FROM f.value
             ) END AS changed,
             NULL::text AS stocktake_name
      FROM audit_events ae
      LEFT JOIN incidents i ON ae.entity_type = 'incident' AND i.id = ae.entity_id
      WHERE ae.entity_id = ${deviceId}::uuid
         OR ae.entity_id IN (SELECT id FROM incidents WHERE device_id = ${deviceId}::uuid)
      UNION ALL
      SELECT ss.seen_at, 'scan:' || ss.id::text, 'stocktake.device_seen', ss.created_by, 'stocktake', s.id::text,
             NULL, NULL, NULL, NULL, s.name
      FROM stocktake_scans ss
      JOIN stocktakes s ON s.id = ss.stocktake_id
      WHERE ss.device_id = ${deviceId}::uuid
    )
    SELECT to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
           e.key, e.action, e.actor, e.entity_type, e.entity_id, e.reference, e.incident_kind,
           e.custodian_id, c.name AS custodian_name, e.changed, e.stocktake_name
    FROM events e
    LEFT JOIN custodians c ON c.id::text = e.custodian_id
    ${after}
    ORDER BY e.at DESC, e.key DESC
    LIMIT ${page.limit + 1}`
  return toPage(await rowsOf<TimelineRow>(db, query), page.limit, (row) => [row.at, row.key], toItem)
}
