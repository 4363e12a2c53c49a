import assert from 'node:assert/strict'
import { parse } from 'csv-parse/sync'
import fc from 'fast-check'
import t from 'tap'
import { IMPORT_COLUMNS, parseImport } from '../../src/modules/devices/import/parse.js'
import { CreateDeviceBody } from '../../src/modules/devices/schemas.js'
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
    { asset_tag: 'pa-i0000003', kind: 'tablet', make: 'Apple, Inc.', imei: null, encrypted: false, mdm_enrolled: true, purchased_on: '2022-01-31', cost_pence: 0, status: 'in_stock' },
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
  t.equal(problem.errorCount, 10, 'every error listed, and counted')
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

t.test('an imported device\'s audit event holds what POST /v1/devices records for one', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager', 'importer')
  // Text that needs escaping on the way in (quotes, a backslash, a comma, non-ASCII) and a serial
  // that reads as SQL NULL, and every optional field filled.
  const fields = {
    kind: 'phone', make: 'He said "hi" \\ Ü', model: 'Model, with comma', imei: '490154203237518', encrypted: false,
    mdmEnrolled: true, classification: 'official_sensitive', purchasedOn: '2022-01-31', costPence: 123_456_789_012,
  } as const
  const posted = await app.inject({ method: 'POST', url: '/v1/devices', headers, payload: { assetTag: 'PA-P0000001', serialNumber: 'SN-POSTED', ...fields } })
  t.equal(posted.statusCode, 201)
  const quote = (cell: string) => `"${cell.replace(/"/g, '""')}"`
  const payload = csv(
    row(1),
    ['PA-I0000002', fields.kind, quote(fields.make), quote(fields.model), 'NULL', fields.imei, 'false', 'true', fields.classification, fields.purchasedOn, String(fields.costPence)].join(','),
    row(3, { imei: '', purchased_on: '', cost_pence: '' }),
  )
  const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: { ...headers, 'content-type': 'text/csv' }, payload })
  t.equal(response.statusCode, 201, response.body)

  const events = await database.query<{ entity_id: string; actor: string; request_id: string | null; before: unknown; after: Record<string, unknown> }>(
    "SELECT entity_id, actor, request_id, before, after FROM audit_events WHERE action = 'device.created' ORDER BY id",
  )
  t.equal(events.length, 4)
  const [postedEvent, ...importedEvents] = events
  // One event per device, in file order, and the ids themselves sort in file order.
  const imported = await database.query<{ id: string; asset_tag: string }>("SELECT id, asset_tag FROM devices WHERE asset_tag LIKE 'PA-I%' ORDER BY id")
  t.same(imported.map((device) => device.asset_tag), ['PA-I0000001', 'PA-I0000002', 'PA-I0000003'])
  t.same(importedEvents.map((event) => event.entity_id), imported.map((device) => device.id))
  for (const event of importedEvents) {
    // The event's `after` is the device exactly as the API shows it (toDevice of the stored row).
    const read = await app.inject({ method: 'GET', url: `/v1/devices/${event.entity_id}`, headers })
    t.strictSame(event.after, read.json())
    t.equal(event.actor, 'importer')
    t.equal(event.request_id, response.headers['x-request-id'], 'the import request\'s id')
    t.equal(event.before, null)
  }
  // And holds what POST /v1/devices records for the same values, identifiers and times aside.
  const strip = ({ id: _id, assetTag: _tag, serialNumber: _serial, createdAt: _created, updatedAt: _updated, ...rest }: Record<string, unknown>) => rest
  t.strictSame(Object.keys(importedEvents[1]!.after).sort(), Object.keys(postedEvent!.after).sort())
  t.strictSame(strip(importedEvents[1]!.after), strip(postedEvent!.after))
  t.match(importedEvents[1]!.after, { serialNumber: 'NULL', make: fields.make, costPence: fields.costPence })
  t.match(importedEvents[2]!.after, { imei: null, purchasedOn: null, costPence: null })
})

t.test('a registered identifier in an otherwise good file: every such line named, nothing written', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  await insertDevice(database, { assetTag: 'PA-TAKEN01', serialNumber: 'TAKEN-SERIAL' })
  const payload = csv(
    row(1),
    row(2, { asset_tag: 'pa-taken01' }),
    row(3, { serial_number: 'taken-serial' }),
    row(4, { asset_tag: 'PA-TAKEN01', serial_number: 'Taken-Serial' }),
  )
  const response = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload })
  const problem = assertProblem(t, response, 422)
  t.same(problem.errors.map((e: { row: number; column: string }) => [e.row, e.column]), [[3, 'asset_tag'], [4, 'serial_number'], [5, 'asset_tag'], [5, 'serial_number']])
  t.match(problem.errors[0].message, /already registered/)
  const count = await database.query<{ devices: number; events: number; queued: number }>(
    'SELECT (SELECT count(*)::int FROM devices) AS devices, (SELECT count(*)::int FROM audit_events) AS events, (SELECT count(*)::int FROM audit_unlinked) AS queued',
  )
  t.same(count, [{ devices: 1, events: 0, queued: 0 }])
})

