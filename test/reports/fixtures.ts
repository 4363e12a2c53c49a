/**
 * Incidents inserted straight into the database (no routes, no audit), so the reports can be
 * tested with exactly the rows they need while the incident routes are built elsewhere. Each
 * incident gets its own device unless one is given (a device has at most one open incident).
 */
import type { Database } from '../../src/db/client.js'
import { newId } from '../../src/db/ids.js'
import { incidents } from '../../src/db/schema.js'
import { insertDevice } from '../helpers/fixtures.js'

type IncidentRow = typeof incidents.$inferInsert

export interface IncidentFixture {
  reportedAt: string
  occurredAt?: string | null
  status?: IncidentRow['status']
  kind?: IncidentRow['kind']
  locationCategory?: IncidentRow['locationCategory']
  personalDataAtRisk?: boolean
  remoteWipe?: IncidentRow['remoteWipe']
  deviceKind?: IncidentRow['deviceKind']
  deviceEncrypted?: boolean
  deviceMdmEnrolled?: boolean
  deviceClassification?: IncidentRow['deviceClassification']
  /** Defaults to a day after reportedAt when the status is recovered. */
  recoveredAt?: string
  custodianId?: string | null
  deviceId?: string
  reference?: string
  icoReportedAt?: string | null
  circumstances?: string
  locationDescription?: string | null
  policeReference?: string | null
  closeReason?: string | null
  recoveryNotes?: string | null
}

let counter = 0
const DAY_MS = 24 * 60 * 60 * 1000

export async function insertIncident(database: Database, fixture: IncidentFixture) {
  const status = fixture.status ?? 'open'
  const reportedAt = new Date(fixture.reportedAt)
  const personal = fixture.personalDataAtRisk ?? false
  const deviceId = fixture.deviceId ?? (await insertDevice(database, { status: fixture.kind ?? 'lost' })).id
  const recoveredAt = status === 'recovered' ? new Date(fixture.recoveredAt ?? reportedAt.getTime() + DAY_MS) : null
  const closedAt = status === 'closed' ? new Date(reportedAt.getTime() + 2 * DAY_MS) : null
  const number = String(++counter).padStart(4, '0')
  const [row] = await database.db
    .insert(incidents)
    .values({
      id: newId(),
      reference: fixture.reference ?? `INC-${reportedAt.getUTCFullYear()}-${number}`,
      status,
      deviceId,
      kind: fixture.kind ?? 'lost',
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
      custodianId: fixture.custodianId ?? null,
      deviceKind: fixture.deviceKind ?? 'laptop',
      deviceEncrypted: fixture.deviceEncrypted ?? true,
      deviceMdmEnrolled: fixture.deviceMdmEnrolled ?? true,
      deviceClassification: fixture.deviceClassification ?? 'official',
      createdBy: 'fixture',
    })
    .returning()
  return row!
}
