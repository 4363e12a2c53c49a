import { Readable } from 'node:stream'
import { text } from 'node:stream/consumers'
import { parse } from 'csv-parse/sync'
import { stringify } from 'csv-stringify'
import t from 'tap'
import { csvCells, csvPart, FOI_COLUMNS, type FoiRow, neutraliseCell, openFoiCsv, openFoiJson, toCsv } from '../../src/modules/exports/foi.js'
import type { FoiRecord } from '../../src/modules/exports/schemas.js'
import { resolvePeriod } from '../../src/modules/reports/periods.js'
import { deviceKind, incidentKind, incidentStatus, locationCategory, remoteWipe } from '../../src/db/schema.js'
import { negotiateExportType } from '../../src/modules/exports/routes.js'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice, insertIncident } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'

const HEADER = 'reference,date_reported,item_type,lost_or_stolen,location_category,encrypted,personal_data_at_risk,remote_wipe,recovered,date_recovered,status'
const URL_2023 = '/v1/exports/foi/lost-stolen?year=2023'

t.test('Accept negotiation: CSV by default, JSON when preferred, nothing else', async (t) => {
  const cases: [string | undefined, string | undefined][] = [
    [undefined, 'text/csv'],
    ['', 'text/csv'],
    ['*/*', 'text/csv'],
    ['text/*', 'text/csv'],
    ['text/csv', 'text/csv'],
    ['application/json', 'application/json'],
    ['application/*', 'application/json'],
    ['application/json, */*;q=0.8', 'application/json'],
    ['application/json;q=0.5, text/csv', 'text/csv'],
    ['text/csv;q=0.4, application/json;q=0.9', 'application/json'],
    ['application/json, */*', 'application/json'],
    ['text/csv;q=0, */*', 'application/json'],
    ['TEXT/CSV', 'text/csv'],
    ['text/html', undefined],
    ['text/html, application/xhtml+xml;q=0.9', undefined],
    ['*/*;q=0', undefined],
    ['application/json;q=0, text/csv;q=0', undefined],
    ['garbage', undefined],
  ]
  for (const [accept, expected] of cases) t.equal(negotiateExportType(accept), expected, `Accept: ${accept}`)
})

t.test('CSV injection: formula-looking cells get a leading apostrophe', async (t) => {
  for (const danger of ['=SUM(A1)', '+1', '-1', '@cmd', '\tx', '\rx']) t.equal(neutraliseCell(danger), `'${danger}`)
  for (const safe of ['INC-2023-0001', '2023-01-01', 'yes', '', "'already"]) t.equal(neutraliseCell(safe), safe)
  // Through the export's own encoder: every column is neutralised, and the CSV stays parseable.
  const row: FoiRow = {
    reference: '=HYPERLINK("http://x")', date_reported: '2023-01-01', item_type: '+laptop', lost_or_stolen: 'lost',
    location_category: '@home', encrypted: true, personal_data_at_risk: false, remote_wipe: '-1+1',
    recovered: false, date_recovered: null, status: 'open',
  }
  const csv = await text(toCsv(Readable.from([csvPart([row])])))
  t.equal(csv, `${HEADER}\r\n"'=HYPERLINK(""http://x"")",2023-01-01,'+laptop,lost,'@home,yes,no,'-1+1,no,,open\r\n`)
  const records = parse(csv) as string[][]
  t.same(records[1]!.filter((cell) => /^[=+\-@\t\r]/.test(cell)), [], 'no cell starts with a formula character')
})

t.test('the CSV encoder writes byte for byte what csv-stringify writes, whatever the cells hold', async (t) => {
  // The encoder writes plain rows itself and hands any other to csv-stringify: both must give the
  // bytes the export gave when every row went through a csv-stringify stream.
  const cells = ['', 'plain', 'a,b', 'say "hi"', '"', 'line\nbreak', 'cr\rinside', 'crlf\r\ninside', 'ends\r', '\n', '=1+2', '-5',
    "'quoted", 'ünïcødé €', ' spaced ', '\t', 'a,"b"\r\n', '@x,y']
  const plain: FoiRow = {
    reference: 'INC-2023-0001', date_reported: '2023-01-01', item_type: 'laptop', lost_or_stolen: 'lost', location_category: 'home',
    encrypted: true, personal_data_at_risk: false, remote_wipe: 'requested', recovered: false, date_recovered: null, status: 'closed',
  }
  const textColumns = ['reference', 'date_reported', 'item_type', 'lost_or_stolen', 'location_category', 'remote_wipe', 'date_recovered', 'status'] as const
  // Each cell in each text column of an otherwise plain row, then plain rows with other booleans.
  const rows: FoiRow[] = textColumns.flatMap((column) => cells.map((cell) => ({ ...plain, [column]: cell })))
  rows.push(plain, { ...plain, encrypted: false, personal_data_at_risk: true, recovered: true, date_recovered: '2023-02-01' })
  const reference = Readable.from(rows.map(csvCells)).pipe(
    stringify({ header: true, columns: [...FOI_COLUMNS], record_delimiter: '\r\n', eof: true }),
  )
  const expected = await text(reference)
  t.equal(await text(toCsv(Readable.from([csvPart(rows.slice(0, 70)), csvPart(rows.slice(70))]))), expected)
  t.equal(await text(toCsv(Readable.from([]))), `${HEADER}\r\n`, 'no rows: the header alone')
})

