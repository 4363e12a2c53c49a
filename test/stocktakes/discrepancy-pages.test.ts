/**
 * `GET /v1/stocktakes/{id}/discrepancies/{class}`: each class a keyset-paged list whose pages,
 * walked to the end, are exactly that list of the whole document, open or closed; a walk that
 * spans the close goes on in the frozen document; bad classes, cursors, limits and ids are refused.
 */
import { PgDialect } from 'drizzle-orm/pg-core'
import t, { type Test } from 'tap'
import type { CursorKey } from '../../src/http/pagination.js'
import { frozenPageSql } from '../../src/modules/stocktakes/discrepancies.js'
import { runMigrations } from '../../src/db/migrate.js'
import { buildTestApp } from '../helpers/app.js'
import { createDatabaseMigratedBefore } from '../helpers/database.js'
import { insertCustodian, insertDevice, insertIncident } from '../helpers/fixtures.js'
import { walkPages } from '../helpers/pages.js'
import { assertProblem } from '../helpers/problem.js'
import { postScans } from './helpers.js'

const SEEN = '2025-03-04T10:00:00.000Z'
const CLASSES = ['missing', 'unknown', 'reportedMissingButSeen', 'retiredButSeen'] as const
const NO_SUCH_ID = '0190d3c0-0000-7000-8000-000000000000'

interface PlanNode {
  'Node Type': string
  'Index Name'?: string
  'Actual Rows'?: number
  Plans?: PlanNode[]
}
const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)]

/** A register with several items in every class, in an order that differs from the order they were made in. */
async function fixture(t: Test) {
  const built = await buildTestApp(t)
  const { app, auth, database } = built
  const headers = await auth('asset_manager')
  const holder = await insertCustodian(database)
  for (const tag of ['PA-M0003', 'AB-M0001', 'ZZ-M0002', 'PA-M0001', 'HOL-M0007']) await insertDevice(database, { assetTag: tag })
  await insertDevice(database, { assetTag: 'PA-M0002', status: 'assigned', currentCustodianId: holder.id })
  const lost = []
  for (const tag of ['PA-L0002', 'AB-L0001', 'PA-L0001']) lost.push(await insertDevice(database, { assetTag: tag }))
  await insertIncident(database, { deviceId: lost[0]!.id, kind: 'stolen' })
  await insertIncident(database, { deviceId: lost[1]!.id, kind: 'lost' })
  // A closed incident leaves its device lost, with no open incident to show.
  await insertIncident(database, { deviceId: lost[2]!.id, kind: 'lost', status: 'closed' })
  for (const tag of ['PA-R0002', 'PA-R0001', 'AA-R0003']) await insertDevice(database, { assetTag: tag, status: 'retired' })

  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Count' } })).json().id as string
  const scans = [
    ...['PA-L0002', 'AB-L0001', 'PA-L0001', 'PA-R0002', 'PA-R0001', 'AA-R0003'].map((assetTag) => ({ assetTag, seenAt: SEEN })),
    // Unknown identifiers: grouped and ordered regardless of case, asset tags before serial numbers.
    ...['zz-0001', 'ZZ-0001', 'Ab-0002', 'aa-0003', 'AC-0004'].map((assetTag) => ({ assetTag, seenAt: SEEN })),
    ...['sn-x1', 'SN-X0', 'Sn-X2'].map((serialNumber) => ({ serialNumber, seenAt: SEEN })),
  ]
  t.equal((await postScans(app, headers, id, scans)).statusCode, 200)
  return { ...built, headers, id }
}

