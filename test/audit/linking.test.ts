/**
 * Linking the audit trail into its hash chain after commit: writes never wait for the chain, every
 * committed event is linked exactly once (whichever instance links it), the chain made before
 * migration 0002 survives it, and an event left out of the chain is reported.
 */
import t from 'tap'
import { connectPostgres, type Database } from '../../src/db/client.js'
import { runMigrations } from '../../src/db/migrate.js'
import { newId } from '../../src/db/ids.js'
import { AUDIT_CHAIN_LOCK, AuditLinker, eventHash, linkPendingEvents, recordAudit } from '../../src/modules/audit/trail.js'
import { verifyChain } from '../../src/modules/audit/verify.js'
import { buildTestApp } from '../helpers/app.js'
import { createDatabaseMigratedBefore, createTestDatabase, driverUnderTest, postgresUrlFor, testPoolOptions } from '../helpers/database.js'
import { waitUntil } from '../helpers/wait.js'

const count = async (database: Database, table: string) =>
  (await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n

t.test('a write does not wait for the chain: it commits while a linker holds the chain lock', { skip: driverUnderTest !== 'postgres' && 'PGlite has one connection: nothing runs beside a held transaction' }, async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security')
  if (database.driver !== 'postgres') throw new Error('PostgreSQL only')
  const holder = await database.pool.connect()
  t.teardown(() => holder.release())
  await holder.query('BEGIN')
  await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_CHAIN_LOCK])

  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers: security, payload: { kind: 'staff', name: 'Not Blocked' } })
  t.equal(created.statusCode, 201, 'the write committed with the chain locked elsewhere')
  t.equal(await count(database, 'audit_events'), 1)
  t.equal(await count(database, 'audit_unlinked'), 1, 'its event waits to be linked')

  await holder.query('COMMIT')
  const verdict = (await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: security })).json()
  t.match(verdict, { ok: true, checked: 1, firstBadId: null }, 'linked once the lock was free')
  t.equal(await count(database, 'audit_unlinked'), 0)
})

t.test('events are linked soon after their write answers, without anyone reading the trail', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security')
  for (let i = 0; i < 5; i++) {
    const response = await app.inject({ method: 'POST', url: '/v1/custodians', headers: security, payload: { kind: 'staff', name: `Person ${i}` } })
    t.equal(response.statusCode, 201)
  }
  // No call to link(): each write's response set it off.
  await waitUntil('the five events to be linked', async () => (await count(database, 'audit_chain')) >= 5)
  t.equal(await count(database, 'audit_chain'), 5)
  t.equal(await count(database, 'audit_unlinked'), 0)
  const links = await database.query<{ seq: number; event_id: number }>('SELECT seq::int AS seq, event_id::int AS event_id FROM audit_chain ORDER BY seq')
  t.same(links.map((link) => link.seq), [1, 2, 3, 4, 5], 'seq is gap-free')
})

t.test('after a write the linker runs at most once an interval; a reader of the trail does not wait for it', async (t) => {
  const database = await createTestDatabase(t)
  const linker = new AuditLinker(database.db, 60_000)
  const context = { actor: 'tester', requestId: 'req-linker-test' }
  const event = (name: string) => ({ action: 'custodian.created', entityType: 'custodian' as const, entityId: newId(), after: { name } })

  await recordAudit(database.db, context, event('first'))
  await linker.linkSoon()
  t.equal(await count(database, 'audit_chain'), 1, 'the first run starts at once')

  await recordAudit(database.db, context, event('second'))
  let soonDone = false
  const soon = linker.linkSoon().then(() => (soonDone = true))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(await count(database, 'audit_unlinked'), 1, 'the next one waits for its interval')
  t.notOk(soonDone)

  await recordAudit(database.db, context, event('third'))
  await linker.link()
  t.equal(await count(database, 'audit_chain'), 3, 'link() runs now, and links everything committed')
  await soon
  t.ok(soonDone, 'the waiting run was that one')
  t.match(await verifyChain(database), { ok: true, checked: 3, firstBadId: null })
})

