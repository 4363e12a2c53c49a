/**
 * A database from before migration 0006, whose events held personal values in place, migrates and
 * still verifies: the values are separated, the chain re-linked from its genesis, and the upgrade
 * recorded. A trail that did not verify before is not upgraded (that would launder the change).
 */
import { sql } from 'drizzle-orm'
import t from 'tap'
import type { Database } from '../../src/db/client.js'
import { runMigrations } from '../../src/db/migrate.js'
import { linkPendingEvents } from '../../src/modules/audit/trail.js'
import { buildTestApp } from '../helpers/app.js'
import { createDatabaseMigratedBefore } from '../helpers/database.js'

const custodianId = '0190d3c0-0000-7000-8000-0000000000c1'
const incidentId = '0190d3c0-0000-7000-8000-0000000000e1'

/** Events as the service wrote them before 0006: personal values in before/after, linked by the old code. */
async function oldTrail(database: Database) {
  const events: [string, string, string, unknown, unknown][] = [
    ['custodian.created', 'custodian', custodianId, null, { id: custodianId, name: 'Ada Oldname', email: 'ada@example.org', constituency: 'Bath' }],
    ['custodian.updated', 'custodian', custodianId, { name: 'Ada Oldname' }, { name: 'Ada Newname' }],
    ['incident.reported', 'incident', incidentId, null, { id: incidentId, circumstances: 'Left on the 07:12 to Bristol', location: { category: 'transit', description: 'Coach C' }, recovery: null, closeReason: null }],
    ['device.created', 'device', '0190d3c0-0000-7000-8000-0000000000d1', null, { assetTag: 'PA-000001' }],
  ]
  for (const [n, [action, entityType, entityId, before, after]] of events.entries()) {
    await database.query(
      `WITH e AS (INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after)
                  VALUES ($1, 'alice', $2, $3, $4, $5, $6) RETURNING id)
       INSERT INTO audit_unlinked (event_id) SELECT id FROM e`,
      [new Date(Date.UTC(2025, 0, 1 + n)).toISOString(), action, entityType, entityId, JSON.stringify(before), JSON.stringify(after)],
    )
  }
  await linkPendingEvents(database.db)
}

t.test('an existing trail migrates, verifies, and reads as before', async (t) => {
  const database = await createDatabaseMigratedBefore(t, '0006')
  await oldTrail(database)
  const [oldHead] = await database.query<{ hash: string }>('SELECT hash FROM audit_chain ORDER BY seq DESC LIMIT 1')

  await runMigrations(database)
  await runMigrations(database) // once only

  const stored = await database.query<{ action: string; after: Record<string, unknown> | null }>('SELECT action, after FROM audit_events ORDER BY id')
  t.match(stored[0]!.after, { name: { $digest: /^[0-9a-f]{64}$/ }, email: { $digest: /^[0-9a-f]{64}$/ }, constituency: { $digest: /^[0-9a-f]{64}$/ } }, 'values replaced by digests in the stored event')
  t.match(stored[2]!.after, { circumstances: { $digest: /^[0-9a-f]{64}$/ }, location: { category: 'transit', description: { $digest: /^[0-9a-f]{64}$/ } } })
  t.same(stored[3]!.after, { assetTag: 'PA-000001' }, 'a device event is unchanged')
  const dump = JSON.stringify(await database.query('SELECT before, after FROM audit_events'))
  for (const value of ['Ada Oldname', 'ada@example.org', 'Bath', 'Bristol', 'Coach C']) t.notOk(dump.includes(value), `${value} is out of the hashed content`)
  t.equal((await database.query('SELECT 1 FROM audit_personal_values')).length, 7, 'seven values kept beside')

  const { app, auth } = await buildTestApp(t, { database })
  const headers = await auth('security')
  const verify = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers })
  t.match(verify.json(), { ok: true, firstBadId: null }, 'the upgraded chain verifies')
  t.ok(verify.json().checked >= 5, 'the four old events and the upgrade')

  const listed = (await app.inject({ method: 'GET', url: '/v1/audit-events?limit=100', headers })).json().items as { action: string; after: Record<string, unknown> }[]
  const upgrade = listed.find((event) => event.action === 'audit.rehashed')
  t.match(upgrade, { entityType: 'audit', actor: 'system', after: { events: 4, previousHeadHash: oldHead!.hash } }, 'the upgrade is an event naming the old head')
  t.match(listed.find((event) => event.action === 'custodian.created')?.after, { name: 'Ada Oldname', email: 'ada@example.org', constituency: 'Bath' }, 'readers see the values')
  t.match(listed.find((event) => event.action === 'incident.reported')?.after, { circumstances: 'Left on the 07:12 to Bristol', location: { description: 'Coach C' } })
})

t.test('a trail that does not verify is not upgraded', async (t) => {
  const database = await createDatabaseMigratedBefore(t, '0006')
  await oldTrail(database)
  await database.db.transaction(async (tx) => {
    await tx.execute(sql`ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_or_delete`)
    await tx.execute(sql`UPDATE audit_events SET actor = 'mallory' WHERE action = 'custodian.updated'`)
    await tx.execute(sql`ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_or_delete`)
  })
  await t.rejects(runMigrations(database), /does not verify at event \d+/)
  const [due] = await database.query<{ done_at: string | null }>(`SELECT done_at FROM data_upgrades WHERE name = 'audit-personal-values'`)
  t.equal(due?.done_at, null, 'still due')
  const [name] = await database.query<{ after: { name: unknown } }>(`SELECT after FROM audit_events WHERE action = 'custodian.created'`)
  t.equal(name?.after.name, 'Ada Oldname', 'nothing changed')
})
