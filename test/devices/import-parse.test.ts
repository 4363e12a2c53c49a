/**
 * The import file's parsing and checks on their own: no database, no app. What the route makes of
 * these (the 422, the register lookups, the writing) is in import.test.ts.
 */
import t from 'tap'
import { emptyRows, IMPORT_COLUMNS, PARSE_SLICE, parseImport } from '../../src/modules/devices/import/parse.js'
import { CreateDeviceBody } from '../../src/modules/devices/schemas.js'

type Column = (typeof IMPORT_COLUMNS)[number]

const HEADER = IMPORT_COLUMNS.join(',')
const HEADER_ERROR = { row: 1, column: '', message: `the header must be exactly: ${HEADER}` }
const GOOD: Record<Column, string> = {
  asset_tag: 'PA-T0000001',
  kind: 'laptop',
  make: 'Dell',
  model: 'Latitude 7440',
  serial_number: 'SN-1',
  imei: '',
  encrypted: 'true',
  mdm_enrolled: 'false',
  classification: 'official',
  purchased_on: '2023-04-01',
  cost_pence: '99900',
}
const cells = (n: number, overrides: Partial<Record<Column, string>> = {}): Record<Column, string> => ({
  ...GOOD,
  asset_tag: `PA-T${String(n).padStart(7, '0')}`,
  serial_number: `SN-${n}`,
  ...overrides,
})
const row = (n: number, overrides: Partial<Record<Column, string>> = {}) => {
  const all = cells(n, overrides)
  return IMPORT_COLUMNS.map((column) => all[column]).join(',')
}
const csv = (...lines: string[]) => `${[HEADER, ...lines].join('\n')}\n`

t.test('good rows come out in columns, one array per field, with their line numbers', async (t) => {
  const { rows, errors } = await parseImport(
    csv(
      row(1),
      row(2, { kind: 'phone', imei: '490154203237518', encrypted: 'FALSE', mdm_enrolled: 'True', purchased_on: '', cost_pence: '' }),
      // Quoted, blanks around cells, lower case tag (stored upper case), a comma inside a cell.
      ' "pa-t0000003" , tablet ,"Apple, Inc.",iPad,SN-3,,false,true,secret,2022-01-31,0',
    ),
  )
  t.same(errors, [])
  t.strictSame(rows, {
    line: [2, 3, 4],
    assetTag: ['PA-T0000001', 'PA-T0000002', 'PA-T0000003'],
    kind: ['laptop', 'phone', 'tablet'],
    make: ['Dell', 'Dell', 'Apple, Inc.'],
    model: ['Latitude 7440', 'Latitude 7440', 'iPad'],
    serialNumber: ['SN-1', 'SN-2', 'SN-3'],
    imei: [null, '490154203237518', null],
    encrypted: [true, false, false],
    mdmEnrolled: [false, true, true],
    classification: ['official', 'official', 'secret'],
    purchasedOn: ['2023-04-01', null, '2022-01-31'],
    costPence: [99_900, null, 0],
  })
})

t.test('good rows are appended to the columns passed in', async (t) => {
  const rows = emptyRows()
  const result = await parseImport(csv(row(1), row(2, { kind: 'toaster' }), row(3)), rows)
  t.equal(result.rows, rows, 'the same object')
  t.same(rows.line, [2, 4])
  t.same(rows.assetTag, ['PA-T0000001', 'PA-T0000003'])
})

t.test('the header must be exactly the contract columns', async (t) => {
  for (const [name, text] of [
    ['empty file', ''],
    ['only empty lines', '\n\n\r\n'],
    ['too few columns', `asset_tag,kind\n${row(1)}\n`],
    ['one column too many', `${HEADER},notes\n${row(1)},x\n`],
    ['columns out of order', `${[...IMPORT_COLUMNS].reverse().join(',')}\n${row(1)}\n`],
    ['header in capitals', `${HEADER.toUpperCase()}\n${row(1)}\n`],
    ['a line before the header', `devices\n${csv(row(1))}`],
    ['binary', '\u0000\u0001\u00ff\u00fe'],
  ] as const) {
    const { rows, errors } = await parseImport(text)
    t.same(errors, [HEADER_ERROR], name)
    t.same(rows.line, [], `${name}: no rows`)
  }
  // A byte order mark, blanks around and quotes about the names are not part of the names.
  for (const header of [`\ufeff${HEADER}`, IMPORT_COLUMNS.map((c) => ` "${c}" `).join(',')]) {
    const { rows, errors } = await parseImport(`${header}\n${row(1)}\n`)
    t.same(errors, [], JSON.stringify(header.slice(0, 12)))
    t.same(rows.line, [2])
  }
})

