/**
 * The demo tells the register's founding story; this test holds it to that story. A smaller
 * parliament than `npm run demo` loads (same incidents, fewer members) keeps it quick.
 */
import t from 'tap'
import { luhnCheckDigit, STORY_YEAR } from '../../src/demo/dataset.js'
import { loadDemoData } from '../../src/demo/load.js'
import { buildTestApp } from '../helpers/app.js'

t.test('IMEIs the demo makes pass the Luhn check', async (t) => {
  t.equal(luhnCheckDigit('49015420323751'), 8, 'the textbook IMEI 490154203237518')
})

t.test('the demo year: 27 lost or stolen, 2 found, 25 outstanding; loaded once', async (t) => {
  const { app, token, auth, database } = await buildTestApp(t)
  const loader = await token('security', 'demo-loader')
  const result = await loadDemoData(app, loader, { mps: 60, peers: 40, staff: 20, offices: 5 })
  t.ok(result.loaded)
  t.comment(`loaded ${result.custodians} custodians, ${result.devices} devices, ${result.incidents} incidents`)

  const summary = await app.inject({ method: 'GET', url: `/v1/reports/risk-summary?year=${STORY_YEAR}`, headers: await auth('security') })
  t.equal(summary.statusCode, 200)
  const body = summary.json()
  t.match(body.totals, { reported: 27, recovered: 2, outstanding: 25, recoveryRate: 0.0741 })
  t.ok(body.repeatCustodians.length >= 2, 'two custodians lost kit twice')

  const unreturned = await app.inject({ method: 'GET', url: '/v1/reports/unreturned', headers: await auth('asset_manager') })
  t.equal(unreturned.statusCode, 200)
  t.ok(unreturned.json().items.length > 0, 'members who left still hold kit')

  const verdict = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: await auth('security') })
  t.match(verdict.json(), { ok: true, firstBadId: null })

  const [before] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')
  const again = await loadDemoData(app, loader)
  t.notOk(again.loaded, 'a second run leaves a loaded register alone')
  const [after] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')
  t.same(after, before)
})
