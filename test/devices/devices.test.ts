import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'
import { walkPages } from '../helpers/pages.js'

const laptop = {
  assetTag: 'pa-t100001',
  kind: 'laptop',
  make: 'Dell',
  model: 'Latitude 7440',
  serialNumber: 'SN-ABC-001',
  imei: null,
  encrypted: true,
  mdmEnrolled: true,
  classification: 'official_sensitive',
  purchasedOn: '2023-05-02',
  costPence: 129_900,
}

t.test('create, read, list, update with If-Match, and the audit trail of it', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'alice')

  const created = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: laptop })
  t.equal(created.statusCode, 201)
  const body = created.json()
  t.match(body, {
    ...laptop,
    status: 'in_stock',
    currentCustodianId: null,
    lastSeenAt: null,
    retiredAt: null,
    version: 1,
  })
  t.equal(body.assetTag, 'pa-t100001', 'the tag as written: no house format imposes a case')
  t.equal(created.headers.etag, '"1"')
  t.equal(created.headers.location, `/v1/devices/${body.id}`)

  const read = await app.inject({ method: 'GET', url: `/v1/devices/${body.id}`, headers })
  t.equal(read.statusCode, 200)
  t.same(read.json(), body)
  t.equal(read.headers.etag, '"1"')
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/devices/0190d3c0-0000-7000-8000-000000000000', headers }), 404)

  assertProblem(t, await app.inject({ method: 'PATCH', url: `/v1/devices/${body.id}`, headers, payload: { make: 'HP' } }), 428)
  assertProblem(
    t,
    await app.inject({ method: 'PATCH', url: `/v1/devices/${body.id}`, headers: { ...headers, 'if-match': '"9"' }, payload: { make: 'HP' } }),
    412,
  )
  const patched = await app.inject({
    method: 'PATCH',
    url: `/v1/devices/${body.id}`,
    headers: { ...headers, 'if-match': '"1"' },
    payload: { make: 'HP', imei: '490154203237518', costPence: null },
  })
  t.equal(patched.statusCode, 200)
  t.match(patched.json(), { make: 'HP', imei: '490154203237518', costPence: null, model: 'Latitude 7440', version: 2 })
  t.equal(patched.headers.etag, '"2"')

  const events = await database.query<{ action: string; actor: string; entity_id: string }>(
    'SELECT action, actor, entity_id FROM audit_events ORDER BY id',
  )
  t.same(events, [
    { action: 'device.created', actor: 'alice', entity_id: body.id },
    { action: 'device.updated', actor: 'alice', entity_id: body.id },
  ])
})

t.test('each field is validated at the edge: a bad value 400 naming it, a good one accepted', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10)
  const cases: [string, unknown, unknown][] = [
    ['assetTag', 'PA@12', 'PARLIAMENT-1'],
    ['assetTag', 'x'.repeat(65), 'hol-ab12'],
    ['imei', '490154203237519', '490154203237518'],
    ['imei', '49015420323751', '356938035643809'],
    ['kind', 'toaster', 'phone'],
    ['classification', 'top_secret', 'secret'],
    ['costPence', -1, 0],
    ['costPence', 12.5, 1250],
    ['costPence', '1250', 99],
    ['purchasedOn', tomorrow, '2020-02-29'],
    ['purchasedOn', '2023-02-30', '2023-02-28'],
    ['serialNumber', 'has space', 'SN/OK.1_2-3'],
    ['make', '   ', 'Apple'],
    ['encrypted', 'yes', false],
  ]
  let n = 0
  for (const [field, bad, good] of cases) {
    n++
    const base = { ...laptop, assetTag: `PA-V${String(n).padStart(5, '0')}`, serialNumber: `SN-V-${n}` }
    const refused = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: { ...base, [field]: bad } })
    const problem = assertProblem(t, refused, 400)
    t.equal(problem.errors[0].path, `body.${field}`, `${field}: ${JSON.stringify(bad)} refused`)
    const accepted = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: { ...base, [field]: good } })
    t.equal(accepted.statusCode, 201, `${field}: ${JSON.stringify(good)} accepted`)
  }
  const rows = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM devices')
  t.equal(rows[0]!.n, cases.length, 'only the good ones were stored')
})

t.test('server-owned and unknown fields are 400 on create and on PATCH, and change nothing', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const custodian = await insertCustodian(database)
  const extras = [
    { status: 'assigned' },
    { currentCustodianId: custodian.id },
    { lastSeenAt: '2024-01-01T00:00:00Z' },
    { version: 4 },
    { id: '0190d3c0-0000-7000-8000-000000000000' },
    { colour: 'red' },
  ]
  for (const extra of extras) {
    const field = Object.keys(extra)[0]
    const response = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: { ...laptop, ...extra } })
    t.equal(assertProblem(t, response, 400).errors[0].path, `body.${field}`, `create with ${field}`)
  }
  const device = await insertDevice(database)
  for (const extra of extras) {
    const field = Object.keys(extra)[0]
    const response = await app.inject({
      method: 'PATCH', url: `/v1/devices/${device.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: extra,
    })
    t.equal(assertProblem(t, response, 400).errors[0].path, `body.${field}`, `PATCH of ${field}`)
  }
  assertProblem(t, await app.inject({ method: 'PATCH', url: `/v1/devices/${device.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: {} }), 400)
  const [row] = await database.query<{ status: string; version: number }>('SELECT status, version FROM devices WHERE id = $1', [device.id])
  t.same(row, { status: 'in_stock', version: 1 })
  t.same(await database.query('SELECT id FROM audit_events'), [])
})