t.test('a header and no devices', async (t) => {
  const noDevices = [{ row: 2, column: '', message: 'the file has no devices after the header' }]
  t.same((await parseImport(HEADER)).errors, noDevices, 'no line end')
  t.same((await parseImport(`${HEADER}\n`)).errors, noDevices)
  t.same((await parseImport(`${HEADER}\r\n\r\n\n`)).errors, noDevices, 'only empty lines after it')
  // A file whose every row is bad is not "no devices".
  t.same((await parseImport(csv(row(1, { kind: 'toaster' })))).errors.map((e) => e.column), ['kind'])
})

t.test('a bad cell gets the schema\'s message, under its column', async (t) => {
  const future = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10)
  const cases: [Partial<Record<Column, string>>, Column, RegExp][] = [
    [{ asset_tag: 'PA-12' }, 'asset_tag', /2-5 letters, a hyphen/],
    [{ kind: 'toaster' }, 'kind', /./],
    [{ make: '' }, 'make', /./],
    [{ serial_number: '-bad' }, 'serial_number', /starting with a letter or digit/],
    [{ imei: '490154203237519' }, 'imei', /Luhn/],
    [{ encrypted: 'yes' }, 'encrypted', /./],
    [{ mdm_enrolled: '1' }, 'mdm_enrolled', /./],
    [{ classification: 'Official' }, 'classification', /./],
    [{ purchased_on: future }, 'purchased_on', /must not be in the future/],
    [{ purchased_on: '2023-02-29' }, 'purchased_on', /./],
    [{ cost_pence: '-5' }, 'cost_pence', /must not be negative/],
    [{ cost_pence: '1.5' }, 'cost_pence', /whole number of pence/],
  ]
  for (const [overrides, column, pattern] of cases) {
    const { rows, errors } = await parseImport(csv(row(1), row(2, overrides), row(3)))
    const name = JSON.stringify(overrides)
    t.equal(errors.length, 1, name)
    t.same(errors[0] && [errors[0].row, errors[0].column], [3, column], name)
    t.match(errors[0]?.message, pattern, name)
    t.same(rows.line, [2, 4], `${name}: the other rows are good`)
  }
})

t.test('a row with several bad cells gets every message, exactly as POST /v1/devices gives them', async (t) => {
  const bad = cells(1, { kind: 'toaster', encrypted: 'yes', classification: 'top', cost_pence: 'abc' })
  const { errors } = await parseImport(csv(IMPORT_COLUMNS.map((column) => bad[column]).join(',')))
  const parsed = CreateDeviceBody.safeParse({
    assetTag: bad.asset_tag, kind: bad.kind, make: bad.make, model: bad.model, serialNumber: bad.serial_number, imei: null,
    encrypted: bad.encrypted, mdmEnrolled: false, classification: bad.classification, purchasedOn: bad.purchased_on, costPence: bad.cost_pence,
  })
  t.notOk(parsed.success)
  t.same(
    errors,
    parsed.error!.issues.map((issue) => ({ row: 2, column: { kind: 'kind', encrypted: 'encrypted', classification: 'classification', costPence: 'cost_pence' }[String(issue.path[0])], message: issue.message })),
  )
  t.same(errors.map((e) => e.column), ['kind', 'encrypted', 'classification', 'cost_pence'])
})

t.test('a row with too few or too many cells', async (t) => {
  const { rows, errors } = await parseImport(csv('PA-T9999999,laptop', `${row(2)},extra`, row(3)))
  t.same(errors, [
    { row: 2, column: '', message: `has 2 cells; expected ${IMPORT_COLUMNS.length}` },
    { row: 3, column: '', message: `has ${IMPORT_COLUMNS.length + 1} cells; expected ${IMPORT_COLUMNS.length}` },
  ])
  t.same(rows.line, [4])
})

