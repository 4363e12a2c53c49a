/**
 * The audit export (GET /v1/audit-events/export) and `npm run audit:verify`, which checks it
 * offline trusting only the public key: the format, what passes, what does not and why, and what
 * an export cut back to an earlier checkpoint looks like (the limit SECURITY.md describes).
 */
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { newId } from '../../src/db/ids.js'
import { generateSigningJwk, loadSigningKey } from '../../src/modules/audit/signing-key.js'
import { recordAudit } from '../../src/modules/audit/trail.js'
import { buildTestApp, TEST_AUDIT_SIGNING_KEY } from '../helpers/app.js'
import { auditVerifyCli, exportToFiles, tempDir, trailWithCheckpoints } from './trail-helpers.js'

type Line = Record<string, unknown> & { type: string }

const linesOf = (body: string) =>
  body
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Line)

const toFile = async (dir: string, name: string, lines: Line[] | string) => {
  const file = path.join(dir, name)
  await writeFile(file, typeof lines === 'string' ? lines : lines.map((line) => JSON.stringify(line)).join('\n') + '\n')
  return file
}

t.test('the export: every link in order, each checkpoint right after its count, digests only; audit:verify says ok', async (t) => {
  const testApp = await buildTestApp(t)
  const trail = await trailWithCheckpoints(testApp)
  const dir = await tempDir(t)
  const { file, keyFile, body, headers } = await exportToFiles(testApp, dir)
  t.match(headers['content-type'], /^application\/x-ndjson/)
  t.match(headers['content-disposition'], /^attachment; filename="audit-trail-\d{4}-\d\d-\d\d\.ndjson"$/)

  const lines = linesOf(body)
  t.same(lines.map((line) => (line.type === 'event' ? `e${line.seq}` : `c${line.count}`)), ['e1', 'e2', 'e3', 'e4', 'c4', 'e5', 'e6', 'e7', 'e8', 'e9', 'c9', 'e10'])
  t.same(Object.keys(lines[0]!), ['type', 'seq', 'id', 'at', 'actor', 'action', 'entityType', 'entityId', 'requestId', 'clientRequestId', 'before', 'after', 'prevHash', 'hash'])
  t.same(Object.keys(lines[4]!), ['type', 'id', 'at', 'count', 'lastEventId', 'headHash', 'signature'])
  t.match(lines[0], { type: 'event', seq: 1, id: trail.event(1), actor: 'alice@parliament', action: 'custodian.created', prevHash: null, hash: trail.links[0]!.hash })
  t.match(lines[0]!.after, { name: { $digest: /^[0-9a-f]{64}$/ }, email: { $digest: /^[0-9a-f]{64}$/ } }, 'personal values as their digests')
  t.notMatch(body, /Person \d|@parliament\.uk/, 'never the values themselves')
  t.match(lines[4], { type: 'checkpoint', count: 4, lastEventId: trail.event(4), headHash: trail.links[3]!.hash, signature: /^[\w-]+\.[\w-]+\.[\w-]+$/ })

  const result = await auditVerifyCli(file, keyFile)
  t.equal(result.code, 0, result.stderr)
  t.match(result.verdict, { ok: true, checked: 10, firstBadId: null, problem: null, checkpoints: { checked: 2, latest: { count: 9 } } })
  t.match(result.stderr, /intact: 10 events linked, 2 checkpoints verified: .* signs the first 9; the last 1 are linked but not yet signed/)
  t.match(JSON.parse(await readFile(keyFile, 'utf8')), { kty: 'OKP', x: JSON.parse(TEST_AUDIT_SIGNING_KEY).x })
})

t.test('the export signs what is new before it starts: only the checkpoint event itself is left unsigned', async (t) => {
  const testApp = await buildTestApp(t)
  await trailWithCheckpoints(testApp)
  const response = await testApp.app.inject({ method: 'POST', url: '/v1/custodians', headers: await testApp.auth('asset_manager'), payload: { kind: 'staff', name: 'Late' } })
  t.equal(response.statusCode, 201)
  const { body } = await exportToFiles(testApp, await tempDir(t))
  const lines = linesOf(body)
  t.match(lines.at(-2), { type: 'checkpoint', count: 11 }, 'a checkpoint of everything linked when the export began')
  t.match(lines.at(-1), { type: 'event', seq: 12, action: 'audit.checkpoint' })
})