t.test('a queue far larger than the statistics say is linked by index, within the statement timeout', { skip: driverUnderTest !== 'postgres' && 'statistics and statement timeouts: PostgreSQL' }, async (t) => {
  const database = await createTestDatabase(t)
  const [{ name } = { name: '' }] = await database.query<{ name: string }>('SELECT current_database() AS name')
  const queue = (events: number) =>
    database.query(`
      WITH events AS (
        INSERT INTO audit_events (at, actor, action, entity_type, entity_id, after)
        SELECT now(), 'importer', 'device.created', 'device', gen_random_uuid(), jsonb_build_object('n', n)
        FROM generate_series(1, ${events}) AS n
        RETURNING id)
      INSERT INTO audit_unlinked (event_id) SELECT id FROM events`)
  // The queue's statistics taken just after it was emptied (pages of dead rows, no live ones: as
  // after the benchmark's creates, with autovacuum off), then a large import's worth of events.
  await queue(5_000)
  await linkPendingEvents(database.db)
  await database.query('ANALYZE audit_unlinked')
  await queue(40_000)
  // With the queue joined to the links as a nested loop (40,000 x 5,000 rows) this ran past any sane limit.
  const linker = connectPostgres({ ...testPoolOptions(postgresUrlFor(name)), statementTimeoutMs: 5_000 })
  t.teardown(() => linker.close())
  t.equal(await linkPendingEvents(linker.db), 40_000)
  t.equal(await count(database, 'audit_unlinked'), 0)
  t.match(await verifyChain(database), { ok: true, checked: 45_000, firstBadId: null })
})

t.test('two instances writing at once on one database: one linear chain, every event once', { skip: driverUnderTest !== 'postgres' && 'PGlite is single-process' }, async (t) => {
  const first = await buildTestApp(t)
  const second = await buildTestApp(t, { database: connectPostgres(testPoolOptions(postgresUrlFor((await first.database.query<{ name: string }>('SELECT current_database() AS name'))[0]!.name))) })
  const headers = [await first.auth('security'), await second.auth('security')]
  const responses = await Promise.all(
    Array.from({ length: 40 }, (_, i) => {
      const { app } = i % 2 === 0 ? first : second
      return app.inject({ method: 'POST', url: '/v1/custodians', headers: headers[i % 2]!, payload: { kind: 'staff', name: `Racer ${i}` } })
    }),
  )
  t.same(responses.map((response) => response.statusCode), Array(40).fill(201))
  await Promise.all([first.app.auditLinker.link(), second.app.auditLinker.link()])
  t.match(await verifyChain(first.database), { ok: true, checked: 40, firstBadId: null })
  t.same(
    await first.database.query('SELECT count(*)::int AS links, count(DISTINCT event_id)::int AS events, max(seq)::int AS top FROM audit_chain'),
    [{ links: 40, events: 40, top: 40 }],
  )
})

t.test('an event left out of the chain (its queue row removed) is reported by verify', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security')
  await app.auditLinker.link()
  // An event without its queue row, as only someone with direct access to the database could write.
  const [{ id } = { id: 0 }] = await database.query<{ id: number }>(
    `INSERT INTO audit_events (at, actor, action, entity_type, entity_id)
     VALUES (now(), 'mallory', 'custodian.updated', 'custodian', gen_random_uuid()) RETURNING id::int AS id`,
  )
  const verdict = (await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: security })).json()
  t.match(verdict, { ok: false, checked: 0, firstBadId: id })
})

t.test('the chain made before migration 0002 is kept, in order, and verifies after it', async (t) => {
  const database = await createDatabaseMigratedBefore(t, '0002')

  // Three events chained as the service did before 0002: hash and prev_hash on the event.
  let prevHash: string | null = null
  for (const [i, at] of ['2025-01-01T10:00:00.000Z', '2025-01-01T11:00:00.000Z', '2025-01-02T09:30:00.000Z'].entries()) {
    const content = {
      at, actor: 'alice', action: 'custodian.created', entityType: 'custodian',
      entityId: `0190d3c0-0000-7000-8000-00000000000${i}`, requestId: `req-${i}`, before: null, after: { name: `Person ${i}` }, prevHash,
    }
    const hash = eventHash(content)
    await database.query(
      `INSERT INTO audit_events (at, actor, action, entity_type, entity_id, request_id, before, after, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9)`,
      [at, content.actor, content.action, content.entityType, content.entityId, content.requestId, JSON.stringify(content.after), prevHash, hash],
    )
    prevHash = hash
  }

  // The rest of the migrations: 0002 keeps the links in order, and 0006's upgrade checks them
  // (it refuses a chain that does not verify) before re-linking with the values kept beside.
  await runMigrations(database)
  t.equal(await linkPendingEvents(database.db), 1, 'only the upgrade event was waiting')
  t.match(await verifyChain(database), { ok: true, checked: 4, firstBadId: null })
  const [upgrade] = await database.query<{ after: { previousHeadHash: string; events: number } }>(`SELECT after FROM audit_events WHERE action = 'audit.rehashed'`)
  t.match(upgrade?.after, { previousHeadHash: prevHash, events: 3 }, 'the chain 0002 kept is the one the upgrade checked and names')
})
