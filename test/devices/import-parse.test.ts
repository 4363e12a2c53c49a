/**
 * The import file's parsing and checks on their own: no database, no app. What the route makes of
 * these (the 422, the register lookups, the writing) is in import.test.ts.
 */
import assert from 'node:assert/strict'
import { parse as parseCsv } from 'csv-parse/sync'
import fc from 'fast-check'
import t from 'tap'
import { csvRecords } from '../../src/modules/devices/import/csv.js'
import { emptyRows, IMPORT_COLUMNS, MAX_LISTED_ERRORS, parseImport, readImportFile } from '../../src/modules/devices/import/parse.js'
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
      // Quoted, blanks around cells, lower case tag (kept as written), a comma inside a cell.
      ' "pa-t0000003" , tablet ,"Apple, Inc.",iPad,SN-3,,false,true,secret,2022-01-31,0',
    ),
  )
  t.same(errors, [])
  t.strictSame(rows, {
    line: [2, 3, 4],
    assetTag: ['PA-T0000001', 'PA-T0000002', 'pa-t0000003'],
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
  const result = await parseImport(csv(row(1), row(2, { kind: 'toaster' }), row(3)), { rows })
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
    [{ asset_tag: 'PA@12' }, 'asset_tag', /only letters, digits, spaces and/],
    [{ asset_tag: 'PA-\u202e21' }, 'asset_tag', /bidirectional/],
    [{ make: 'Dell\u0007' }, 'make', /control characters/],
    [{ model: 'X\u2067' }, 'model', /bidirectional/],
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
  t.match(unclosed.errors[0], { row: 3, column: '', message: /^is not readable CSV: Quote Not Closed/ }, 'the line the quote opens on')

  const opening = await parseImport(csv(row(1), 'PA-T0000002,lap"top,Dell'))
  t.match(opening.errors, [{ row: 3, column: '', message: /^is not readable CSV: Invalid Opening Quote/ }])

  const first = await parseImport(`"asset_tag\n`)
  t.match(first.errors, [{ row: 1, column: '', message: /^is not readable CSV: Quote Not Closed/ }])
  t.equal(first.errors.length, 1, 'not also the header error')
})

t.test('characters outside the BMP, quotes, commas and line breaks in quoted cells survive', async (t) => {
  const clef = '\u{1D11E}' // two UTF-16 units
  const models = Array.from({ length: 1_000 }, (_, i) => `M${clef.repeat(i % 40)}${i % 3 === 0 ? 'He said "hi", twice' : ''}`)
  const text = csv(...models.map((model, i) => row(i + 1, { model: `"${model.replace(/"/g, '""')}"` })))
  const { rows, errors } = await parseImport(text)
  t.same(errors, [])
  t.equal(rows.line.length, 1_000)
  t.ok(rows.model.every((model, i) => model === models[i]), 'every model as written')
})

t.test('progress is reported every 2,000 rows with the errors so far', async (t) => {
  const lines = Array.from({ length: 4_500 }, (_, i) => row(i + 1))
  const clean: number[] = []
  await parseImport(csv(...lines), { progress: (errors) => clean.push(errors) })
  t.same(clean, [0, 0])
  const bad: number[] = []
  lines[2_500] = row(2_501, { kind: 'toaster' })
  const { rows } = await parseImport(csv(...lines), { progress: (errors) => bad.push(errors) })
  t.same(bad, [0, 1])
  t.equal(rows.line.length, 4_499)
})

t.test('errors are counted without end, and the first 100 of them kept in file order', async (t) => {
  // Lines 2..301 bad in one cell; every third also repeats line 2's serial, once line 2 is good.
  const lines = [row(1), ...Array.from({ length: 300 }, (_, i) => row(i + 2, { kind: 'toaster' })), 'a', 'b,c', row(1, { serial_number: 'SN-X' })]
  const { rows, errors, errorCount, errorLines } = await parseImport(csv(...lines))
  t.equal(errors.length, MAX_LISTED_ERRORS)
  t.same(errors.map((e) => e.row), Array.from({ length: MAX_LISTED_ERRORS }, (_, i) => i + 3), 'the first, in file order')
  t.ok(errors.every((e) => e.column === 'kind'))
  t.equal(errorCount, 303, '300 bad kinds, two lines of the wrong width, one repeated tag')
  t.equal(errorLines, 303)
  t.same(rows.line, [2])

  // A row with several bad cells counts each of them, listed or not.
  const several = row(0, { kind: 'toaster', encrypted: 'yes', classification: 'top' })
  const many = await parseImport(csv(...Array.from({ length: 60 }, () => several)))
  t.equal(many.errorCount, 180)
  t.equal(many.errorLines, 60)
  t.equal(many.errors.length, MAX_LISTED_ERRORS)
  t.same(many.errors.slice(0, 4).map((e) => [e.row, e.column]), [[2, 'kind'], [2, 'encrypted'], [2, 'classification'], [3, 'kind']])
  t.same(many.errors.at(-1) && [many.errors.at(-1)!.row, many.errors.at(-1)!.column], [35, 'kind'], '33 lines of three, then one more')
})

