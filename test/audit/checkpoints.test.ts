/**
 * Signed checkpoints of the audit chain: what one signs and how the public key checks it, that
 * they keep coming while events arrive and stop when the service is idle (their own events do not
 * call for more), one as the app closes, and where the key comes from.
 */
import { stat, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { compactVerify, decodeProtectedHeader, importJWK } from 'jose'
import t from 'tap'
import { configWith } from '../../src/config.js'
import type { Database } from '../../src/db/client.js'
import { signedContent, writeCheckpoint } from '../../src/modules/audit/checkpoints.js'
import { loadSigningKey, SIGNING_KEY_FILE } from '../../src/modules/audit/signing-key.js'
import { NIL_ENTITY_ID } from '../../src/modules/audit/trail.js'
import { buildTestApp, TEST_AUDIT_SIGNING_KEY, type TestApp } from '../helpers/app.js'
import { waitUntil } from '../helpers/wait.js'

interface CheckpointRow {
  id: number
  at: Date
  count: number
  last_event_id: number
}

const checkpointRows = (database: Database) =>
  database.query<CheckpointRow>('SELECT id::int AS id, at, count::int AS count, last_event_id::int AS last_event_id FROM audit_checkpoints ORDER BY id')

async function createCustodian(app: TestApp['app'], headers: Record<string, string>, name: string) {
  const response = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name } })
  if (response.statusCode !== 201) throw new Error(`create failed: ${response.body}`)
}

t.test('a checkpoint signs the chain head; the public key verifies it; its own event calls for no other', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security')
  t.equal(await app.auditCheckpoints.checkpoint(), null, 'an empty chain: nothing to sign')
  for (const name of ['One', 'Two', 'Three']) await createCustodian(app, security, name)

  const checkpoint = await app.auditCheckpoints.checkpoint()
  const [head] = await database.query<{ seq: number; event_id: number; hash: string }>('SELECT seq::int AS seq, event_id::int AS event_id, hash FROM audit_chain WHERE seq = 3')
  t.match(checkpoint, { count: 3, lastEventId: head!.event_id, headHash: head!.hash }, 'it signs the three links')
  t.match(checkpoint!.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

  const listed = await app.inject({ method: 'GET', url: '/v1/audit-checkpoints', headers: security })
  t.equal(listed.statusCode, 200)
  t.same(listed.json(), { items: [checkpoint], nextCursor: null }, 'listed as written')

  const publicKey = await app.inject({ method: 'GET', url: '/v1/audit-checkpoints/public-key', headers: security })
  t.equal(publicKey.statusCode, 200)
  const jwk = publicKey.json()
  t.match(jwk, { kty: 'OKP', crv: 'Ed25519', x: JSON.parse(TEST_AUDIT_SIGNING_KEY).x, alg: 'EdDSA', use: 'sig', kid: String })
  t.notOk('d' in jwk, 'the public half only')
  const { payload } = await compactVerify(checkpoint!.signature, await importJWK(jwk, 'EdDSA'))
  t.equal(new TextDecoder().decode(payload), signedContent(checkpoint!), 'the public key verifies its signature over its fields')
  t.same(JSON.parse(new TextDecoder().decode(payload)), { at: checkpoint!.at, count: 3, headHash: head!.hash, lastEventId: head!.event_id })
  t.match(decodeProtectedHeader(checkpoint!.signature), { alg: 'EdDSA', kid: jwk.kid })

  await app.auditLinker.link()
  const [event] = await database.query<{ actor: string; entity_type: string; entity_id: string; after: unknown }>(
    `SELECT actor, entity_type, entity_id, after FROM audit_events WHERE action = 'audit.checkpoint'`,
  )
  t.same(event, { actor: 'system', entity_type: 'audit', entity_id: NIL_ENTITY_ID, after: checkpoint }, 'it is an audit event too, for the notifications')
  const audited = await app.inject({ method: 'GET', url: '/v1/audit-events?entityType=audit', headers: security })
  t.match(audited.json().items, [{ action: 'audit.checkpoint', after: checkpoint }])

  t.equal(await app.auditCheckpoints.checkpoint(), null, 'only its own event since: no new checkpoint')
  t.equal(await app.auditCheckpoints.checkpoint(), null, 'and still none')
  await createCustodian(app, security, 'Four')
  t.match(await app.auditCheckpoints.checkpoint(), { count: 5 }, 'a new event: the next one signs it (and the checkpoint event before it)')

  const verdict = (await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: security })).json()
  t.match(verdict, { ok: true, checked: 6, firstBadId: null, problem: null, checkpoints: { checked: 2, latest: { count: 5 } } })
  t.match(verdict.detail, /the last 1 are linked but not yet signed/)

  const page = await app.inject({ method: 'GET', url: '/v1/audit-checkpoints?limit=1', headers: security })
  t.match(page.json(), { items: [{ count: 5 }], nextCursor: String }, 'newest first, paged')
  const next = await app.inject({ method: 'GET', url: `/v1/audit-checkpoints?limit=1&cursor=${page.json().nextCursor}`, headers: security })
  t.match(next.json(), { items: [{ count: 3 }], nextCursor: null })
})

t.test('only security reads the checkpoints and the key', async (t) => {
  const { app, auth } = await buildTestApp(t)
  for (const url of ['/v1/audit-checkpoints', '/v1/audit-checkpoints/public-key', '/v1/audit-events/export']) {
    t.equal((await app.inject({ method: 'GET', url, headers: await auth('asset_manager') })).statusCode, 403, url)
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 401, url)
  }
})

