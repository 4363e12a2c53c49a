import t from 'tap'
import { IMPORT_COLUMNS } from '../../src/modules/devices/import.js'
import { buildTestApp } from '../helpers/app.js'
import { driverUnderTest } from '../helpers/database.js'
import { insertDevice } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'

const HEADER = IMPORT_COLUMNS.join(',')
const row = (n: number, overrides: Partial<Record<(typeof IMPORT_COLUMNS)[number], string>> = {}) => {
  const cells = {
    asset_tag: `PA-I${String(n).padStart(7, '0')}`,
    kind: 'laptop',
    make: 'Dell',
    model: 'Latitude 7440',
    serial_number: `IMP-${n}`,
    imei: '',
    encrypted: 'true',
    mdm_enrolled: 'false',
    classification: 'official',
    purchased_on: '2023-04-01',
    cost_pence: '99900',
    ...overrides,
  }
  return IMPORT_COLUMNS.map((column) => cells[column]).join(',')
}
const csv = (...lines: string[]) => `${[HEADER, ...lines].join('\n')}\n`
const csvHeaders = async (auth: (role: 'asset_manager') => Promise<{ authorization: string }>) => ({
  ...(await auth('asset_manager')),
  'content-type': 'text/csv',
})

t.test('three good rows are imported, each with its audit event', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const payload = csv(row(1, { imei: '490154203237518', kind: 'phone' }), row(2, { purchased_on: '', cost_pence: '' }), `"pa-i0000003",tablet,"Apple, Inc.",iPad,IMP-3,,FALSE,TRUE,secret,2022-01-31,0`)
  const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload })
  t.equal(response.statusCode, 201)
  t.same(response.json(), { created: 3 })
  const rows = await database.query('SELECT asset_tag, kind, make, imei, encrypted, mdm_enrolled, purchased_on::text, cost_pence::int, status FROM devices ORDER BY asset_tag')
  t.same(rows, [
    { asset_tag: 'PA-I0000001', kind: 'phone', make: 'Dell', imei: '490154203237518', encrypted: true, mdm_enrolled: false, purchased_on: '2023-04-01', cost_pence: 99900, status: 'in_stock' },
    { asset_tag: 'PA-I0000002', kind: 'laptop', make: 'Dell', imei: null, encrypted: true, mdm_enrolled: false, purchased_on: null, cost_pence: null, status: 'in_stock' },
    { asset_tag: 'PA-I0000003', kind: 'tablet', make: 'Apple, Inc.', imei: null, encrypted: false, mdm_enrolled: true, purchased_on: '2022-01-31', cost_pence: 0, status: 'in_stock' },
  ])
  const events = await database.query<{ n: number }>("SELECT count(DISTINCT entity_id)::int AS n FROM audit_events WHERE action = 'device.created'")
  t.equal(events[0]!.n, 3)
})

t.test('a bad row in the middle imports nothing and is named by its line', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const payload = csv(row(1), row(2, { imei: '490154203237519' }), row(3))
  const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload })
  const problem = assertProblem(t, response, 422)
  t.match(problem.errors, [{ row: 3, column: 'imei', message: /Luhn/ }])
  t.equal(problem.errors.length, 1)
  t.same(await database.query('SELECT id FROM devices'), [])
  t.same(await database.query('SELECT id FROM audit_events'), [])
})

t.test('every bad row is listed: bad values, duplicates in the file and against the register', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  await insertDevice(database, { assetTag: 'PA-TAKEN01', serialNumber: 'TAKEN-SERIAL' })
  const future = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10)
  const payload = csv(
    row(1), // line 2: good
    row(2, { kind: 'toaster' }), // line 3
    row(3, { cost_pence: '-5' }), // line 4
    row(4, { purchased_on: future }), // line 5
    row(5, { asset_tag: 'pa-i0000001' }), // line 6: repeats line 2's tag
    row(6, { serial_number: 'imp-1' }), // line 7: repeats line 2's serial
    row(7, { asset_tag: 'pa-taken01' }), // line 8: already registered
    row(8, { serial_number: 'taken-serial' }), // line 9: already registered
    row(9, { encrypted: 'yes', classification: 'top' }), // line 10: two bad cells
    'PA-I9999999,laptop', // line 11: too few cells
    row(10), // line 12: good
  )
  const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload })
  const problem = assertProblem(t, response, 422)
  t.same(
    problem.errors.map((e: { row: number; column: string }) => [e.row, e.column]),
    [[3, 'kind'], [4, 'cost_pence'], [5, 'purchased_on'], [6, 'asset_tag'], [7, 'serial_number'], [8, 'asset_tag'], [9, 'serial_number'], [10, 'encrypted'], [10, 'classification'], [11, '']],
  )
  t.match(problem.errors[3].message, /line 2/)
  t.match(problem.detail, /9 line/)
  const count = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM devices')
  t.equal(count[0]!.n, 1, 'only the fixture')
})

t.test('the header must be exactly the contract columns; only text/csv is read', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const headers = await csvHeaders(auth)
  const wrongHeader = await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload: `asset_tag,kind\n${row(1)}\n` })
  t.match(assertProblem(t, wrongHeader, 422).errors, [{ row: 1 }])
  const empty = await app.inject({ method: 'POST', url: '/v1/devices/import', headers, payload: `${HEADER}\n` })
  assertProblem(t, empty, 422)
  const json = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: { ...headers, 'content-type': 'application/json' }, payload: '{}' })
  assertProblem(t, json, 415)
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/devices/import', headers: { ...(await auth('foi_officer' as 'asset_manager')), 'content-type': 'text/csv' }, payload: csv(row(1)) }), 403)
  // Other routes keep their 1 MiB JSON limit and do not read CSV.
  const csvElsewhere = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: csv(row(1)) })
  assertProblem(t, csvElsewhere, 415)
})

t.test('a large file imports in one request', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  // The full 100,000 rows on PostgreSQL; PGlite (single-threaded, in memory) gets a smaller file.
  const size = driverUnderTest === 'postgres' ? 100_000 : 2_000
  const lines = Array.from({ length: size }, (_, i) => row(i + 1))
  const payload = csv(...lines)
  t.comment(`${size} rows, ${(payload.length / 1024 / 1024).toFixed(1)} MiB`)
  const started = performance.now()
  const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload })
  const seconds = (performance.now() - started) / 1000
  t.equal(response.statusCode, 201, response.statusCode === 201 ? 'created' : response.body.slice(0, 500))
  t.same(response.json(), { created: size })
  t.comment(`imported ${size} rows in ${seconds.toFixed(1)} s: ${Math.round(size / seconds)} rows/s (${driverUnderTest})`)
  const count = await database.query<{ devices: number; events: number }>(
    "SELECT (SELECT count(*)::int FROM devices) AS devices, (SELECT count(*)::int FROM audit_events WHERE action = 'device.created') AS events",
  )
  t.same(count, [{ devices: size, events: size }])
})