t.test('the register\'s asset-tag scheme: a tag that breaks it is named, with the rule\'s message, before other cells', async (t) => {
  const assetTagRule = (tag: string) => (/^PA-T\d+$/.test(tag) ? undefined : 'must follow the scheme, e.g. PA-T0000001')
  const { rows, errors, errorCount } = await parseImport(
    csv(row(1), row(2, { asset_tag: 'HOC-1' }), row(3, { asset_tag: 'HOC-2', kind: 'toaster' }), row(4, { asset_tag: 'PA@1' }), row(5)),
    { assetTagRule },
  )
  t.same(errors.map((e) => [e.row, e.column, e.message.slice(0, 24)]), [
    [3, 'asset_tag', 'must follow the scheme, '],
    [4, 'asset_tag', 'must follow the scheme, '],
    [4, 'kind', errors[2]!.message.slice(0, 24)],
    [5, 'asset_tag', 'may contain only letters'],
  ], 'a tag the schema refuses is not also judged by the scheme')
  t.equal(errorCount, 4)
  t.same(rows.line, [2, 6])
})

t.test('a file that is not UTF-8 is refused at its first such line, never read with U+FFFD', async (t) => {
  const good = Buffer.from(csv(row(1), row(2, { make: 'Zürich \u{1D11E}' })))
  t.same(readImportFile(good), { text: good.toString('utf8') }, 'UTF-8, non-ASCII included')
  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good])
  t.same(readImportFile(withBom), { text: `\ufeff${good.toString('utf8')}` }, 'a byte order mark is kept for the parser to drop')
  const cases: [string, Buffer, number][] = [
    ['Latin-1 £ on line 3', Buffer.concat([Buffer.from(`${HEADER}\n${row(1)}\n`), Buffer.from([0xa3]), Buffer.from(`${row(2)}\n`)]), 3],
    ['a truncated sequence at the end of line 2', Buffer.concat([Buffer.from(`${HEADER}\n${row(1)}`), Buffer.from([0xe2, 0x82]), Buffer.from(`\n${row(2)}\n`)]), 2],
    ['an encoded surrogate on the last line, no line end', Buffer.concat([Buffer.from(`${HEADER}\n${row(1)}\r\n`), Buffer.from([0xed, 0xa0, 0x80])]), 3],
    ['an overlong NUL in the header', Buffer.concat([Buffer.from('asset_tag'), Buffer.from([0xc0, 0x80])]), 1],
    ['lines ending in a lone CR, as the reader counts them', Buffer.concat([Buffer.from(`${HEADER}\r${row(1)}\r`), Buffer.from([0xa3]), Buffer.from(`\r${row(2)}`)]), 3],
    ['CRLF, LF and CR mixed', Buffer.concat([Buffer.from(`${HEADER}\r\n${row(1)}\n${row(2)}\r`), Buffer.from([0xa3])]), 4],
  ]
  for (const [name, bytes, line] of cases) {
    const read = readImportFile(bytes)
    t.same(read, { refused: { errors: [{ row: line, column: '', message: 'is not valid UTF-8 text (save the file as UTF-8)' }], errorCount: 1, errorLines: 1 } }, name)
  }
})

/**
 * The reader against csv-parse, which the import used before and whose dialect it keeps: the same
 * records from every file, and unreadable where csv-parse refuses. Lines are compared where no
 * cell holds a line break (csv-parse numbers a record by its last line, and counts a CRLF inside
 * quotes twice; the reader numbers it by its first). One difference is known and left out: after
 * a closing quote csv-parse skips only the first byte of a blank of several (a no-break space),
 * and refuses the file; the reader drops such a blank as it drops any other.
 */