t.test('the export: exact columns, order, formatting, no personal data or identifiers, same bytes twice, JSON = CSV', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const person = await insertCustodian(database, { name: 'Zebedee Quartermaine', email: 'zebedee@example.org', constituency: 'Quuxton' })
  const secret = {
    assetTag: 'PA-SECRETTAG-4242', serialNumber: 'SERIAL-XYZZY-9911', make: 'Frobozzco', model: 'Magnificat 9000', imei: '490154203237518',
  }
  const device = await insertDevice(database, { ...secret, kind: 'phone', status: 'stolen' })
  const freeText = {
    circumstances: 'Snatched outside Plughworth Station',
    locationDescription: 'Platform nine-and-three-quarters',
    policeReference: 'MET-CAD-31337',
  }
  // Inserted out of order; 1 July 00:30 BST is 30 June 23:30 UTC.
  const summer = await insertIncident(database, {
    reportedAt: '2023-06-30T23:30:00Z', kind: 'stolen', deviceId: device.id, custodianId: person.id, deviceKind: 'phone',
    locationCategory: 'abroad', personalDataAtRisk: true, remoteWipe: 'confirmed', deviceEncrypted: false, ...freeText,
  })
  const recovered = await insertIncident(database, {
    reportedAt: '2023-03-26T00:30:00Z', reference: 'INC-2023-0502', status: 'recovered', recoveredAt: '2023-04-01T23:30:00Z', custodianId: person.id,
    recoveryNotes: 'Found by Mrs Gribble behind the sofa',
  })
  const closed = await insertIncident(database, {
    reportedAt: '2023-03-26T09:00:00Z', reference: 'INC-2023-0501', status: 'closed', closeReason: 'Written off by Sir Humphrey', deviceKind: 'removable_media',
  })
  await insertIncident(database, { reportedAt: '2024-01-01T00:00:00Z' }) // next year
  await insertIncident(database, { reportedAt: '2022-12-31T23:59:59Z' }) // last year

  const headers = await auth('foi_officer')
  const response = await app.inject({ method: 'GET', url: URL_2023, headers })
  t.equal(response.statusCode, 200)
  t.match(String(response.headers['content-type']), /^text\/csv/)
  t.equal(response.headers['content-disposition'], 'attachment; filename="lost-stolen-2023.csv"')
  const lines = response.body.split('\r\n')
  t.equal(lines[0], HEADER, 'exact header')
  t.same(lines.slice(1), [
    `${closed.reference},2023-03-26,removable_media,lost,transit,yes,no,not_requested,no,,closed`,
    `${recovered.reference},2023-03-26,laptop,lost,transit,yes,no,not_requested,yes,2023-04-02,recovered`,
    `${summer.reference},2023-07-01,phone,stolen,abroad,no,yes,confirmed,no,,open`,
    '',
  ], 'ordered by UK-local date reported then reference (not time of day); dates UK local; yes/no booleans')

  for (const leak of [
    person.name!, person.id, person.email!, 'Quuxton', device.id, ...Object.values(secret), ...Object.values(freeText),
    'Mrs Gribble', 'Sir Humphrey', summer.id,
  ]) {
    t.notOk(response.body.includes(leak), `CSV does not contain ${leak}`)
  }

  const again = await app.inject({ method: 'GET', url: URL_2023, headers })
  t.equal(again.rawPayload.compare(response.rawPayload), 0, 'byte-identical the second time')

  const json = await app.inject({ method: 'GET', url: URL_2023, headers: { ...headers, accept: 'application/json' } })
  t.equal(json.statusCode, 200)
  t.match(String(json.headers['content-type']), /^application\/json/)
  t.equal(json.headers['content-disposition'], 'attachment; filename="lost-stolen-2023.json"')
  const items = json.json() as Record<string, unknown>[]
  for (const leak of [person.name!, person.id, device.id, ...Object.values(secret), ...Object.values(freeText)]) {
    t.notOk(json.body.includes(leak), `JSON does not contain ${leak}`)
  }
  const asCells = items.map((item) =>
    Object.values(item).map((value) => (value === true ? 'yes' : value === false ? 'no' : value === null ? '' : String(value))),
  )
  t.same(asCells, (parse(response.body) as string[][]).slice(1), 'JSON rows equal CSV rows')
  t.same(Object.keys(items[0]!), [
    'reference', 'dateReported', 'itemType', 'lostOrStolen', 'locationCategory', 'encrypted', 'personalDataAtRisk',
    'remoteWipe', 'recovered', 'dateRecovered', 'status',
  ])
  t.equal(FOI_COLUMNS.join(','), HEADER)
})