t.test('each class walked a page at a time is that list of the whole document, open and closed', async (t) => {
  const { app, headers, id, database } = await fixture(t)
  const whole = async () => (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies`, headers })).json()
  const open = await whole()
  t.same(CLASSES.map((name) => open[name].length), [6, 7, 3, 3], 'several items in every class')

  const walk = async (name: string, limit: number) => {
    const { pages, items } = await walkPages(app, `/v1/stocktakes/${id}/discrepancies/${name}?limit=${limit}`, headers)
    t.ok(pages.every((page) => page.length <= limit), `${name}: pages of at most ${limit}`)
    return items
  }
  for (const name of CLASSES) {
    t.strictSame(await walk(name, 2), open[name], `open, ${name}: the pages together are the document's list, in order`)
    t.strictSame(await walk(name, 200), open[name], `open, ${name}: one page when it fits`)
  }
  const first = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies/missing`, headers })).json()
  t.equal(first.items.length, 6, 'limit 50 by default')
  t.equal(first.nextCursor, null)

  // A walk that spans the close goes on in the frozen document.
  const before = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies/missing?limit=4`, headers })).json()
  t.equal((await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/close`, headers })).statusCode, 200)
  // The register changes after closing: none of it reaches the closed stocktake's pages.
  await database.query(`UPDATE devices SET status = 'retired' WHERE asset_tag = 'AB-M0001'`)
  await insertDevice(database, { assetTag: 'AA-M0000' })
  await insertDevice(database, { assetTag: 'ZZ-0001' })
  const after = []
  for (let cursor = before.nextCursor as string | null; cursor !== null; ) {
    const page = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies/missing?limit=1&cursor=${encodeURIComponent(cursor)}`, headers })).json()
    after.push(...page.items)
    cursor = page.nextCursor
  }
  t.strictSame([...before.items, ...after], open.missing, 'pages before and after the close make the whole list')

  const frozen = await whole()
  t.strictSame(frozen, open, 'the whole document is as it was at closing')
  for (const name of CLASSES) {
    t.strictSame(await walk(name, 2), open[name], `closed, ${name}: the pages show what the stocktake showed at closing`)
  }
})

t.test("a closed stocktake's page is a range of its findings' index, however deep", async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  await database.query(`
    INSERT INTO devices (id, asset_tag, kind, make, model, serial_number, encrypted, mdm_enrolled, classification, status, created_by)
    SELECT lpad(to_hex(n), 32, '0')::uuid, 'FZ-' || lpad(n::text, 5, '0'), 'laptop', 'Dell', 'Latitude', 'FZ-SN-' || n, true, true, 'official',
           'in_stock', 'fixture'
    FROM generate_series(1, 3000) AS n`)
  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Deep' } })).json().id as string
  t.equal((await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/close`, headers })).statusCode, 200)
  await database.query('ANALYZE stocktake_findings')

  const deep = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies/missing?limit=200&cursor=${encodeURIComponent(
    (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies/missing?limit=200`, headers })).json().nextCursor,
  )}`, headers })).json()
  t.same([deep.items[0].assetTag, deep.items.at(-1).assetTag], ['FZ-00201', 'FZ-00400'], 'the second page')

  const page = { discrepancyClass: 'missing' as const, after: ['FZ-02500', '00000000-0000-0000-0000-0000000009c4'] as CursorKey, rows: 51 }
  const query = new PgDialect().sqlToQuery(frozenPageSql(id, page))
  const [explained] = await database.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${query.sql}`, query.params)
  const nodes = nodesOf(explained!['QUERY PLAN'][0].Plan)
  t.ok(nodes.some((node) => node['Index Name'] === 'stocktake_findings_pkey'), 'the primary key is used')
  t.notOk(nodes.some((node) => node['Node Type'] === 'Sort'), 'nothing is sorted')
  t.ok(nodes.every((node) => (node['Actual Rows'] ?? 0) <= 51), 'no node reads more rows than the page')
})

t.test('a stocktake closed before migration 0005 keeps its frozen discrepancies, whole and in pages', async (t) => {
  const database = await createDatabaseMigratedBefore(t, '0005')
  const stocktakeId = '0190d3c0-0000-7000-8000-00000000a001'
  const device = (tag: string, n: number) => ({
    id: `0190d3c0-0000-7000-8000-00000000b00${n}`, assetTag: tag, serialNumber: `SN-${n}`, kind: 'laptop', status: 'in_stock',
    currentCustodianId: null, lastSeenAt: null,
  })
  const document = {
    missing: [device('AB-1', 1), device('PA-2', 2), device('ZZ-3', 3)],
    unknown: [{ identifier: 'Odd-1', identifierType: 'asset_tag', scans: 2 }, { identifier: 'sn-9', identifierType: 'serial_number', scans: 1 }],
    reportedMissingButSeen: [{ ...device('LO-4', 4), status: 'lost', incident: null }],
    retiredButSeen: [],
  }
  await database.query(
    `INSERT INTO stocktakes (id, name, status, closed_at, frozen_discrepancies, created_by) VALUES ($1, 'Before', 'closed', now(), $2, 'fixture')`,
    [stocktakeId, JSON.stringify(document)],
  )
  await runMigrations(database)
  const { app, auth } = await buildTestApp(t, { database })
  const headers = await auth('asset_manager')
  t.strictSame((await app.inject({ method: 'GET', url: `/v1/stocktakes/${stocktakeId}/discrepancies`, headers })).json(), document, 'the whole document as it was')
  for (const name of CLASSES) {
    const { items } = await walkPages(app, `/v1/stocktakes/${stocktakeId}/discrepancies/${name}?limit=1`, headers)
    t.strictSame(items, document[name], `${name}, a page at a time`)
  }
  t.same((await app.inject({ method: 'GET', url: `/v1/stocktakes/${stocktakeId}`, headers })).json().counts,
    { scans: 0, missing: 3, unknown: 2, reportedMissingButSeen: 1, retiredButSeen: 0 })
})

