import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice, insertIncident } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'
import { postScans } from './helpers.js'

const SEEN = '2025-03-04T10:00:00.000Z'

t.test('create, read and list stocktakes; scope validation; roles; audit', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'alice')
  const custodian = await insertCustodian(database)
  await insertDevice(database)

  const created = await app.inject({
    method: 'POST', url: '/v1/stocktakes', headers: { ...headers, 'idempotency-key': 'st-1' },
    payload: { name: 'Portcullis House, March', scope: { custodianId: custodian.id, kind: 'laptop' } },
  })
  t.equal(created.statusCode, 201)
  const body = created.json()
  t.match(body, {
    name: 'Portcullis House, March', status: 'open', scope: { custodianId: custodian.id, kind: 'laptop' },
    counts: { scans: 0, missing: 0, unknown: 0, reportedMissingButSeen: 0, retiredButSeen: 0 },
    closedAt: null, createdBy: 'alice', version: 1,
  })
  t.equal(created.headers.location, `/v1/stocktakes/${body.id}`)
  const replay = await app.inject({
    method: 'POST', url: '/v1/stocktakes', headers: { ...headers, 'idempotency-key': 'st-1' },
    payload: { name: 'Portcullis House, March', scope: { custodianId: custodian.id, kind: 'laptop' } },
  })
  t.same(replay.json(), body, 'a retried create replays the first response')

  const whole = await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Everything' } })
  t.match(whole.json(), { scope: { custodianId: null, kind: null }, counts: { missing: 1 } }, 'the one in-stock device is missing')

  const read = await app.inject({ method: 'GET', url: `/v1/stocktakes/${body.id}`, headers })
  t.same(read.json(), body)
  t.equal(read.headers.etag, '"1"')
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/stocktakes/0190d3c0-0000-7000-8000-000000000000', headers }), 404)

  const unknownCustodian = await app.inject({
    method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'X', scope: { custodianId: '0190d3c0-0000-7000-8000-000000000000' } },
  })
  t.equal(assertProblem(t, unknownCustodian, 422).errors[0].path, 'body.scope.custodianId')
  const badKind = await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'X', scope: { kind: 'toaster' } } })
  t.equal(assertProblem(t, badKind, 400).errors[0].path, 'body.scope.kind')
  const extra = await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'X', status: 'closed' } })
  t.equal(assertProblem(t, extra, 400).errors[0].path, 'body.status')
  const foi = await app.inject({ method: 'POST', url: '/v1/stocktakes', headers: await auth('foi_officer'), payload: { name: 'X' } })
  assertProblem(t, foi, 403)
  const security = await app.inject({ method: 'GET', url: '/v1/stocktakes', headers: await auth('security') })
  t.equal(security.statusCode, 200)

  // Keyset pages over both, then the status filter.
  const first = (await app.inject({ method: 'GET', url: '/v1/stocktakes?limit=1', headers })).json()
  t.equal(first.items[0].id, body.id)
  t.type(first.nextCursor, 'string')
  const second = (await app.inject({ method: 'GET', url: `/v1/stocktakes?limit=1&cursor=${first.nextCursor}`, headers })).json()
  t.same(second, { items: [whole.json()], nextCursor: null })
  const closing = await app.inject({ method: 'POST', url: `/v1/stocktakes/${body.id}/close`, headers })
  t.equal(closing.statusCode, 200, closing.body)
  const closed = (await app.inject({ method: 'GET', url: '/v1/stocktakes?status=closed', headers })).json()
  t.same(closed.items.map((item: { id: string }) => item.id), [body.id])
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/stocktakes?status=done', headers }), 400)

  const events = await database.query<{ action: string; entity_id: string }>('SELECT action, entity_id FROM audit_events ORDER BY id')
  t.same(events, [
    { action: 'stocktake.created', entity_id: body.id },
    { action: 'stocktake.created', entity_id: whole.json().id },
    { action: 'stocktake.closed', entity_id: body.id },
  ])
})

