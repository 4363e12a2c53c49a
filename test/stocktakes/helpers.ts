/** Test data for stocktakes: a quick way to post scans (incidents come from insertIncident in test/helpers/fixtures.ts). */
import type { App } from '../../src/app.js'

export interface ScanIn {
  assetTag?: string
  serialNumber?: string
  seenAt: string
  location?: string
}

export function postScans(app: App, headers: Record<string, string>, stocktakeId: string, scans: ScanIn[]) {
  return app.inject({ method: 'POST', url: `/v1/stocktakes/${stocktakeId}/scans`, headers, payload: { scans } })
}
