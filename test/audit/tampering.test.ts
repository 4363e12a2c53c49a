/**
 * Tampering with the audit trail as a superuser would — the append-only triggers switched off in
 * a transaction, the change made, the triggers back — is found by GET /v1/audit-events/verify,
 * with the problem and the first bad event; and the same by `npm run audit:verify` over an
 * export made afterwards, trusting only the public key.
 *
 * Each test starts from the same trail (trail-helpers.ts): links 1–4 custodians, checkpoint 1
 * (count 4), 5 its event, 6–9 custodians, checkpoint 2 (count 9), 10 its event.
 */
import { asc, eq } from 'drizzle-orm'
import t, { type Test } from 'tap'
import type { Database } from '../../src/db/client.js'
import { auditChain, auditEvents } from '../../src/db/schema.js'
import { signCheckpoint } from '../../src/modules/audit/checkpoints.js'
import { generateSigningJwk, loadSigningKey } from '../../src/modules/audit/signing-key.js'
import { contentOf, eventHash } from '../../src/modules/audit/trail.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { type CliResult, linksOf, pastTheTriggers, trailWithCheckpoints, verifyOffline, verifyOnline } from './trail-helpers.js'

type Trail = Awaited<ReturnType<typeof trailWithCheckpoints>>
type Expected = { problem: string; firstBadId: number; detail?: RegExp }


/** Both checks find the same problem at the same event; the CLI exits non-zero naming it. */
async function expectFound(t: Test, testApp: TestApp, expected: Expected) {
  const started = performance.now()
  const online = await verifyOnline(testApp)
  t.match(online, { ok: false, ...expected }, 'GET /v1/audit-events/verify finds it')
  const offline: CliResult = await verifyOffline(testApp, t)
  t.equal(offline.code, 1, `audit:verify exits 1 (${offline.stderr.trim()})`)
  t.match(offline.verdict, { ok: false, ...expected }, 'audit:verify over the export finds the same')
  t.match(offline.stderr, new RegExp(`first bad event ${expected.firstBadId}, ${expected.problem}`))
  t.comment(`verify and export + audit:verify: ${Math.round(performance.now() - started)} ms`)
}

/** Every link's hashes recomputed from the events as they now stand, as someone without the key can. */
async function recomputeChain(database: Database) {
  const rows = await database.db
    .select({ seq: auditChain.seq, event: auditEvents })
    .from(auditChain)
    .innerJoin(auditEvents, eq(auditEvents.id, auditChain.eventId))
    .orderBy(asc(auditChain.seq))
  let prevHash: string | null = null
  const values: string[] = []
  for (const { seq, event } of rows) {
    const hash = eventHash(contentOf(event, prevHash))
    values.push(`(${seq}, ${prevHash === null ? 'NULL' : `'${prevHash}'`}, '${hash}')`)
    prevHash = hash
  }
  await pastTheTriggers(database, [
    `UPDATE audit_chain c SET prev_hash = v.prev_hash, hash = v.hash FROM (VALUES ${values.join(', ')}) AS v(seq, prev_hash, hash) WHERE c.seq = v.seq`,
  ])
  return prevHash
}

/** Deletes links and their events (and the events' kept values), as the foreign keys require. */
const deleteLinks = (trail: Trail, seqs: number[]) => {
  const ids = seqs.map((seq) => trail.event(seq)).join(', ')
  return [
    `DELETE FROM audit_chain WHERE seq IN (${seqs.join(', ')})`,
    `DELETE FROM audit_personal_values WHERE event_id IN (${ids})`,
    `DELETE FROM audit_events WHERE id IN (${ids})`,
  ]
}

async function setUp(t: Parameters<typeof buildTestApp>[0]) {
  const testApp = await buildTestApp(t)
  const trail = await trailWithCheckpoints(testApp)
  const before = await verifyOnline(testApp)
  if (!before.ok) throw new Error(`the trail is not intact before tampering: ${JSON.stringify(before)}`)
  return { testApp, trail, database: testApp.database }
}

