/**
 * A stocktake at the size of the whole estate: 50,000 devices and 50,000 scans on PostgreSQL
 * (TEST_DATABASE_URL set); 2,000 of each on PGlite, to keep the suite fast. Times are printed,
 * never asserted.
 */
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { TEST_DATABASE_URL } from '../helpers/database.js'
import { walkPages } from '../helpers/pages.js'
import { postScans } from './helpers.js'

const DEVICES = TEST_DATABASE_URL ? 50_000 : 2_000
const BATCH = 5_000

t.test(`a stocktake of ${DEVICES} devices and ${DEVICES} scans`, async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  // Every 50th device is retired; the rest in stock.
  await database.query(
    `INSERT INTO devices (id, asset_tag, kind, make, model, serial_number, encrypted, mdm_enrolled, classification, status,
       retired_at, created_by)
     SELECT gen_random_uuid(), 'V-' || n, 'laptop', 'Dell', 'X', 'VS-' || n, true, true, 'official',
       CASE WHEN n % 50 = 0 THEN 'retired' ELSE 'in_stock' END::device_status, NULL, 'fixture'
     FROM generate_series(1, $1::int) n`,
    [DEVICES],
  )
  await database.query('ANALYZE devices')
  const id = (await app.inject({ method: 'POST', url: '/v1/stocktakes', headers, payload: { name: 'Whole estate' } })).json().id

  // 98% of devices scanned (half by serial, in lower case), plus 2% unknown identifiers.
  const seenCount = Math.round(DEVICES * 0.98)
  const scans = Array.from({ length: DEVICES }, (_, i) => {
    const n = i + 1
    if (n > seenCount) return { assetTag: `UNKNOWN-${n}`, seenAt: '2025-05-01T09:00:00Z' }
    return n % 2 ? { assetTag: `V-${n}`, seenAt: '2025-05-01T09:00:00Z' } : { serialNumber: `vs-${n}`, seenAt: '2025-05-01T09:00:00Z' }
  })
  let started = performance.now()
  for (let start = 0; start < scans.length; start += BATCH) {
    const response = await postScans(app, headers, id, scans.slice(start, start + BATCH))
    t.equal(response.statusCode, 200)
  }
  t.comment(`${DEVICES} scans in batches of ${BATCH}: ${Math.round(performance.now() - started)} ms`)

  const retiredSeen = Math.floor(seenCount / 50)
  const expected = {
    scans: DEVICES,
    missing: DEVICES - seenCount - (Math.floor(DEVICES / 50) - retiredSeen),
    unknown: DEVICES - seenCount,
    reportedMissingButSeen: 0,
    retiredButSeen: retiredSeen,
  }
  started = performance.now()
  const discrepancies = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}/discrepancies`, headers })).json()
  t.comment(`discrepancies: ${Math.round(performance.now() - started)} ms`)
  t.same(
    {
      missing: discrepancies.missing.length,
      unknown: discrepancies.unknown.length,
      reportedMissingButSeen: discrepancies.reportedMissingButSeen.length,
      retiredButSeen: discrepancies.retiredButSeen.length,
    },
    { missing: expected.missing, unknown: expected.unknown, reportedMissingButSeen: 0, retiredButSeen: expected.retiredButSeen },
  )
  // Each class a page of 200 at a time: together, the document's lists.
  const walkAll = async (when: string) => {
    for (const name of ['missing', 'unknown', 'retiredButSeen'] as const) {
      started = performance.now()
      const { pages, items } = await walkPages(app, `/v1/stocktakes/${id}/discrepancies/${name}?limit=200`, headers)
      t.comment(`${when}, ${name}: ${pages.length} pages of 200 in ${Math.round(performance.now() - started)} ms`)
      t.same(items, discrepancies[name], `${when}, ${name}: the pages are the document's list`)
    }
  }
  await walkAll('open')

  started = performance.now()
  const read = (await app.inject({ method: 'GET', url: `/v1/stocktakes/${id}`, headers })).json()
  t.comment(`counts: ${Math.round(performance.now() - started)} ms`)
  t.same(read.counts, expected)

  started = performance.now()
  const closed = await app.inject({ method: 'POST', url: `/v1/stocktakes/${id}/close`, headers })
  t.comment(`close (freezing the discrepancies): ${Math.round(performance.now() - started)} ms`)
  t.same(closed.json().counts, expected)
  await walkAll('closed')
  const [seen] = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM devices WHERE last_seen_at IS NOT NULL`)
  t.equal(seen!.n, seenCount, 'every scanned device has its lastSeenAt')
})