t.test('a bad line after batches were written rolls all of them back', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  await insertDevice(database, { assetTag: 'PA-TAKEN01', serialNumber: 'TAKEN-SERIAL' })
  // Batches of 5,000 go to the database while the rest is checked: the first is written before
  // the last line is read.
  const size = 7_000
  const lines = Array.from({ length: size }, (_, i) => row(i + 1))
  const counts = () =>
    database.query<{ devices: number; events: number; queued: number }>(
      'SELECT (SELECT count(*)::int FROM devices) AS devices, (SELECT count(*)::int FROM audit_events) AS events, (SELECT count(*)::int FROM audit_unlinked) AS queued',
    )
  const badCell = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload: csv(...lines, row(size + 1, { imei: '1' })) })
  t.match(assertProblem(t, badCell, 422).errors, [{ row: size + 2, column: 'imei' }])
  t.same(await counts(), [{ devices: 1, events: 0, queued: 0 }])
  const registered = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload: csv(...lines, row(size + 1, { asset_tag: 'pa-taken01' })) })
  const problem = assertProblem(t, registered, 422)
  t.same(problem.errors.map((e: { row: number; column: string }) => [e.row, e.column]), [[size + 2, 'asset_tag']])
  t.same(await counts(), [{ devices: 1, events: 0, queued: 0 }])
  // The same file without that line goes in whole.
  const good = await app.inject({ method: 'POST', url: '/v1/devices/import', headers: await csvHeaders(auth), payload: csv(...lines) })
  t.same(good.json(), { created: size })
  t.match(await counts(), [{ devices: size + 1, events: size }])
})

/** The import's checks as they were written first: csv-parse, then CreateDeviceBody row by row. */
t.test('characters outside the BMP survive the file being parsed a slice at a time', async (t) => {
  const clef = '\u{1D11E}' // two UTF-16 units
  const models = (shift: number) => Array.from({ length: 1_000 }, (_, i) => (i === 0 ? 'x'.repeat(shift) : '') + clef.repeat(40))
  // Shifted until a clef's two halves sit either side of the first slice's end (64 Ki units).
  let shift = 0
  while (!/[\uD800-\uDBFF]/.test(csv(...models(shift).map((model, i) => row(i + 1, { model })))[65_535]!)) shift++
  const { rows, errors } = await parseImport(csv(...models(shift).map((model, i) => row(i + 1, { model }))))
  t.same(errors, [])
  t.same(rows.model, models(shift), 'every model as written')
})

function referenceCheck(text: string) {
  const options = { bom: true, info: true, skip_empty_lines: true, relax_column_count: true, trim: true }
  let records: { record: string[]; info: { lines: number } }[]
  try {
    records = parse(text, options) as unknown as typeof records
  } catch (error) {
    const line = Number((error as { lines?: unknown }).lines) || 1
    return { rows: [], errors: [{ row: line, column: '', message: `is not readable CSV: ${(error as Error).message.slice(0, 200)}` }] }
  }
  const [header, ...body] = records
  if (!header || header.record.join(',') !== IMPORT_COLUMNS.join(',')) {
    return { rows: [], errors: [{ row: 1, column: '', message: `the header must be exactly: ${IMPORT_COLUMNS.join(',')}` }] }
  }
  const columns: Record<string, string> = {
    assetTag: 'asset_tag', kind: 'kind', make: 'make', model: 'model', serialNumber: 'serial_number', imei: 'imei',
    encrypted: 'encrypted', mdmEnrolled: 'mdm_enrolled', classification: 'classification', purchasedOn: 'purchased_on', costPence: 'cost_pence',
  }
  const boolean = (value: string) => (value.toLowerCase() === 'true' ? true : value.toLowerCase() === 'false' ? false : value)
  const integer = (value: string) => (/^-?[0-9]+$/.test(value) ? Number(value) : value)
  const rows: { line: number; device: Record<string, unknown> }[] = []
  const errors: { row: number; column: string; message: string }[] = []
  const firstTag = new Map<string, number>()
  const firstSerial = new Map<string, number>()
  for (const { record, info } of body) {
    const line = info.lines
    if (record.length !== IMPORT_COLUMNS.length) {
      errors.push({ row: line, column: '', message: `has ${record.length} cells; expected ${IMPORT_COLUMNS.length}` })
      continue
    }
    const [assetTag, kind, make, model, serialNumber, imei, encrypted, mdmEnrolled, classification, purchasedOn, costPence] = record as [string, ...string[]]
    const parsed = CreateDeviceBody.safeParse({
      assetTag, kind, make, model, serialNumber, imei: imei === '' ? null : imei, encrypted: boolean(encrypted!),
      mdmEnrolled: boolean(mdmEnrolled!), classification, purchasedOn: purchasedOn === '' ? null : purchasedOn,
      costPence: costPence === '' ? null : integer(costPence!),
    })
    if (!parsed.success) {
      for (const issue of parsed.error.issues) errors.push({ row: line, column: columns[String(issue.path[0])] ?? '', message: issue.message })
      continue
    }
    const device = parsed.data
    let duplicate = false
    const tagSeen = firstTag.get(device.assetTag.toLowerCase())
    if (tagSeen !== undefined) {
      errors.push({ row: line, column: 'asset_tag', message: `repeats the asset tag of line ${tagSeen}` })
      duplicate = true
    } else firstTag.set(device.assetTag.toLowerCase(), line)
    const serialSeen = firstSerial.get(device.serialNumber.toLowerCase())
    if (serialSeen !== undefined) {
      errors.push({ row: line, column: 'serial_number', message: `repeats the serial number of line ${serialSeen}` })
      duplicate = true
    } else firstSerial.set(device.serialNumber.toLowerCase(), line)
    if (!duplicate) rows.push({ line, device })
  }
  if (body.length === 0) errors.push({ row: 2, column: '', message: 'the file has no devices after the header' })
  return { rows, errors }
}