t.test('an asset tag or serial number twice in the file: every later line names the first', async (t) => {
  const { rows, errors } = await parseImport(
    csv(
      row(1), // line 2
      row(2, { asset_tag: 'pa-t0000001' }), // line 3: line 2's tag, another case
      row(3, { serial_number: 'sn-1' }), // line 4: line 2's serial
      row(4, { asset_tag: 'PA-T0000001', serial_number: 'SN-1' }), // line 5: both
      row(5, { kind: 'toaster' }), // line 6: bad, so its tag is not taken
      row(5), // line 7: good
      row(6, { asset_tag: 'PA-T0000005' }), // line 8: line 7's tag (not line 6's)
    ),
  )
  t.same(errors, [
    { row: 3, column: 'asset_tag', message: 'repeats the asset tag of line 2' },
    { row: 4, column: 'serial_number', message: 'repeats the serial number of line 2' },
    { row: 5, column: 'asset_tag', message: 'repeats the asset tag of line 2' },
    { row: 5, column: 'serial_number', message: 'repeats the serial number of line 2' },
    { row: 6, column: 'kind', message: errors[4]?.message },
    { row: 8, column: 'asset_tag', message: 'repeats the asset tag of line 7' },
  ])
  t.equal(errors[4]?.column, 'kind')
  t.same(rows.line, [2, 7], 'only the first of each')
  t.same(rows.serialNumber, ['SN-1', 'SN-5'])
})

t.test('line numbers count empty lines and either line end', async (t) => {
  for (const eol of ['\n', '\r\n']) {
    const text = [HEADER, '', row(1), '', '', row(2, { kind: 'toaster' }), row(3), '', row(1, { serial_number: 'SN-9' })].join(eol)
    const { rows, errors } = await parseImport(text)
    t.same(
      errors.map((e) => [e.row, e.column]),
      [[6, 'kind'], [9, 'asset_tag']],
      JSON.stringify(eol),
    )
    t.equal(errors[1]?.message, 'repeats the asset tag of line 3')
    t.same(rows.line, [3, 7])
  }
})

t.test('a file that is not CSV gets one error, at the line where reading failed', async (t) => {
  const stray = await parseImport(csv(row(1), row(2, { kind: 'toaster' }), 'PA-T0000003,"lap"top'))
  t.equal(stray.errors.length, 1, 'the bad row before it is not listed')
  t.match(stray.errors[0], { row: 4, column: '', message: /^is not readable CSV: Invalid Closing Quote/ })

  const unclosed = await parseImport(`${HEADER}\n\n"PA-T0000001,laptop\n${row(2)}\n`)
  t.equal(unclosed.errors.length, 1)
  t.match(unclosed.errors[0], { row: 4, column: '', message: /^is not readable CSV: Quote Not Closed/ })

  const first = await parseImport(`"asset_tag\n`)
  t.match(first.errors, [{ row: 1, column: '', message: /^is not readable CSV: Quote Not Closed/ }])
  t.equal(first.errors.length, 1, 'not also the header error')
})

t.test('a character outside the BMP split by the 64 KiB slice boundary survives', async (t) => {
  const clef = '\u{1D11E}' // two UTF-16 units
  const file = (shift: number) => {
    const models = Array.from({ length: 1_000 }, (_, i) => (i === 0 ? 'x'.repeat(shift) : '') + clef.repeat(40))
    return { models, text: csv(...models.map((model, i) => row(i + 1, { model }))) }
  }
  // Shifted until a clef's first half is the last unit of the first slice.
  let shift = 0
  while (!/[\uD800-\uDBFF]/.test(file(shift).text[PARSE_SLICE - 1]!)) shift++
  const { models, text } = file(shift)
  t.equal(text.slice(PARSE_SLICE - 1, PARSE_SLICE + 1), clef, 'the pair straddles the boundary')
  t.ok(text.length > 2 * PARSE_SLICE, 'more than two slices')
  const { rows, errors } = await parseImport(text)
  t.same(errors, [])
  t.equal(rows.line.length, 1_000)
  t.ok(rows.model.every((model, i) => model === models[i]), 'every model as written')
})

t.test('progress is reported every 2,000 rows with the errors so far', async (t) => {
  const lines = Array.from({ length: 4_500 }, (_, i) => row(i + 1))
  const clean: number[] = []
  await parseImport(csv(...lines), emptyRows(), (errors) => clean.push(errors))
  t.same(clean, [0, 0])
  const bad: number[] = []
  lines[2_500] = row(2_501, { kind: 'toaster' })
  const { rows } = await parseImport(csv(...lines), emptyRows(), (errors) => bad.push(errors))
  t.same(bad, [0, 1])
  t.equal(rows.line.length, 4_499)
})