t.test('while events arrive a checkpoint comes every AUDIT_CHECKPOINT_SECONDS; none while idle', async (t) => {
  const { app, auth, database } = await buildTestApp(t, { config: { AUDIT_CHECKPOINT_SECONDS: '1' } })
  const security = await auth('security')
  const started = Date.now()
  let written = 0
  // Events keep arriving (one every 100 ms) until the timer has signed three times.
  await waitUntil(
    'three checkpoints while events arrive',
    async () => {
      await createCustodian(app, security, `Arrival ${++written}`)
      return (await checkpointRows(database)).length >= 3
    },
    { intervalMs: 100 },
  )
  const during = await checkpointRows(database)
  t.comment(`${written} events in ${Date.now() - started} ms; checkpoints ${during.map((row) => row.at.getTime() - started).join(', ')} ms after the start`)
  for (const [i, row] of during.entries()) if (i > 0) t.ok(row.count > during[i - 1]!.count, 'each signs more of the chain than the one before')

  // The last events get their checkpoint at the next tick; then nothing more is written.
  await app.auditLinker.link()
  const last = await waitUntil('the last events to be signed', async () => {
    const [head] = await database.query<{ event_id: number }>(
      `SELECT max(c.event_id)::int AS event_id FROM audit_chain c JOIN audit_events e ON e.id = c.event_id WHERE e.action <> 'audit.checkpoint'`,
    )
    const rows = await checkpointRows(database)
    return rows.at(-1)!.last_event_id >= head!.event_id && rows
  })
  await new Promise((resolve) => setTimeout(resolve, 3_500))
  t.same(await checkpointRows(database), last, 'idle for three intervals: no new checkpoint')
  const [{ n } = { n: 0 }] = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'audit.checkpoint'`)
  t.equal(n, last.length, 'one checkpoint event per checkpoint')
})

t.test('the app signs what is left as it closes', async (t) => {
  const { app, auth, database, logs } = await buildTestApp(t)
  await createCustodian(app, await auth('security'), 'Last Word')
  t.equal((await checkpointRows(database)).length, 0)
  await app.close()
  await waitUntil('the closing checkpoint to be logged', () => logs.some((line) => line.msg === 'audit checkpoint signed'))
  t.match(logs.find((line) => line.msg === 'audit checkpoint signed'), { checkpoint: { count: 1 } })
})

t.test('a chain that no longer holds the last checkpoint head is not signed again', async (t) => {
  const { app, auth, database, logs } = await buildTestApp(t)
  const security = await auth('security')
  await createCustodian(app, security, 'Before')
  const key = await app.auditCheckpoints.signingKey()
  t.match(await writeCheckpoint(app.db, key), { count: 1 })
  await createCustodian(app, security, 'After')
  await database.db.transaction(async (tx) => {
    await tx.execute('ALTER TABLE audit_chain DISABLE TRIGGER USER')
    await tx.execute(`UPDATE audit_chain SET hash = repeat('0', 64) WHERE seq = 1`)
    await tx.execute('ALTER TABLE audit_chain ENABLE TRIGGER USER')
  })
  await t.rejects(writeCheckpoint(app.db, key), /no longer holds the head of the last checkpoint/)
  t.equal(await app.auditCheckpoints.checkpoint(), null, 'through the plugin: logged, not thrown')
  t.ok(logs.some((line) => line.msg === 'audit checkpoint not written; the next run will try again'))
  t.equal((await checkpointRows(database)).length, 1)
})

t.test('outside production the key is generated once into DATA_DIR, mode 0600; production needs AUDIT_SIGNING_KEY', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dlr-audit-key-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const config = configWith({ DATA_DIR: dataDir })
  const [first, second] = await Promise.all([loadSigningKey(config), loadSigningKey(config)])
  t.equal(first.publicJwk.x, second.publicJwk.x, 'two at once agree')
  t.equal((await loadSigningKey(config)).publicJwk.x, first.publicJwk.x, 'and later loads read the same key')
  const file = path.join(dataDir, SIGNING_KEY_FILE)
  t.equal((await stat(file)).mode & 0o777, 0o600)
  t.match(JSON.parse(await readFile(file, 'utf8')), { kty: 'OKP', crv: 'Ed25519', d: String, x: first.publicJwk.x })
  t.notOk('d' in first.publicJwk)
  t.equal(first.source, file)

  const given = await loadSigningKey(configWith({ DATA_DIR: dataDir, AUDIT_SIGNING_KEY: TEST_AUDIT_SIGNING_KEY }))
  t.equal(given.publicJwk.x, JSON.parse(TEST_AUDIT_SIGNING_KEY).x, 'AUDIT_SIGNING_KEY wins')
  t.equal(given.source, 'AUDIT_SIGNING_KEY')
  await t.rejects(loadSigningKey({ NODE_ENV: 'production', DATA_DIR: dataDir, AUDIT_SIGNING_KEY: undefined }), /AUDIT_SIGNING_KEY is required in production/)
})

t.test('in development the key and its public half are logged at start', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dlr-audit-key-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const { logs } = await buildTestApp(t, { config: { NODE_ENV: 'development', AUDIT_SIGNING_KEY: '', DATA_DIR: dataDir } })
  const key = JSON.parse(await readFile(path.join(dataDir, SIGNING_KEY_FILE), 'utf8')) as { x: string; d: string }
  const line = await waitUntil('the key to be logged', () => logs.find((entry) => String(entry.msg).startsWith('audit checkpoints are signed with')))
  t.match(line.msg, new RegExp(`signed with ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*public key .*"x":"${key.x}"`))
  t.notMatch(String(line.msg), key.d, 'never the private part')
})