/** Cells good and bad for each column, and CSV text made of them in the ways files come. */
const future = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10)
const CELLS: Record<(typeof IMPORT_COLUMNS)[number], string[]> = {
  asset_tag: ['PA-T123451', 'pa-t123451', 'HOL-00017', 'PA-X0001', 'ſA-T12345', 'PA-12', '', 'NULL', 'PA-ÄBCD1', 'HOC/LT/000123', 'LAPTOP #12', 'PA@1', 'PA-\u202e1'],
  kind: ['laptop', 'phone', 'Laptop', 'toaster', ''],
  make: ['Dell', 'Apple, Inc.', 'He said "hi"', 'back\\slash', '', 'x'.repeat(101), 'a\u0000b', 'Zürich', '\u202e\u200bx'],
  model: ['Latitude 7440', 'iPad', 'x'.repeat(100), '', 'tab\there'],
  serial_number: ['SN-1', 'sn-1', 'NULL', 'a/b.c_d-e', '-bad', '', 'SN 3', 'IMP-9'],
  imei: ['', '490154203237518', '490154203237519', '49015420323751', 'abc'],
  encrypted: ['true', 'FALSE', 'True', 'yes', '', '1'],
  mdm_enrolled: ['false', 'TRUE', 'no'],
  classification: ['official', 'secret', 'official_sensitive', 'Official', ''],
  purchased_on: ['', '2023-04-01', '2024-02-29', '2023-02-29', '1899-12-31', future, '2023-4-1'],
  cost_pence: ['', '0', '99900', '-5', '1.5', '9007199254740993', 'abc', '007'],
}
const blanks = fc.constantFrom('', '', '', ' ', '\t', '\u00a0')
/** A cell as written: tidy (quoted only when it must be), or with blanks around it and quoted at random. */
const cellArb = (column: (typeof IMPORT_COLUMNS)[number], tidy: boolean) =>
  fc.tuple(tidy ? fc.constant('') : blanks, fc.constantFrom(...CELLS[column]), tidy ? fc.constant('') : blanks, tidy ? fc.constant(false) : fc.boolean())
    .map(([before, cell, after, quoted]) => {
      const text = `${before}${cell}${after}`
      return quoted || /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
    })
const lineArb = (tidy: boolean) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.tuple(...IMPORT_COLUMNS.map((column) => cellArb(column, tidy))).map((cells) => cells.join(',')) },
    { weight: 1, arbitrary: fc.constantFrom('', 'PA-T999999,laptop', `${'a,'.repeat(11)}a`) },
  )
const fileArb = fc
  .record({ bom: fc.boolean(), eol: fc.constantFrom('\n', '\r\n'), tidy: fc.boolean(), end: fc.boolean() })
  .chain(({ bom, eol, tidy, end }) =>
    fc.array(lineArb(tidy), { maxLength: 12 }).map((lines) => `${bom ? '\ufeff' : ''}${[IMPORT_COLUMNS.join(','), ...lines].join(eol)}${end ? eol : ''}`),
  )

t.test('every file is judged as csv-parse and CreateDeviceBody row by row judge it', async () => {
  await fc.assert(
    fc.asyncProperty(fileArb, async (text) => {
      const { rows, errors, errorCount } = await parseImport(text)
      const fields = ['assetTag', 'kind', 'make', 'model', 'serialNumber', 'imei', 'encrypted', 'mdmEnrolled', 'classification', 'purchasedOn', 'costPence'] as const
      const actual = {
        rows: rows.line.map((line, i) => ({ line, device: Object.fromEntries(fields.map((field) => [field, rows[field][i]])) })),
        errors,
      }
      const reference = referenceCheck(text)
      assert.deepStrictEqual(actual, reference)
      assert.equal(errorCount, reference.errors.length)
    }),
    { numRuns: 300 },
  )
})