t.test('each discrepancy class, with a device in it and one just outside it', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const holder = await insertCustodian(database)
  const seen = await insertDevice(database, { assetTag: 'PA-SEEN', serialNumber: 'SN-SEEN' })
  const unseen = await insertDevice(database, { assetTag: 'PA-UNSEEN', serialNumber: 'SN-UNSEEN' })
  const held = await insertDevice(database, { assetTag: 'PA-HELD', serialNumber: 'SN-HELD', status: 'assigned', currentCustodianId: holder.id })
  const heldSeen = await insertDevice(database, { assetTag: 'PA-HELD2', serialNumber: 'SN-HELD2', status: 'assigned', currentCustodianId: holder.id })
  const phone = await insertDevice(database, { assetTag: 'PA-PHONE', serialNumber: 'SN-PHONE', kind: 'phone' })
  const retiredSeen = await insertDevice(database, { assetTag: 'PA-RET1', serialNumber: 'SN-RET1', status: 'retired' })
  await insertDevice(database, { assetTag: 'PA-RET2', serialNumber: 'SN-RET2', status: 'retired' })
  const lostSeen = await insertDevice(database, { assetTag: 'PA-LOST1', serialNumber: 'SN-LOST1' })
  const lostUnseen = await insertDevice(database, { assetTag: 'PA-LOST2', serialNumber: 'SN-LOST2' })
  const { id: incidentId, reference } = await insertIncident(database, { deviceId: lostSeen.id, kind: 'stolen' })
  const incident = { id: incidentId, reference }
  await insertIncident(database, { deviceId: lostUnseen.id, kind: 'lost' })

  const open = async (scope?: object) =>
    (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Count', ...(scope ? { scope } : {}) } })).json().id as string
  const everything = await open()
  const laptops = await open({ kind: 'laptop' })
  const holders = await open({ custodianId: holder.id })
  const scans = [
    { assetTag: '  pa-seen ', seenAt: SEEN }, // any case, surrounding spaces
    { serialNumber: 'sn-held2', seenAt: SEEN, location: 'Room 1' },
    { assetTag: 'PA-RET1', seenAt: SEEN },
    { serialNumber: 'SN-LOST1', seenAt: SEEN },
    { assetTag: 'ZZ-999', seenAt: SEEN },
    { assetTag: ' zz-999', seenAt: SEEN },
    { serialNumber: 'PA-SEEN', seenAt: SEEN }, // an asset tag read as a serial matches nothing
  ]
  for (const id of [everything, laptops, holders]) {
    const response = await postScans(app, headers, id, scans)
    t.equal(response.statusCode, 200)
    t.same(response.json(), { accepted: 7, matched: 4, unknown: 3 })
  }
  const stored = await database.query<{ identifier: string; device_id: string | null }>(
    'SELECT identifier, device_id FROM stocktake_scans WHERE stocktake_id = $1 ORDER BY id', [everything],
  )
  t.same(stored.map((row) => row.identifier), ['pa-seen', 'sn-held2', 'PA-RET1', 'SN-LOST1', 'ZZ-999', 'zz-999', 'PA-SEEN'], 'every scan stored, trimmed, as read')
  t.equal(stored.filter((row) => row.device_id === seen.id).length, 1)

  const entry = (device: typeof seen, lastSeenAt: string | null = null) => ({
    id: device.id, assetTag: device.assetTag, serialNumber: device.serialNumber, kind: device.kind,
    status: device.status, currentCustodianId: device.currentCustodianId, lastSeenAt,
  })
  const all = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${everything}/discrepancies`, headers })).json()
  t.same(all.missing, [entry(held), entry(phone), entry(unseen)], 'in stock or assigned and unseen; not seen, retired or lost ones')
  t.same(all.unknown, [
    { identifier: 'ZZ-999', identifierType: 'asset_tag', scans: 2 },
    { identifier: 'PA-SEEN', identifierType: 'serial_number', scans: 1 },
  ])
  t.same(all.reportedMissingButSeen, [{ ...entry(lostSeen, SEEN), status: 'stolen', incident }], 'the lost device not seen is not here')
  t.same(all.retiredButSeen, [entry(retiredSeen, SEEN)], 'the retired device not seen is not here')

  const onlyLaptops = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${laptops}/discrepancies`, headers })).json()
  t.same(onlyLaptops.missing.map((d: { id: string }) => d.id), [held.id, unseen.id], 'the phone is out of scope')
  const onlyHolder = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${holders}/discrepancies`, headers })).json()
  t.same(onlyHolder.missing.map((d: { id: string }) => d.id), [held.id], "only the custodian's unseen device")
  t.notOk(onlyHolder.missing.some((d: { id: string }) => d.id === heldSeen.id), "the custodian's device seen by serial is not missing")
  t.equal(onlyHolder.retiredButSeen.length, 1, 'scope limits only what is expected, not what turns up')

  const counted = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${everything}`, headers })).json()
  t.same(counted.counts, { scans: 7, missing: 3, unknown: 2, reportedMissingButSeen: 1, retiredButSeen: 1 })

  // A device registered after its scan counts as seen, not unknown.
  const late = await insertDevice(database, { assetTag: 'zz-999', serialNumber: 'SN-LATE' })
  const after = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${everything}/discrepancies`, headers })).json()
  t.same(after.unknown.map((u: { identifier: string }) => u.identifier), ['PA-SEEN'])
  t.notOk(after.missing.some((d: { id: string }) => d.id === late.id))
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/stocktakes/0190d3c0-0000-7000-8000-000000000000/discrepancies', headers }), 404)
})

t.test('scan validation, lastSeenAt only moves forward, one audit event per batch', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security', 'sam')
  const device = await insertDevice(database, { assetTag: 'PA-1', serialNumber: 'SN-1', lastSeenAt: new Date('2025-06-01T00:00:00Z') })
  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Count' } })).json().id

  const lastSeen = async () => (await database.query<{ t: string }>(`SELECT to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS t FROM devices WHERE id = $1`, [device.id]))[0]!.t
  t.equal((await postScans(app, headers, id, [{ assetTag: 'PA-1', seenAt: '2025-01-01T00:00:00Z' }])).statusCode, 200)
  t.equal(await lastSeen(), '2025-06-01T00:00:00', 'an older sighting does not move it back')
  await postScans(app, headers, id, [
    { serialNumber: 'sn-1', seenAt: '2025-07-01T00:00:00+01:00' },
    { assetTag: 'pa-1', seenAt: '2025-06-15T00:00:00Z' },
  ])
  t.equal(await lastSeen(), '2025-06-30T23:00:00', 'the latest sighting of the batch wins')
  await postScans(app, headers, id, [{ assetTag: 'PA-1', seenAt: '2025-06-20T00:00:00Z' }])
  t.equal(await lastSeen(), '2025-06-30T23:00:00')

  const future = new Date(Date.now() + 3_600_000).toISOString()
  const cases: [object, string][] = [
    [{ assetTag: 'PA-1', seenAt: future }, 'body.scans.0.seenAt'],
    [{ assetTag: 'PA-1', serialNumber: 'SN-1', seenAt: SEEN }, 'body.scans.0'],
    [{ seenAt: SEEN }, 'body.scans.0'],
    [{ assetTag: '   ', seenAt: SEEN }, 'body.scans.0.assetTag'],
    [{ assetTag: 'PA-1', seenAt: '2025-01-01' }, 'body.scans.0.seenAt'],
    [{ assetTag: 'PA-1', seenAt: SEEN, deviceId: device.id }, 'body.scans.0.deviceId'],
  ]
  for (const [scan, path] of cases) {
    const response = await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/scans`, headers, payload: { scans: [scan] } })
    t.equal(assertProblem(t, response, 400).errors[0].path, path, path)
  }
  const tooMany = Array.from({ length: 5_001 }, (_, i) => ({ assetTag: `X-${i}`, seenAt: SEEN }))
  const refused = assertProblem(t, await postScans(app, headers, id, tooMany), 400)
  t.match(refused.detail, /at most 5000 scans per call/)
  assertProblem(t, await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/scans`, headers, payload: { scans: [] } }), 400)
  assertProblem(t, await postScans(app, headers, '0190d3c0-0000-7000-8000-000000000000', [{ assetTag: 'PA-1', seenAt: SEEN }]), 404)

  const [count] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM stocktake_scans')
  t.equal(count!.n, 4, 'refused batches stored nothing')
  const events = await database.query<{ action: string; actor: string; after: unknown }>(
    `SELECT action, actor, after FROM audit_events WHERE action = 'stocktake.scans_added' ORDER BY id`,
  )
  t.same(events, [
    { action: 'stocktake.scans_added', actor: 'sam', after: { accepted: 1, matched: 1, unknown: 0 } },
    { action: 'stocktake.scans_added', actor: 'sam', after: { accepted: 2, matched: 2, unknown: 0 } },
    { action: 'stocktake.scans_added', actor: 'sam', after: { accepted: 1, matched: 1, unknown: 0 } },
  ])
})

t.test('closing freezes the discrepancies; scans and a second close are 409', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'alice')
  const missing = await insertDevice(database, { assetTag: 'PA-M' })
  const present = await insertDevice(database, { assetTag: 'PA-P' })
  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Count' } })).json().id
  await postScans(app, headers, id, [{ assetTag: 'PA-P', seenAt: SEEN }, { assetTag: 'NOPE', seenAt: SEEN }])
  const before = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies`, headers })).json()
  t.same(before.missing.map((d: { id: string }) => d.id), [missing.id])

  const withBody = await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/close`, headers, payload: { reason: 'done' } })
  t.equal(assertProblem(t, withBody, 400).errors[0].path, 'body.reason')
  const closed = await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/close`, headers })
  t.equal(closed.statusCode, 200)
  t.match(closed.json(), { status: 'closed', closedAt: String, version: 2, counts: { scans: 2, missing: 1, unknown: 1 } })
  t.equal(closed.headers.etag, '"2"')

  // The register changes afterwards: the missing one is retired, the seen one lost, a new one arrives.
  await database.query(`UPDATE devices SET status = 'retired' WHERE id = $1`, [missing.id])
  await insertIncident(database, { deviceId: present.id })
  await insertDevice(database, { assetTag: 'NOPE' })
  await insertDevice(database, { assetTag: 'PA-NEW' })
  const frozen = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies`, headers })).json()
  t.same(frozen, before, 'the discrepancies are as they were at closing')
  const read = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}`, headers })).json()
  t.same(read, closed.json())

  const late = await postScans(app, headers, id, [{ assetTag: 'PA-M', seenAt: SEEN }])
  t.match(assertProblem(t, late, 409).detail, /closed/)
  t.match(assertProblem(t, await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/close`, headers }), 409).detail, /already closed/)
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/stocktakes/0190d3c0-0000-7000-8000-000000000000/close', headers }), 404)
  const [scans] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM stocktake_scans')
  t.equal(scans!.n, 2)
  const events = await database.query<{ action: string; before: { status: string } | null; after: { status?: string } }>(
    'SELECT action, before, after FROM audit_events ORDER BY id',
  )
  t.same(events.map((e) => e.action), ['stocktake.created', 'stocktake.scans_added', 'stocktake.closed'])
  t.match(events[2], { before: { status: 'open' }, after: { status: 'closed' } })
})

t.test('concurrent scan batches into one stocktake lose nothing', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  await database.query(
    `INSERT INTO devices (asset_tag, kind, make, model, serial_number, encrypted, mdm_enrolled, classification, created_by)
     SELECT 'C-' || n, 'laptop', 'Dell', 'X', 'CS-' || n, true, true, 'official', 'fixture' FROM generate_series(1, 300) n`,
  )
  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Count' } })).json().id
  // Four batches over the same 300 devices (and some unknowns), each with its own latest time.
  const batches = [0, 1, 2, 3].map((b) =>
    Array.from({ length: 400 }, (_, i) => ({
      assetTag: i < 300 ? `c-${300 - i}` : `UNKNOWN-${b}-${i}`,
      seenAt: new Date(Date.UTC(2025, 0, 1 + b, 0, 0, i % 60)).toISOString(),
    })),
  )
  const responses = await Promise.all(batches.map((scans) => postScans(app, headers, id, scans)))
  t.same(responses.map((r) => r.statusCode), [200, 200, 200, 200])
  t.same(responses.map((r) => r.json()), batches.map(() => ({ accepted: 400, matched: 300, unknown: 100 })))
  const [row] = await database.query<{ scans: number; devices: number; latest: number }>(
    `SELECT count(*)::int AS scans, count(DISTINCT device_id)::int AS devices,
       (SELECT count(*)::int FROM devices WHERE last_seen_at >= '2025-01-04T00:00:00Z') AS latest
     FROM stocktake_scans WHERE stocktake_id = $1`,
    [id],
  )
  t.same(row, { scans: 1600, devices: 300, latest: 300 }, 'every scan stored; every device carries the latest batch time')
  const counts = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}`, headers })).json().counts
  t.same(counts, { scans: 1600, missing: 0, unknown: 400, reportedMissingButSeen: 0, retiredButSeen: 0 })
  const [audit] = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'stocktake.scans_added'`)
  t.equal(audit!.n, 4)
})

t.test('a close racing scan batches counts exactly the batches that were accepted', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  await insertDevice(database, { assetTag: 'R-1' })
  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Count' } })).json().id
  const batch = Array.from({ length: 200 }, (_, i) => ({ assetTag: i === 0 ? 'R-1' : `R-UNKNOWN-${i}`, seenAt: SEEN }))
  const [a, b, close, c, d] = await Promise.all([
    postScans(app, headers, id, batch),
    postScans(app, headers, id, batch),
    app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/close`, headers }),
    postScans(app, headers, id, batch),
    postScans(app, headers, id, batch),
  ])
  t.equal(close.statusCode, 200)
  const batches = [a!, b!, c!, d!]
  t.ok(batches.every((r) => r.statusCode === 200 || r.statusCode === 409), 'each batch either went in or was refused as closed')
  const accepted = batches.filter((r) => r.statusCode === 200).length
  const [stored] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM stocktake_scans WHERE stocktake_id = $1', [id])
  t.equal(stored!.n, accepted * 200, 'no scan slipped in after closing')
  t.equal(close.json().counts.scans, stored!.n, 'the frozen counts include every accepted batch')
  t.equal(close.json().counts.unknown, accepted > 0 ? 199 : 0)
})

t.test('a retried scan batch with its Idempotency-Key is replayed, not counted twice', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'idempotency-key': 'batch-1' }
  const device = await insertDevice(database)
  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers: await auth('asset_manager'), payload: { name: 'Retry' } })).json().id
  const scans = [{ assetTag: device.assetTag, seenAt: SEEN }, { serialNumber: 'NOT-OURS', seenAt: SEEN }]
  const first = await postScans(app, headers, id, scans)
  const retry = await postScans(app, headers, id, scans)
  t.equal(first.statusCode, 200)
  t.equal(retry.statusCode, 200)
  t.equal(retry.body, first.body)
  t.equal(retry.headers['idempotent-replayed'], 'true')
  const [row] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM stocktake_scans WHERE stocktake_id = $1', [id])
  t.equal(row!.n, 2, 'the batch is stored once')
})
