/**
 * Tests that need history (past years, recovered and closed incidents) make their incidents with
 * insertIncident (test/helpers/fixtures.ts), which writes rows straight into the database. This
 * holds it to the module: for the same report it must write what POST /v1/incidents writes.
 */
import t from 'tap'
import type { Database } from '../../src/db/client.js'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice, insertIncident } from '../helpers/fixtures.js'

interface Report {
  kind: 'lost' | 'stolen'
  reportedAt: string
  occurredAt?: string
  location: { category: 'abroad' | 'transit'; description?: string }
  circumstances: string
  policeReference?: string
  personalDataAtRisk: boolean
  remoteWipe?: 'requested'
}

const cases: { name: string; device: Parameters<typeof insertDevice>[1]; held: boolean; report: Report }[] = [
  {
    name: 'a held device unlike the fixture defaults, every field given',
    device: { kind: 'phone', encrypted: false, mdmEnrolled: false, classification: 'secret' },
    held: true,
    report: {
      kind: 'stolen', reportedAt: '2024-12-31T23:30:00.000Z', occurredAt: '2024-12-31T20:00:00.000Z',
      location: { category: 'abroad', description: 'A hotel lobby' }, circumstances: 'Taken from a bag.',
      policeReference: 'MPS-1', personalDataAtRisk: true, remoteWipe: 'requested',
    },
  },
  {
    name: 'a device in stock, only what a report must give',
    device: { kind: 'tablet', classification: 'official_sensitive' },
    held: false,
    report: { kind: 'lost', reportedAt: '2024-06-01T09:00:00.000Z', location: { category: 'transit' }, circumstances: 'Left on a bus.', personalDataAtRisk: false },
  },
]

/** The rows a report leaves for a device, without their ids, the times they were written, or the reference's number. */
async function writtenFor(database: Database, deviceId: string) {
  const [incident] = await database.query<Record<string, unknown>>('SELECT * FROM incidents WHERE device_id = $1', [deviceId])
  if (!incident) return null
  const [device] = await database.query<Record<string, unknown>>('SELECT * FROM devices WHERE id = $1', [deviceId])
  const { id: _id, device_id: _deviceId, created_at: _created, updated_at: _updated, reference, ...row } = incident
  const { id: _device, asset_tag: _tag, serial_number: _serial, created_at: _dCreated, updated_at: _dUpdated, ...deviceRow } = device!
  return {
    incident: { ...row, reference: String(reference).replace(/\d+$/, 'N') },
    device: deviceRow,
    assignments: await database.query(
      'SELECT custodian_id, ended_by, returned_at = greatest(assigned_at, $2) AS ended_when_reported FROM assignments WHERE device_id = $1',
      [deviceId, incident.reported_at],
    ),
  }
}

for (const { name, device, held, report } of cases) {
  t.test(`insertIncident writes what POST /v1/incidents writes: ${name}`, async (t) => {
    const { app, auth, database } = await buildTestApp(t)
    const holder = await insertCustodian(database)
    const [reported, inserted] = [await insertDevice(database, device), await insertDevice(database, device)]
    for (const twin of held ? [reported!, inserted!] : []) {
      const assigned = await app.inject({ method: 'POST', url: `/v1/devices/${twin.id}/assignment`, headers: await auth('asset_manager'), payload: { custodianId: holder.id } })
      t.equal(assigned.statusCode, 201)
    }

    const response = await app.inject({ method: 'POST', url: '/v1/incidents', headers: await auth('security', 'sec'), payload: { deviceId: reported!.id, ...report } })
    t.equal(response.statusCode, 201, response.body)
    await insertIncident(database, {
      deviceId: inserted!.id, kind: report.kind, reportedAt: report.reportedAt, occurredAt: report.occurredAt,
      locationCategory: report.location.category, locationDescription: report.location.description, circumstances: report.circumstances,
      policeReference: report.policeReference, personalDataAtRisk: report.personalDataAtRisk, remoteWipe: report.remoteWipe, createdBy: 'sec',
    })

    const viaModule = await writtenFor(database, reported!.id)
    t.ok(viaModule, 'the module wrote an incident')
    t.same(await writtenFor(database, inserted!.id), viaModule, 'the same incident, device and assignment rows')
    t.same(
      await database.query('SELECT year, last_number FROM incident_counters'),
      [{ year: new Date(report.reportedAt).getUTCFullYear(), last_number: 2 }],
      "both took their number from the year's counter",
    )
  })
}
