/**
 * Rows inserted straight into the database, for tests that need a custodian, a device or an
 * incident to act on without going through (and testing) the routes that create them. No audit
 * events are written.
 */
import { eq } from 'drizzle-orm'
import type { Database } from '../../src/db/client.js'
import { newId } from '../../src/db/ids.js'
import { custodians, devices, incidents } from '../../src/db/schema.js'

let serial = 0
const next = () => `${process.pid}-${++serial}`

export async function insertCustodian(database: Database, overrides: Partial<typeof custodians.$inferInsert> = {}) {
  const [row] = await database.db
    .insert(custodians)
    .values({ id: newId(), kind: 'mp', house: 'commons', name: `Member ${next()}`, createdBy: 'fixture', ...overrides })
    .returning()
  return row!
}

export async function insertDevice(database: Database, overrides: Partial<typeof devices.$inferInsert> = {}) {
  const n = next()
  const [row] = await database.db
    .insert(devices)
    .values({
      id: newId(),
      assetTag: `PA-T${n.replace('-', '')}`,
      kind: 'laptop',
      make: 'Dell',
      model: 'Latitude 7440',
      serialNumber: `SN-${n}`,
      encrypted: true,
      mdmEnrolled: true,
      classification: 'official',
      createdBy: 'fixture',
      ...overrides,
    })
    .returning()
  return row!
}

type IncidentRow = typeof incidents.$inferInsert

export interface IncidentFixture {
  /** Defaults to now. */
  reportedAt?: string
  occurredAt?: string | null
  status?: IncidentRow['status']
  kind?: IncidentRow['kind']
  locationCategory?: IncidentRow['locationCategory']
  locationDescription?: string | null
  circumstances?: string
  policeReference?: string | null
  personalDataAtRisk?: boolean
  remoteWipe?: IncidentRow['remoteWipe']
  icoReportedAt?: string | null
  /** Defaults to a day after reportedAt when the status is recovered. */
  recoveredAt?: string
  recoveryNotes?: string | null
  closeReason?: string | null
  /** A new device (of the snapshot's kind, encryption, MDM and classification) unless given. */
  deviceId?: string
  /** The snapshot: taken from the device unless given. */
  custodianId?: string | null
  deviceKind?: IncidentRow['deviceKind']
  deviceEncrypted?: boolean
  deviceMdmEnrolled?: boolean
  deviceClassification?: IncidentRow['deviceClassification']
  /** Defaults to the next number of the reported year's counter, as a report takes it. */
  reference?: string
  createdBy?: string
}

const DAY_MS = 24 * 60 * 60 * 1000

/**
 * The one way a test makes an incident without reporting it (history: past years, recovered, closed), written as
 * reportIncident writes a report; test/incidents/incident-fixture.test.ts holds the two to the same rows.
 */
export async function insertIncident(database: Database, fixture: IncidentFixture = {}) {
  const kind = fixture.kind ?? 'lost'
  const status = fixture.status ?? 'open'
  const reportedAt = fixture.reportedAt ? new Date(fixture.reportedAt) : new Date()
  const device = fixture.deviceId
    ? (await database.db.select().from(devices).where(eq(devices.id, fixture.deviceId)))[0]!
    : await insertDevice(database, {
        kind: fixture.deviceKind ?? 'laptop',
        encrypted: fixture.deviceEncrypted ?? true,
        mdmEnrolled: fixture.deviceMdmEnrolled ?? true,
        classification: fixture.deviceClassification ?? 'official',
      })
  // As a report leaves its device: lost or stolen, no custodian, the open assignment ended.
  await database.query(
    `WITH ended AS (
       UPDATE assignments SET returned_at = greatest(assigned_at, $3), ended_by = 'incident' WHERE device_id = $1 AND returned_at IS NULL)
     UPDATE devices SET status = $2, current_custodian_id = NULL, updated_at = now(), version = version + 1 WHERE id = $1`,
    [device.id, kind, reportedAt],
  )
  // The reference from the year's counter (the UK year is the UTC one: New Year falls in GMT).
  const year = reportedAt.getUTCFullYear()
  const [counter] = fixture.reference
    ? []
    : await database.query<{ n: number }>(
        `INSERT INTO incident_counters AS c (year, last_number) VALUES ($1, 1)
         ON CONFLICT (year) DO UPDATE SET last_number = c.last_number + 1 RETURNING last_number AS n`,
        [year],
      )
  const personal = fixture.personalDataAtRisk ?? false
  const recoveredAt = status === 'recovered' ? new Date(fixture.recoveredAt ?? reportedAt.getTime() + DAY_MS) : null
  const closedAt = status === 'closed' ? new Date(reportedAt.getTime() + 2 * DAY_MS) : null
  const [row] = await database.db
    .insert(incidents)
    .values({
      id: newId(),
      reference: fixture.reference ?? `INC-${year}-${String(counter!.n).padStart(4, '0')}`,
      status,
      deviceId: device.id,
      kind,
      occurredAt: fixture.occurredAt ? new Date(fixture.occurredAt) : null,
      reportedAt,
      locationCategory: fixture.locationCategory ?? 'transit',
      locationDescription: fixture.locationDescription ?? null,
      circumstances: fixture.circumstances ?? 'Left on a train.',
      policeReference: fixture.policeReference ?? null,
      personalDataAtRisk: personal,
      remoteWipe: fixture.remoteWipe ?? 'not_requested',
      icoDeadline: personal ? new Date(reportedAt.getTime() + 72 * 60 * 60 * 1000) : null,
      icoReportedAt: fixture.icoReportedAt ? new Date(fixture.icoReportedAt) : null,
      recoveredAt,
      recoveryCondition: recoveredAt ? 'intact' : null,
      recoveryNotes: fixture.recoveryNotes ?? null,
      closedAt,
      closeReason: closedAt ? (fixture.closeReason ?? 'Written off.') : null,
      custodianId: fixture.custodianId === undefined ? device.currentCustodianId : fixture.custodianId,
      deviceKind: fixture.deviceKind ?? device.kind,
      deviceEncrypted: fixture.deviceEncrypted ?? device.encrypted,
      deviceMdmEnrolled: fixture.deviceMdmEnrolled ?? device.mdmEnrolled,
      deviceClassification: fixture.deviceClassification ?? device.classification,
      createdBy: fixture.createdBy ?? 'fixture',
    })
    .returning()
  return row!
}