t.test('what audit:verify refuses, and why', async (t) => {
  const testApp = await buildTestApp(t)
  const trail = await trailWithCheckpoints(testApp)
  const dir = await tempDir(t)
  const { file, keyFile, body } = await exportToFiles(testApp, dir)
  const lines = linesOf(body)

  const unsigned = await auditVerifyCli(await toFile(dir, 'no-checkpoints.ndjson', lines.filter((line) => line.type === 'event')), keyFile)
  t.equal(unsigned.code, 1, 'a file with no checkpoint is not ok')
  t.match(unsigned.verdict, { ok: false, checked: 10, problem: 'bad_signature', firstBadId: trail.event(1), detail: /no checkpoint: nothing signs these 10 events/ })

  const empty = await auditVerifyCli(await toFile(dir, 'empty.ndjson', ''), keyFile)
  t.equal(empty.code, 1)
  t.match(empty.verdict, { ok: false, firstBadId: null, detail: /no events and no checkpoint/ })

  const other = await loadSigningKey({ NODE_ENV: 'test', DATA_DIR: dir, AUDIT_SIGNING_KEY: generateSigningJwk() })
  const wrongKey = await auditVerifyCli(file, await toFile(dir, 'other.jwk', JSON.stringify(other.publicJwk)))
  t.equal(wrongKey.code, 1, 'another key')
  t.match(wrongKey.verdict, { ok: false, problem: 'bad_signature', firstBadId: trail.event(4) })

  const edited = lines.map((line) => (line.type === 'event' && line.seq === 6 ? { ...line, actor: 'mallory' } : line))
  const editedResult = await auditVerifyCli(await toFile(dir, 'edited.ndjson', edited), keyFile)
  t.equal(editedResult.code, 1)
  t.match(editedResult.verdict, { ok: false, checked: 5, problem: 'hash_mismatch', firstBadId: trail.event(6) })
  t.match(editedResult.stderr, new RegExp(`first bad event ${trail.event(6)}, hash_mismatch`))

  const gap = lines.filter((line) => !(line.type === 'event' && line.seq === 7))
  t.match((await auditVerifyCli(await toFile(dir, 'gap.ndjson', gap), keyFile)).verdict, { ok: false, problem: 'missing_events', firstBadId: trail.event(8) })

  const garbage = await auditVerifyCli(await toFile(dir, 'garbage.ndjson', `${body.split('\n').slice(0, 2).join('\n')}\n{"type":"event","seq":"three"}\n`), keyFile)
  t.equal(garbage.code, 1)
  t.match(garbage.verdict, { ok: false, problem: 'broken_link', detail: /line 3 is not an event or a checkpoint/ })

  const privateKey = await auditVerifyCli(file, await toFile(dir, 'private.jwk', TEST_AUDIT_SIGNING_KEY))
  t.equal(privateKey.code, 2, 'a private key is refused: hand out only the public one')
  t.match(privateKey.stderr, /private key/)
  t.equal((await auditVerifyCli(path.join(dir, 'missing.ndjson'), keyFile)).code, 2, 'a file that cannot be read')
  t.equal((await auditVerifyCli(file, path.join(dir, 'missing.jwk'))).code, 2, 'a key that cannot be read')
})

t.test('an export cut back to an earlier checkpoint is a shorter trail that holds: the latest checkpoint says how far', async (t) => {
  const testApp = await buildTestApp(t)
  await trailWithCheckpoints(testApp)
  const dir = await tempDir(t)
  const { keyFile, body } = await exportToFiles(testApp, dir)
  const lines = linesOf(body)
  const cut = lines.slice(0, lines.findIndex((line) => line.type === 'checkpoint') + 1)
  const result = await auditVerifyCli(await toFile(dir, 'cut.ndjson', cut), keyFile)
  t.equal(result.code, 0, 'what only a copy kept elsewhere (a notification, an earlier export) shows')
  t.match(result.verdict, { ok: true, checked: 4, checkpoints: { checked: 1, latest: { count: 4 } } })
})

t.test('a longer trail streams through the export and the CLI', async (t) => {
  const testApp = await buildTestApp(t)
  const events = 20_000
  const started = performance.now()
  await recordAudit(
    testApp.database.db,
    { actor: 'bulk', requestId: 'bulk-request' },
    Array.from({ length: events }, (_, n) => ({ action: 'device.updated', entityType: 'device' as const, entityId: newId(), after: { n } })),
  )
  await testApp.app.auditLinker.link()
  t.match(await testApp.app.auditCheckpoints.checkpoint(), { count: events })
  const written = performance.now()
  const online = (await testApp.app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: await testApp.auth('security') })).json()
  t.match(online, { ok: true, checked: events + 1, checkpoints: { checked: 1 } })
  const verified = performance.now()
  const { file, keyFile } = await exportToFiles(testApp, await tempDir(t))
  const exported = performance.now()
  const result = await auditVerifyCli(file, keyFile)
  t.equal(result.code, 0, result.stderr)
  t.match(result.verdict, { ok: true, checked: events + 1 })
  t.comment(
    `${events} events: written and linked ${Math.round(written - started)} ms, verify ${Math.round(verified - written)} ms, ` +
      `export ${Math.round(exported - verified)} ms, audit:verify ${Math.round(performance.now() - exported)} ms`,
  )
})