t.test('the CSV reader reads every file as csv-parse does', async () => {
  const blank = fc.constantFrom('', '', ' ', '\t', '\u00a0', '  ')
  const asciiBlank = fc.constantFrom('', '', ' ', '\t', '  ')
  const eolArb = fc.constantFrom('\n', '\r\n', '\r')
  const plain = fc.array(fc.constantFrom('a', 'z', 'é', '😀', ' '), { maxLength: 5 }).map((parts) => parts.join(''))
  const quotedText = (eol: string) => fc.array(fc.constantFrom('a', ',', '"', ' ', 'é', eol), { maxLength: 6 }).map((parts) => parts.join(''))
  const cellArb = (eol: string, breaks: boolean) =>
    fc.oneof(
      fc.tuple(blank, plain, blank).map(([a, v, b]) => `${a}${v}${b}`),
      fc.tuple(blank, breaks ? quotedText(eol) : quotedText(''), asciiBlank).map(([a, v, b]) => `${a}"${v.replace(/"/g, '""')}"${b}`),
    )
  const tidyFile = fc
    .record({ eol: eolArb, bom: fc.boolean(), end: fc.boolean(), breaks: fc.boolean() })
    .chain(({ eol, bom, end, breaks }) =>
      fc
        .array(fc.oneof({ weight: 5, arbitrary: fc.array(cellArb(eol, breaks), { minLength: 1, maxLength: 4 }).map((cells) => cells.join(',')) }, { weight: 1, arbitrary: blank }), { maxLength: 8 })
        .map((lines) => ({ text: `${bom ? '\ufeff' : ''}${lines.join(eol)}${end ? eol : ''}`, lines: !breaks })),
    )
  // Anything at all from the characters that matter, most of it unreadable.
  const soup = fc.array(fc.constantFrom('a', ' ', '\t', ',', '"', '""', '\n', '\r\n', '\r', 'é'), { maxLength: 30 }).map((parts) => ({ text: parts.join(''), lines: false }))

  await fc.assert(
    fc.asyncProperty(fc.oneof(tidyFile, soup), async ({ text, lines }) => {
      let expected: { record: string[]; info: { lines: number } }[] | undefined
      try {
        expected = parseCsv(text, { bom: true, info: true, skip_empty_lines: true, relax_column_count: true, trim: true }) as unknown as typeof expected
      } catch {
        expected = undefined
      }
      const items = [...csvRecords(text)].filter((item) => !('pause' in item))
      const unreadable = items.some((item) => 'unreadable' in item)
      assert.equal(unreadable, expected === undefined, `readable: ${JSON.stringify(text)}`)
      if (!expected) return
      const records = items as { record: string[]; line: number }[]
      assert.deepStrictEqual(records.map((item) => item.record), expected.map((item) => item.record), JSON.stringify(text))
      if (lines) assert.deepStrictEqual(records.map((item) => item.line), expected.map((item) => item.info.lines), `lines of ${JSON.stringify(text)}`)
    }),
    { numRuns: 5_000 },
  )
})

t.test('the CSV reader: lines, blanks, quotes and where it stops', async (t) => {
  const read = (text: string) => [...csvRecords(text)]
  t.same(read('\ufeffa, b ,"c"\r\n\r\n  \r\n" d ""e"" ",\r\nf'), [
    { record: ['a', 'b', 'c'], width: 3, line: 1 },
    { record: [' d "e" ', ''], width: 2, line: 4 },
    { record: ['f'], width: 1, line: 5 },
  ])
  t.same(read('a,"x\ny\nz"\nb'), [{ record: ['a', 'x\ny\nz'], width: 2, line: 1 }, { record: ['b'], width: 1, line: 4 }], 'a record is named by the line it starts on')
  t.same(read('"a"\u00a0,b'), [{ record: ['a', 'b'], width: 2, line: 1 }], 'a no-break space after a closing quote is a blank')
  t.same(read(''), [])
  t.same(read('\n\n \t\n'), [], 'only blank lines')
  t.match(read('x\n"a"b').at(-1), { unreadable: { line: 2, message: /^Invalid Closing Quote/ } })
  t.match(read('x\n\n"a\nb').at(-1), { unreadable: { line: 3, message: /^Quote Not Closed/ } })
  t.match(read('x\nab"c').at(-1), { unreadable: { line: 2, message: /^Invalid Opening Quote/ } })
  t.same([...csvRecords('a,b,c,d\n,,,,,', { maxCells: 2 })], [{ record: ['a', 'b'], width: 4, line: 1 }, { record: ['', ''], width: 6, line: 2 }], 'cells past the first few counted, not kept')
  const long = [...csvRecords(`${'\n'.repeat(3 * 1024 * 1024)}a`)]
  t.same(long.filter((item) => !('pause' in item)), [{ record: ['a'], width: 1, line: 3 * 1024 * 1024 + 1 }])
  t.ok(long.filter((item) => 'pause' in item).length >= 2, 'pauses in a long stretch without records')
})