t.test('untouched: both checks say ok', async (t) => {
  const { testApp } = await setUp(t)
  t.match(await verifyOnline(testApp), { ok: true, checked: 10, problem: null, firstBadId: null, checkpoints: { checked: 2, latest: { count: 9 } } })
  const offline = await verifyOffline(testApp, t)
  t.equal(offline.code, 0, offline.stderr)
  t.match(offline.verdict, { ok: true, checked: 10, problem: null, checkpoints: { checked: 2, latest: { count: 9 } } })
})

t.test('an edited event: hash_mismatch at that event', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, [`UPDATE audit_events SET actor = 'mallory' WHERE id = ${trail.event(3)}`])
  await expectFound(t, testApp, { problem: 'hash_mismatch', firstBadId: trail.event(3) })
})

t.test('an edited digest in a stored event: hash_mismatch at that event', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, [`UPDATE audit_events SET after = jsonb_set(after, '{name}', '"Someone Else"') WHERE id = ${trail.event(7)}`])
  await expectFound(t, testApp, { problem: 'hash_mismatch', firstBadId: trail.event(7) })
})

t.test('an event deleted in the middle: missing_events at the event after the gap', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, deleteLinks(trail, [3]))
  await expectFound(t, testApp, { problem: 'missing_events', firstBadId: trail.event(4), detail: /link 3 is missing/ })
})

t.test('events deleted in the middle and the chain renumbered: broken_link at the event after the gap', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, [...deleteLinks(trail, [3, 4]), 'UPDATE audit_chain SET seq = seq + 1000 WHERE seq > 4', 'UPDATE audit_chain SET seq = seq - 1002 WHERE seq > 1000'])
  t.same((await linksOf(database)).map((link) => link.seq), [1, 2, 3, 4, 5, 6, 7, 8], 'gap-free again')
  await expectFound(t, testApp, { problem: 'broken_link', firstBadId: trail.event(5) })
})

t.test('events deleted at the end: missing_events at the last checkpoint event', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, deleteLinks(trail, [7, 8, 9, 10]))
  await expectFound(t, testApp, { problem: 'missing_events', firstBadId: trail.event(9), detail: /the chain holds 6/ })
})

t.test('two links swapped: broken_link where the order breaks', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, ['UPDATE audit_chain SET seq = 1003 WHERE seq = 3', 'UPDATE audit_chain SET seq = 3 WHERE seq = 4', 'UPDATE audit_chain SET seq = 4 WHERE seq = 1003'])
  await expectFound(t, testApp, { problem: 'broken_link', firstBadId: trail.event(4) })
})

t.test('two events swapped under their links: hash_mismatch at the first', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  const [third, fourth] = [trail.event(3), trail.event(4)]
  // Through a spare event: each event is in one link at most, at every moment.
  await pastTheTriggers(database, [
    `WITH spare AS (INSERT INTO audit_events (actor, action, entity_type, entity_id) VALUES ('spare', 'x', 'device', gen_random_uuid()) RETURNING id)
     UPDATE audit_chain SET event_id = (SELECT id FROM spare) WHERE seq = 3`,
    `UPDATE audit_chain SET event_id = ${third} WHERE seq = 4`,
    `UPDATE audit_chain SET event_id = ${fourth} WHERE seq = 3`,
    `DELETE FROM audit_events WHERE actor = 'spare'`,
  ])
  await expectFound(t, testApp, { problem: 'hash_mismatch', firstBadId: fourth })
})

t.test('an event inserted into the chain with a well-made link: broken_link at the event after it', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  const at = '2025-06-01T12:00:00.000Z'
  await pastTheTriggers(database, [
    `INSERT INTO audit_events (at, actor, action, entity_type, entity_id, after)
     VALUES ('${at}', 'mallory', 'device.retired', 'device', '0190d3c0-0000-7000-8000-00000000beef', '{"status":"retired"}')`,
  ])
  const [{ id } = { id: 0 }] = await database.query<{ id: number }>(`SELECT id::int AS id FROM audit_events WHERE actor = 'mallory'`)
  const [event] = await database.db.select().from(auditEvents).where(eq(auditEvents.id, id))
  const hash = eventHash(contentOf(event!, trail.links[1]!.hash))
  await pastTheTriggers(database, [
    'UPDATE audit_chain SET seq = seq + 1000 WHERE seq >= 3',
    'UPDATE audit_chain SET seq = seq - 999 WHERE seq > 1000',
    `INSERT INTO audit_chain (seq, event_id, prev_hash, hash) VALUES (3, ${id}, '${trail.links[1]!.hash}', '${hash}')`,
  ])
  await expectFound(t, testApp, { problem: 'broken_link', firstBadId: trail.event(3) })
})

