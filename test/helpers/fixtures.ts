/**
 * Rows inserted straight into the database, for tests that need a custodian or a device to act on
 * without going through (and testing) the routes that create them. No audit events are written.
 */
import type { Database } from '../../src/db/client.js'
import { newId } from '../../src/db/ids.js'
import { custodians, devices } from '../../src/db/schema.js'

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