t.test('duplicate asset tags and serial numbers, in any case, are 409 naming the field', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  t.equal((await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: laptop })).statusCode, 201)

  const sameTag = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: { ...laptop, assetTag: 'PA-T100001', serialNumber: 'OTHER-1' } })
  t.equal(assertProblem(t, sameTag, 409).errors[0].path, 'body.assetTag')
  const sameSerial = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: { ...laptop, assetTag: 'PA-T100002', serialNumber: 'sn-abc-001' } })
  t.equal(assertProblem(t, sameSerial, 409).errors[0].path, 'body.serialNumber')

  const other = (await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: { ...laptop, assetTag: 'PA-T100003', serialNumber: 'OTHER-3' } })).json()
  const patch = await app.inject({
    method: 'PATCH', url: `/v1/devices/${other.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { assetTag: 'pa-t100001' },
  })
  t.equal(assertProblem(t, patch, 409).errors[0].path, 'body.assetTag')
  const count = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM devices')
  t.equal(count[0]!.n, 2)
  const events = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')
  t.equal(events[0]!.n, 2, 'a refused write leaves no audit event')
})

t.test('list: filters by status, kind, custodian and prefix of tag or serial; keyset pages', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const holder = await insertCustodian(database)
  const a = await insertDevice(database, { assetTag: 'PA-ALPHA01', serialNumber: 'XY-500', kind: 'phone' })
  const b = await insertDevice(database, { assetTag: 'PA-BETA002', serialNumber: 'pa-alphabet', kind: 'laptop' })
  const c = await insertDevice(database, { assetTag: 'HOL-GAMMA3', serialNumber: 'ZZ%_1', status: 'assigned', currentCustodianId: holder.id })
  const ids = async (query: string) =>
    ((await app.inject({ method: 'GET', url: `/v1/devices${query}`, headers })).json().items as { id: string }[]).map((d) => d.id)

  t.same(await ids(''), [a.id, b.id, c.id])
  t.same(await ids('?status=assigned'), [c.id])
  t.same(await ids('?kind=phone'), [a.id])
  t.same(await ids(`?custodianId=${holder.id}`), [c.id])
  t.same(await ids('?q=pa-alpha'), [a.id, b.id], 'tag prefix of one, serial prefix of the other, any case')
  t.same(await ids('?q=xy-5'), [a.id])
  t.same(await ids('?q=ALPHA'), [], 'a prefix, not a substring')
  t.same(await ids('?q=ZZ%25'), [c.id], '% is literal')
  t.same(await ids('?q=Z%25'), [], '% is not a wildcard')
  t.same(await ids('?status=assigned&kind=phone'), [])

  const seen = await walkPages<{ id: string }>(app, '/v1/devices?limit=2', headers)
  t.same(seen.items.map((item) => item.id), [a.id, b.id, c.id])

  for (const bad of ['?status=missing', '?kind=toaster', '?custodianId=nope', '?colour=red', '?cursor=garbage', '?limit=0']) {
    assertProblem(t, await app.inject({ method: 'GET', url: `/v1/devices${bad}`, headers }), 400)
  }
})

t.test('retire: only from in_stock; sets retiredAt and the reason; audited', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'bob')
  const holder = await insertCustodian(database)
  const device = await insertDevice(database)
  const held = await insertDevice(database, { status: 'assigned', currentCustodianId: holder.id })

  assertProblem(t, await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/retire`, headers, payload: { reason: '  ' } }), 400)
  assertProblem(t, await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/retire`, headers, payload: {} }), 400)
  const retired = await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/retire`, headers, payload: { reason: 'Battery swollen' } })
  t.equal(retired.statusCode, 200)
  t.match(retired.json(), { status: 'retired', retireReason: 'Battery swollen', version: 2 })
  t.ok(Date.parse(retired.json().retiredAt) <= Date.now())

  const again = assertProblem(t, await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/retire`, headers, payload: { reason: 'x' } }), 409)
  t.match(again.detail, /retired/)
  const assigned = assertProblem(t, await app.inject({ method: 'POST', url: `/v1/devices/${held.id}/retire`, headers, payload: { reason: 'x' } }), 409)
  t.match(assigned.detail, /assigned/)
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices/0190d3c0-0000-7000-8000-000000000000/retire', headers, payload: { reason: 'x' } }), 404)

  const events = await database.query<{ action: string; actor: string }>('SELECT action, actor FROM audit_events ORDER BY id')
  t.same(events, [{ action: 'device.retired', actor: 'bob' }])
})

t.test('roles: security and asset managers only', async (t) => {
  const { app, auth } = await buildTestApp(t)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/devices', headers: await auth('foi_officer') }), 403)
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices', headers: await auth('foi_officer'), payload: laptop }), 403)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/devices' }), 401)
  t.equal((await app.inject({ method: 'GET', url: '/v1/devices', headers: await auth('security') })).statusCode, 200)
})

t.test('a retried create with the same Idempotency-Key creates one device', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'idempotency-key': 'device-once' }
  const first = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: laptop })
  const second = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: laptop })
  t.equal(first.statusCode, 201)
  t.equal(second.statusCode, 201)
  t.same(second.json(), first.json())
  const count = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM devices')
  t.equal(count[0]!.n, 1)
})
