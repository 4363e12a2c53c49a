/**
 * Asset tags as organisations write them: by default any short plain text of letters, digits,
 * spaces and `-_./#`; with ASSET_TAG_PATTERN, the register's own scheme as well, on create, on
 * PATCH and in the import, the error quoting an example. Stocktake scans report what was read and
 * are never held to the scheme.
 */
import t from 'tap'
import { IMPORT_COLUMNS } from '../../src/modules/devices/import/parse.js'
import { buildTestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'

const device = (assetTag: string, n: number) => ({
  assetTag, kind: 'laptop', make: 'Dell', model: 'Latitude 7440', serialNumber: `SN-TAG-${n}`, encrypted: true, mdmEnrolled: true,
  classification: 'official',
})
const line = (assetTag: string, n: number) => `${assetTag},laptop,Dell,Latitude 7440,SN-CSV-${n},,true,true,official,,`
const csv = (...lines: string[]) => `${[IMPORT_COLUMNS.join(','), ...lines].join('\n')}\n`

const REAL_SCHEMES = ['IM-ABC123-0', 'PERF-1', '12345', 'HOC/LT/000123', 'PA/2019/0042', 'HOC-LT-000123', 'LAPTOP #12', 'PA-T100001']

t.test('tags of real schemes are accepted as written, by POST and by the import; bad ones refused naming the field', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  let n = 0
  for (const tag of REAL_SCHEMES) {
    const response = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: device(` ${tag} `, ++n) })
    t.equal(response.statusCode, 201, `${tag}: ${response.body.slice(0, 200)}`)
    t.equal(response.json().assetTag, tag, `${tag}: trimmed, otherwise as written`)
  }
  const imported = await app.inject({
    method: 'POST', url: '/v1/devices/import', headers: { ...headers, 'content-type': 'text/csv' },
    payload: csv(...REAL_SCHEMES.map((tag, i) => line(`x${tag.toLowerCase()}`, i))),
  })
  t.equal(imported.statusCode, 201, imported.body.slice(0, 300))

  const bad: [string, RegExp][] = [
    ['PA@12', /only letters, digits, spaces and/],
    ['PA;DROP', /only letters/],
    ['x'.repeat(65), /at most 64/],
    ['  ', /blank/],
    ['PA-\u202e1234', /bidirectional/],
    ['PA-\u20661234', /bidirectional/],
    ['PA-1\u0000', /control/],
    ['PA-1\n2', /control/],
  ]
  for (const [tag, message] of bad) {
    const problem = assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: device(tag, ++n) }), 400)
    t.same(problem.errors.map((e: { path: string }) => e.path), ['body.assetTag'], JSON.stringify(tag))
    t.match(problem.errors[0].message, message, JSON.stringify(tag))
  }
  const [count] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM devices')
  t.equal(count!.n, 2 * REAL_SCHEMES.length, 'only the good ones')

  // Unique regardless of case, as before.
  const again = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: device('hoc/lt/000123', n + 1) })
  t.equal(assertProblem(t, again, 409).errors[0].path, 'body.assetTag')
})

t.test('ASSET_TAG_PATTERN is enforced on create, on PATCH and in the import, quoting the example', async (t) => {
  const { app, auth, database } = await buildTestApp(t, {
    config: { ASSET_TAG_PATTERN: 'HOC-(LT|PH)-\\d{6}', ASSET_TAG_EXAMPLE: 'HOC-LT-000123' },
  })
  const headers = await auth('asset_manager')
  const counts = async () =>
    (await database.query<{ devices: number; events: number }>(
      'SELECT (SELECT count(*) FROM devices)::int AS devices, (SELECT count(*) FROM audit_events)::int AS events',
    ))[0]

  const refused = assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: device('PA-T100001', 1) }), 400)
  t.same(refused.errors, [{ path: 'body.assetTag', message: "must follow this register's asset-tag scheme, e.g. HOC-LT-000123" }])
  t.match(refused.detail, /body\.assetTag/)
  // The whole tag must match, not a part of it.
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: device('HOC-LT-0001234', 2) }), 400)
  t.same(await counts(), { devices: 0, events: 0 })

  const created = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: device(' HOC-PH-000042 ', 3) })
  t.equal(created.statusCode, 201, created.body)
  const id = created.json().id

  const patch = (assetTag: string) =>
    app.inject({ method: 'PATCH', url: `/v1/devices/${id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { assetTag } })
  const badPatch = assertProblem(t, await patch('hoc-ph-000042'), 400)
  t.same(badPatch.errors, [{ path: 'body.assetTag', message: "must follow this register's asset-tag scheme, e.g. HOC-LT-000123" }], 'case counts')
  t.same(await database.query('SELECT asset_tag, version FROM devices'), [{ asset_tag: 'HOC-PH-000042', version: 1 }], 'unchanged')
  // A PATCH that leaves the tag alone is not judged by the scheme.
  const other = await app.inject({ method: 'PATCH', url: `/v1/devices/${id}`, headers: { ...headers, 'if-match': '"1"' }, payload: { make: 'HP' } })
  t.equal(other.statusCode, 200)
  const goodPatch = await app.inject({ method: 'PATCH', url: `/v1/devices/${id}`, headers: { ...headers, 'if-match': '"2"' }, payload: { assetTag: 'HOC-LT-000043' } })
  t.equal(goodPatch.statusCode, 200)
  t.equal(goodPatch.json().assetTag, 'HOC-LT-000043')

  const file = csv(line('HOC-LT-000100', 1), line('PA-T100001', 2), line('HOC-LT-000102', 3), line('HOC-LT-1', 4))
  const imported = assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices/import', headers: { ...headers, 'content-type': 'text/csv' }, payload: file }), 422)
  t.same(imported.errors, [
    { path: 'body.line[3].asset_tag', row: 3, column: 'asset_tag', message: "must follow this register's asset-tag scheme, e.g. HOC-LT-000123" },
    { path: 'body.line[5].asset_tag', row: 5, column: 'asset_tag', message: "must follow this register's asset-tag scheme, e.g. HOC-LT-000123" },
  ])
  t.equal(imported.errorCount, 2)
  t.same(await counts(), { devices: 1, events: 3 }, 'nothing more written')
  const good = await app.inject({
    method: 'POST', url: '/v1/devices/import', headers: { ...headers, 'content-type': 'text/csv' }, payload: csv(line('HOC-LT-000100', 1), line('HOC-PH-000101', 2)),
  })
  t.same(good.json(), { created: 2 })

  // A scan reports what the scanner read: a tag outside the scheme is an unknown device, not an error.
  const stocktake = await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Spring count' } })
  t.equal(stocktake.statusCode, 201)
  const scans = await app.inject({
    method: 'POST', url: `/v1/stocktakes/${stocktake.json().id}/scans`, headers,
    payload: { scans: [{ assetTag: 'PA-T100001', seenAt: new Date().toISOString() }, { assetTag: 'hoc-lt-000100', seenAt: new Date().toISOString() }] },
  })
  t.equal(scans.statusCode, 200, scans.body)
  t.same(scans.json(), { accepted: 2, matched: 1, unknown: 1 })
})