t.test('file names per period; empty periods; 406; roles', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const headers = await auth('security')
  const disposition = async (query: string, accept = 'text/csv') => {
    const response = await app.inject({ method: 'GET', url: `/v1/exports/foi/lost-stolen?${query}`, headers: { ...headers, accept } })
    t.equal(response.statusCode, 200, query)
    return { name: response.headers['content-disposition'], body: response.body }
  }
  t.same(await disposition('year=2023&basis=financial'), {
    name: 'attachment; filename="lost-stolen-fy2023-24.csv"', body: `${HEADER}\r\n`,
  }, 'an empty period is the header alone')
  t.same(await disposition('from=2023-01-01&to=2023-07-01', 'application/json'), {
    name: 'attachment; filename="lost-stolen-2023-01-01_2023-07-01.json"', body: '[]\n',
  })

  const html = await app.inject({ method: 'GET', url: URL_2023, headers: { ...headers, accept: 'text/html' } })
  t.match(assertProblem(t, html, 406).detail, /text\/csv or application\/json/)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/exports/foi/lost-stolen?year=2023&from=2023-01-01', headers }), 400)
  assertProblem(t, await app.inject({ method: 'GET', url: URL_2023, headers: await auth('asset_manager') }), 403)
  assertProblem(t, await app.inject({ method: 'GET', url: URL_2023 }), 401)
})

t.test('the CSV download (PostgreSQL\'s COPY, or csvPart on PGlite) is byte for byte csvPart of the JSON download\'s rows: every enum value, both booleans, a reference past 9999', async (t) => {
  const { database } = await buildTestApp(t)
  // Every value of every enum column, both booleans, open/recovered/closed, a reference past 9999.
  const values = <T>(list: readonly T[], i: number) => list[i % list.length]!
  for (let i = 0; i < 24; i++) {
    await insertIncident(database, {
      reportedAt: new Date(Date.UTC(2023, i % 12, 1 + i, 12)).toISOString(),
      reference: `INC-2023-${String(i === 23 ? 12345 : i + 1).padStart(4, '0')}`,
      kind: values(incidentKind.enumValues, i),
      status: values(incidentStatus.enumValues, i),
      deviceKind: values(deviceKind.enumValues, i),
      locationCategory: values(locationCategory.enumValues, i),
      remoteWipe: values(remoteWipe.enumValues, i),
      personalDataAtRisk: i % 2 === 0,
      deviceEncrypted: i % 3 !== 0,
    })
  }
  const period = resolvePeriod({ year: '2023' })
  const limits = { maxMs: 60_000 }
  const csv = await text((await openFoiCsv(database, period, limits)).body)
  const json = JSON.parse(await text((await openFoiJson(database, period, limits)).body)) as FoiRecord[]
  const fromJson: FoiRow[] = json.map((r) => ({
    reference: r.reference, date_reported: r.dateReported, item_type: r.itemType, lost_or_stolen: r.lostOrStolen,
    location_category: r.locationCategory, encrypted: r.encrypted, personal_data_at_risk: r.personalDataAtRisk,
    remote_wipe: r.remoteWipe, recovered: r.recovered, date_recovered: r.dateRecovered, status: r.status,
  }))
  t.equal(csv, await text(toCsv(Readable.from([csvPart(fromJson)]))), `${database.driver}: the CSV is the JSON's rows, byte for byte`)
  const records = (parse(csv) as string[][]).slice(1)
  t.same(new Set(records.map((r) => r[5])), new Set(['yes', 'no']), 'encrypted: both booleans, as yes/no')
  t.same(new Set(records.map((r) => r[6])), new Set(['yes', 'no']), 'personal data at risk: both')
  t.same(records.map((r) => r[8] === 'yes'), records.map((r) => r[10] === 'recovered'), 'recovered: yes exactly for the recovered')
  t.ok(records.some((r) => r[0] === 'INC-2023-12345'), 'a reference past 9999')
  t.equal(csv.split('\r\n').length, 24 + 2, 'header, 24 rows, and the final CRLF')
  t.notOk(/[^\r]\n/.test(csv), 'every line ends CRLF')
})
