/**
 * Loads the demo data set through the API itself (in-process, with `app.inject`), so every row
 * has its audit event and passes the same rules as a user's request would. Loads once: a register
 * that already has custodians is left as it is.
 */
import type { App } from '../app.js'
import { IMPORT_COLUMNS } from '../modules/devices/import/parse.js'
import { type DemoDataSet, type DemoDevice, demoDataSet, type DemoOptions } from './dataset.js'

export interface DemoLoadResult {
  loaded: boolean
  custodians: number
  devices: number
  incidents: number
}

function csvOf(devices: DemoDevice[]): string {
  const lines = devices.map((d) =>
    [d.assetTag, d.kind, d.make, d.model, d.serialNumber, d.imei ?? '', d.encrypted, d.mdmEnrolled, d.classification, d.purchasedOn, d.costPence].join(','),
  )
  return `${IMPORT_COLUMNS.join(',')}\n${lines.join('\n')}\n`
}

export async function loadDemoData(app: App, token: string, options: DemoOptions = {}): Promise<DemoLoadResult> {
  const authorization = `Bearer ${token}`
  async function call<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const response = await app.inject({
      method,
      url,
      headers: { authorization, ...headers },
      ...(payload === undefined ? {} : typeof payload === 'string' ? { payload, headers: { authorization, 'content-type': 'text/csv', ...headers } } : { payload: payload as object }),
    })
    if (response.statusCode >= 300) throw new Error(`demo load: ${method} ${url} answered ${response.statusCode}: ${response.body.slice(0, 500)}`)
    return response.json() as T
  }

  const existing = await call<{ items: unknown[] }>('GET', '/v1/custodians?limit=1')
  if (existing.items.length > 0) return { loaded: false, custodians: 0, devices: 0, incidents: 0 }

  const data: DemoDataSet = demoDataSet(options)
  const custodianIds = new Map<string, string>()
  for (const custodian of data.custodians) {
    const { key: _key, leftOn: _leftOn, ...body } = custodian
    const created = await call<{ id: string }>('POST', '/v1/custodians', body)
    custodianIds.set(custodian.key, created.id)
  }

  await call('POST', '/v1/devices/import', csvOf(data.devices))
  const deviceIds = new Map<string, string>()
  let cursor: string | null = null
  do {
    const page: { items: { id: string; assetTag: string }[]; nextCursor: string | null } = await call(
      'GET',
      `/v1/devices?limit=200${cursor ? `&cursor=${cursor}` : ''}`,
    )
    for (const item of page.items) deviceIds.set(item.assetTag, item.id)
    cursor = page.nextCursor
  } while (cursor)
  const deviceId = (key: string) => {
    const device = data.devices.find((d) => d.key === key)
    const id = device && deviceIds.get(device.assetTag)
    if (!id) throw new Error(`demo load: device ${key} was not imported`)
    return id
  }

  for (const device of data.devices) {
    if (!device.holder) continue
    await call('POST', `/v1/devices/${deviceIds.get(device.assetTag)}/assignment`, {
      custodianId: custodianIds.get(device.holder),
      assignedAt: device.assignedAt,
    })
  }
  // Members who lost their seats: marked as left, their kit still out (the unreturned report).
  for (const custodian of data.custodians.filter((c) => c.leftOn)) {
    await call('PATCH', `/v1/custodians/${custodianIds.get(custodian.key)}`, { leftOn: custodian.leftOn }, { 'if-match': '"1"' })
  }

  for (const incident of data.incidents) {
    const { device, icoReportedAt, notes, recovery, close, ...report } = incident
    const created = await call<{ id: string; version: number }>('POST', '/v1/incidents', { deviceId: deviceId(device), ...report })
    if (icoReportedAt) {
      await call('PATCH', `/v1/incidents/${created.id}`, { icoReportedAt }, { 'if-match': `"${created.version}"` })
    }
    for (const text of notes ?? []) await call('POST', `/v1/incidents/${created.id}/notes`, { text })
    if (recovery) await call('POST', `/v1/incidents/${created.id}/recovery`, recovery)
    if (close) await call('POST', `/v1/incidents/${created.id}/close`, { reason: close })
  }

  return { loaded: true, custodians: data.custodians.length, devices: data.devices.length, incidents: data.incidents.length }
}
