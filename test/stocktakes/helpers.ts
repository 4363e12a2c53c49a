/**
 * Test data for stocktakes: an open incident inserted directly (a lost or stolen device needs one),
 * and a quick way to post scans.
 */
import type { App } from '../../src/app.js'
import type { Database } from '../../src/db/client.js'
import { newId } from '../../src/db/ids.js'

let incidentNumber = 0

/** Marks the device lost (or stolen) and inserts its open incident; returns {id, reference}. */
export async function insertOpenIncident(database: Database, deviceId: string, kind: 'lost' | 'stolen' = 'lost') {
  const id = newId()
  const reference = `INC-2025-${String(++incidentNumber).padStart(4, '0')}`
  await database.query(`UPDATE devices SET status = $2, current_custodian_id = NULL WHERE id = $1`, [deviceId, kind])
  await database.query(
    `INSERT INTO incidents (id, reference, status, device_id, kind, reported_at, location_category, circumstances,
       personal_data_at_risk, device_kind, device_encrypted, device_mdm_enrolled, device_classification, created_by)
     SELECT $1, $2, 'open', d.id, $3, now(), 'transit', 'Left on a train', false, d.kind, d.encrypted, d.mdm_enrolled,
       d.classification, 'fixture'
     FROM devices d WHERE d.id = $4`,
    [id, reference, kind, deviceId],
  )
  return { id, reference }
}

export interface ScanIn {
  assetTag?: string
  serialNumber?: string
  seenAt: string
  location?: string
}

export function postScans(app: App, headers: Record<string, string>, stocktakeId: string, scans: ScanIn[]) {
  return app.inject({ method: 'POST', url: `/v1/stocktakes/${stocktakeId}/scans`, headers, payload: { scans } })
}