t.test('an event neither linked nor waiting to be: broken_link at that event', async (t) => {
  const { testApp, database } = await setUp(t)
  const [{ id } = { id: 0 }] = await database.query<{ id: number }>(
    `INSERT INTO audit_events (actor, action, entity_type, entity_id) VALUES ('mallory', 'device.retired', 'device', gen_random_uuid()) RETURNING id::int AS id`,
  )
  await expectFound(t, testApp, { problem: 'broken_link', firstBadId: id, detail: /in no link of the chain/ })
})

t.test('an event changed and the chain recomputed without the key: never ok', async (t) => {
  t.test('after the first checkpoint: hash_mismatch from the first event after it', async (t) => {
    const { testApp, trail, database } = await setUp(t)
    await pastTheTriggers(database, [`UPDATE audit_events SET actor = 'mallory' WHERE id = ${trail.event(7)}`])
    await recomputeChain(database)
    await expectFound(t, testApp, { problem: 'hash_mismatch', firstBadId: trail.event(5), detail: /recomputed after checkpoint/ })
  })
  t.test('before any checkpoint: hash_mismatch from the first event', async (t) => {
    const { testApp, trail, database } = await setUp(t)
    await pastTheTriggers(database, [`UPDATE audit_events SET actor = 'mallory' WHERE id = ${trail.event(2)}`])
    await recomputeChain(database)
    await expectFound(t, testApp, { problem: 'hash_mismatch', firstBadId: trail.event(1), detail: /recomputed after the first link/ })
  })
  t.test('with the checkpoints edited to match: bad_signature at the first one changed', async (t) => {
    const { testApp, trail, database } = await setUp(t)
    await pastTheTriggers(database, [`UPDATE audit_events SET actor = 'mallory' WHERE id = ${trail.event(2)}`])
    await recomputeChain(database)
    const links = await linksOf(database)
    await pastTheTriggers(database, [4, 9].map((count) => `UPDATE audit_checkpoints SET head_hash = '${links[count - 1]!.hash}' WHERE count = ${count}`))
    await expectFound(t, testApp, { problem: 'bad_signature', firstBadId: trail.event(4) })
  })
})

t.test('a checkpoint edited: bad_signature at its last event', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, [`UPDATE audit_checkpoints SET at = at + interval '1 second' WHERE count = 4`])
  await expectFound(t, testApp, { problem: 'bad_signature', firstBadId: trail.event(4) })
})

t.test('a checkpoint forged with another key: bad_signature at its last event', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  const other = await loadSigningKey({ NODE_ENV: 'test', DATA_DIR: '/nonexistent', AUDIT_SIGNING_KEY: generateSigningJwk() })
  const head = trail.links[9]!
  const at = new Date().toISOString()
  const signature = await signCheckpoint(other, { count: 10, lastEventId: head.eventId, headHash: head.hash, at })
  await database.query('INSERT INTO audit_checkpoints (at, count, last_event_id, head_hash, signature) VALUES ($1, 10, $2, $3, $4)', [at, head.eventId, head.hash, signature])
  await expectFound(t, testApp, { problem: 'bad_signature', firstBadId: head.eventId })
})

t.test('a kept personal value changed: hash_mismatch at its event (the database check; an export holds digests only)', async (t) => {
  const { testApp, trail, database } = await setUp(t)
  await pastTheTriggers(database, [`UPDATE audit_personal_values SET value = 'Someone Else' WHERE event_id = ${trail.event(2)} AND value = 'Person 2'`])
  t.match(await verifyOnline(testApp), { ok: false, problem: 'hash_mismatch', firstBadId: trail.event(2) })
  const offline = await verifyOffline(testApp, t)
  t.equal(offline.code, 0, 'the export has no personal values to check')
  t.notMatch(offline.stdout + (await verifyOffline(testApp, t)).stdout, /Someone Else|Person 2/)
})