t.test('ordering: devices by asset tag, unknown identifiers by kind then identifier in any case', async (t) => {
  const { app, headers, id } = await fixture(t)
  const items = async (name: string) => (await walkPages<Record<string, string>>(app, `/v1/stocktakes/${id}/discrepancies/${name}?limit=3`, headers)).items
  t.same((await items('missing')).map((d) => d.assetTag), ['AB-M0001', 'HOL-M0007', 'PA-M0001', 'PA-M0002', 'PA-M0003', 'ZZ-M0002'])
  t.same(
    (await items('unknown')).map((u) => `${u.identifierType}:${u.identifier}:${u.scans}`),
    ['asset_tag:aa-0003:1', 'asset_tag:Ab-0002:1', 'asset_tag:AC-0004:1', 'asset_tag:ZZ-0001:2', 'serial_number:SN-X0:1', 'serial_number:sn-x1:1', 'serial_number:Sn-X2:1'],
  )
  const lost = await items('reportedMissingButSeen')
  t.same(lost.map((d) => d.assetTag), ['AB-L0001', 'PA-L0001', 'PA-L0002'])
  t.same(lost.map((d) => (d.incident === null ? null : typeof d.incident)), ['object', null, 'object'], 'the open incident, or null')
  t.same((await items('retiredButSeen')).map((d) => d.assetTag), ['AA-R0003', 'PA-R0001', 'PA-R0002'])
})

t.test('refused: an unknown class, stocktake or cursor, a bad limit, other parameters, other roles', async (t) => {
  const { app, headers, id, auth } = await fixture(t)
  const get = (url: string, as: Record<string, string> = headers) => app.inject({ method: 'GET', url, headers: as })

  const unknownClass = assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/found`), 400)
  t.equal(unknownClass.errors[0].path, 'params.class')
  t.match(unknownClass.errors[0].message, /missing, unknown, reportedMissingButSeen, retiredButSeen/)
  assertProblem(t, await get(`/v1/stocktakes/${NO_SUCH_ID}/discrepancies/missing`), 404)
  assertProblem(t, await get(`/v1/stocktakes/${NO_SUCH_ID}/discrepancies/unknown?limit=1`), 404)
  assertProblem(t, await get('/v1/stocktakes/not-a-uuid/discrepancies/missing'), 404)

  for (const limit of ['0', '201', 'x']) {
    t.equal(assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/missing?limit=${limit}`), 400).errors[0].path, 'querystring.limit', `limit=${limit}`)
  }
  t.equal(assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/missing?sort=asc`), 400).errors[0].path, 'querystring.sort')
  const forged = Buffer.from(JSON.stringify(['x'])).toString('base64url')
  t.equal(assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/missing?cursor=${forged}`), 400).errors[0].path, 'querystring.cursor')
  // A device cursor on the unknown identifiers: well formed, but not one this list issued.
  const deviceCursor = (await get(`/v1/stocktakes/${id}/discrepancies/missing?limit=1`)).json().nextCursor
  t.equal(assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/unknown?cursor=${deviceCursor}`), 400).errors[0].path, 'querystring.cursor')
  const unknownCursor = (await get(`/v1/stocktakes/${id}/discrepancies/unknown?limit=1`)).json().nextCursor
  t.equal(assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/missing?cursor=${unknownCursor}`), 400).errors[0].path, 'querystring.cursor')

  assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/missing`, await auth('foi_officer')), 403)
  assertProblem(t, await get(`/v1/stocktakes/${id}/discrepancies/missing`, {}), 401)
  t.equal((await get(`/v1/stocktakes/${id}/discrepancies/missing`, await auth('security'))).statusCode, 200, 'security reads them as the whole document')
})
