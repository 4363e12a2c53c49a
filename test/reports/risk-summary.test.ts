import t from 'tap'
import { computeRisk } from '../../src/modules/incidents/risk.js'
import { buildTestApp } from '../helpers/app.js'
import { type IncidentFixture, insertCustodian, insertIncident } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'

const LOCATIONS = ['parliamentary_estate', 'constituency_office', 'home', 'transit', 'abroad', 'other'] as const

/** percentile_cont: linear interpolation between the closest ranks. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  const position = p * (sorted.length - 1)
  const low = Math.floor(position)
  const high = Math.ceil(position)
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low)
}

t.test('27 reported, 2 recovered: totals, breakdowns that add up, exposure, risk ranking, repeat custodians', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const alice = await insertCustodian(database, { name: 'Alice Repeat' })
  const bob = await insertCustodian(database, { name: 'Bob Twice' })
  const carol = await insertCustodian(database, { name: 'Carol Once' })
  const custodianOf = (i: number) => (i < 3 ? alice.id : i < 5 ? bob.id : i === 5 ? carol.id : null)

  const fixtures: IncidentFixture[] = []
  for (let i = 0; i < 27; i++) {
    const reportedAt = new Date(Date.UTC(2023, i % 12, 10 + Math.floor(i / 12), 12, 0, 0))
    fixtures.push({
      reportedAt: reportedAt.toISOString(),
      occurredAt: i % 3 === 2 ? null : new Date(reportedAt.getTime() - (i + 1) * 3_600_000).toISOString(),
      kind: i % 3 === 0 ? 'stolen' : 'lost',
      status: i === 4 || i === 17 ? 'recovered' : 'open',
      locationCategory: LOCATIONS[i % LOCATIONS.length],
      deviceEncrypted: i % 5 !== 0,
      deviceMdmEnrolled: i % 6 !== 0,
      deviceClassification: i % 7 === 0 ? 'secret' : i % 7 === 1 ? 'official_sensitive' : 'official',
      personalDataAtRisk: i % 4 === 0,
      icoReportedAt: i === 8 ? reportedAt.toISOString() : null,
      remoteWipe: i % 2 === 0 ? 'confirmed' : 'requested',
      custodianId: custodianOf(i),
    })
  }
  const rows: Awaited<ReturnType<typeof insertIncident>>[] = []
  for (const fixture of fixtures) rows.push(await insertIncident(database, fixture))
  // Outside the period on either side: never counted.
  await insertIncident(database, { reportedAt: '2022-12-31T23:59:59Z', custodianId: carol.id })
  await insertIncident(database, { reportedAt: '2024-01-01T00:00:00Z', custodianId: carol.id })

  const response = await app.inject({ method: 'GET', url: '/v1/reports/risk-summary?year=2023', headers: await auth('security') })
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.same(body.period, { from: '2023-01-01', to: '2024-01-01', basis: 'calendar' })

  const open = fixtures.filter((f) => f.status === 'open')
  t.same(body.totals, {
    reported: 27,
    lost: fixtures.filter((f) => f.kind === 'lost').length,
    stolen: fixtures.filter((f) => f.kind === 'stolen').length,
    recovered: 2,
    closed: 0,
    outstanding: 25,
    recoveryRate: 0.0741,
  })

  t.equal(body.byMonth.length, 12, 'every month of the year')
  t.same(body.byMonth.map((m: { month: string }) => m.month), Array.from({ length: 12 }, (_, m) => `2023-${String(m + 1).padStart(2, '0')}`))
  const sum = (items: Record<string, number>[], key: string) => items.reduce((total, item) => total + item[key]!, 0)
  t.equal(sum(body.byMonth, 'lost'), body.totals.lost, 'months add up: lost')
  t.equal(sum(body.byMonth, 'stolen'), body.totals.stolen, 'months add up: stolen')
  t.equal(sum(body.byMonth, 'recovered'), body.totals.recovered, 'months add up: recovered')
  t.same(body.byMonth[4], { month: '2023-05', lost: 2, stolen: 0, recovered: 1 }, 'May: i = 4 and 16, both lost, 4 recovered')

  t.same(body.byKind, [
    { kind: 'lost', reported: body.totals.lost, recovered: 2, outstanding: body.totals.lost - 2 },
    { kind: 'stolen', reported: body.totals.stolen, recovered: 0, outstanding: body.totals.stolen },
  ])
  t.equal(sum(body.byLocation, 'reported'), 27)
  t.same(body.byLocation.find((l: { category: string }) => l.category === 'abroad'), { category: 'abroad', reported: 4 })

  t.same(body.exposure, {
    outstandingUnencrypted: open.filter((f) => !f.deviceEncrypted).length,
    outstandingSensitive: open.filter((f) => f.deviceClassification !== 'official').length,
    outstandingWipeUnconfirmed: open.filter((f) => f.remoteWipe !== 'confirmed').length,
    personalDataIncidents: fixtures.filter((f) => f.personalDataAtRisk).length,
    icoOverdue: fixtures.filter((f) => f.personalDataAtRisk && !f.icoReportedAt).length,
  })

  const hours = fixtures.flatMap((f, i) => (f.occurredAt ? [i + 1] : []))
  t.same(body.timeToReportHours, {
    median: Math.round(percentile(hours, 0.5) * 100) / 100,
    p90: Math.round(percentile(hours, 0.9) * 100) / 100,
  })

  const now = new Date()
  const expected = rows
    .filter((row) => row.status === 'open')
    .map((row) => ({ id: row.id, reference: row.reference, reportedAt: row.reportedAt, ...computeRisk({ ...row, status: 'open' }, now) }))
    .sort((a, b) => b.score - a.score || a.reportedAt.getTime() - b.reportedAt.getTime() || a.reference.localeCompare(b.reference))
    .slice(0, 10)
    .map(({ reportedAt: _, ...rest }) => rest)
  t.equal(body.highestRisk.length, 10)
  t.same(body.highestRisk, expected, 'the ten riskiest open incidents, scored by computeRisk')
  t.ok(body.highestRisk.every((item: { id: string }) => rows.find((row) => row.id === item.id)?.status === 'open'), 'only outstanding ones')

  t.same(body.repeatCustodians, [
    { custodianId: alice.id, name: 'Alice Repeat', incidents: 3 },
    { custodianId: bob.id, name: 'Bob Twice', incidents: 2 },
  ], 'Carol has one incident in the period (two more outside it)')

  for (const role of ['asset_manager', 'foi_officer'] as const) {
    const other = await app.inject({ method: 'GET', url: '/v1/reports/risk-summary?year=2023', headers: await auth(role) })
    t.equal(other.statusCode, 200, role)
    const otherBody = other.json()
    t.notOk('repeatCustodians' in otherBody, `${role}: no repeatCustodians key`)
    t.notMatch(other.body, /Alice|Bob|Carol/, `${role}: no person's name anywhere`)
    t.notMatch(other.body, new RegExp(`${alice.id}|${bob.id}`), `${role}: no custodian id anywhere`)
    const { repeatCustodians: _, ...securityRest } = body
    t.same(otherBody, securityRest, `${role}: otherwise the same report`)
  }
})

t.test('period edges: BST financial year end, calendar year end, UK months', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('foi_officer')
  // 31 March 23:59 BST (FY2023) and 1 April 00:30 BST (FY2024).
  const lateMarch = await insertIncident(database, { reportedAt: '2024-03-31T22:59:00Z' })
  const earlyApril = await insertIncident(database, { reportedAt: '2024-03-31T23:30:00Z', kind: 'stolen' })
  // The last second of 2023 (GMT) and the first of 2024.
  await insertIncident(database, { reportedAt: '2023-12-31T23:59:59Z' })
  await insertIncident(database, { reportedAt: '2024-01-01T00:00:00Z', kind: 'stolen' })

  const summary = async (query: string) => {
    const response = await app.inject({ method: 'GET', url: `/v1/reports/risk-summary?${query}`, headers })
    t.equal(response.statusCode, 200, query)
    return response.json()
  }
  const fy2023 = await summary('year=2023&basis=financial')
  t.same(fy2023.period, { from: '2023-04-01', to: '2024-04-01', basis: 'financial' })
  t.same(fy2023.totals.reported, 3, 'FY2023: 31 Dec, 1 Jan and 31 Mar 23:59 BST')
  t.same(fy2023.byMonth.length, 12)
  t.same(fy2023.byMonth.at(-1), { month: '2024-03', lost: 1, stolen: 0, recovered: 0 }, '31 Mar 23:59 BST is a March incident')
  t.same(fy2023.highestRisk.map((r: { id: string }) => r.id).includes(lateMarch.id), true)

  const fy2024 = await summary('year=2024&basis=financial')
  t.same(fy2024.totals.reported, 1, 'FY2024: 1 Apr 00:30 BST')
  t.same(fy2024.byMonth[0], { month: '2024-04', lost: 0, stolen: 1, recovered: 0 }, 'UK-local April, though 23:30 UTC on 31 March')
  t.same(fy2024.highestRisk.map((r: { id: string }) => r.id), [earlyApril.id])

  const y2023 = await summary('year=2023')
  t.same([y2023.totals.reported, y2023.totals.lost, y2023.totals.stolen], [1, 1, 0], 'the last second of 2023 is in 2023')
  t.same(y2023.byMonth.at(-1), { month: '2023-12', lost: 1, stolen: 0, recovered: 0 })
  const y2024 = await summary('year=2024')
  t.same([y2024.totals.reported, y2024.totals.stolen], [3, 2], 'midnight 1 January starts 2024')

  const range = await summary('from=2024-04-01&to=2024-04-02')
  t.same(range.period, { from: '2024-04-01', to: '2024-04-02', basis: 'range' })
  t.same(range.totals.reported, 1, 'a range day starts at UK midnight (23:00 UTC in BST)')
  t.same(range.byMonth, [{ month: '2024-04', lost: 0, stolen: 1, recovered: 0 }])

  const empty = await summary('year=2030')
  t.same(empty.totals, { reported: 0, lost: 0, stolen: 0, recovered: 0, closed: 0, outstanding: 0, recoveryRate: 0 })
  t.same(empty.timeToReportHours, { median: null, p90: null })
  t.same(empty.highestRisk, [])
  t.equal(empty.byMonth.length, 12)
})

t.test('bad periods are 400 problems naming the parameter; a token is required', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const headers = await auth('security')
  const cases: [string, string][] = [
    ['', 'querystring.year'],
    ['year=2023&from=2023-01-01&to=2023-02-01', 'querystring.from'],
    ['basis=financial', 'querystring.year'],
    ['year=23', 'querystring.year'],
    ['year=2023&basis=fiscal', 'querystring.basis'],
    ['from=2023-02-01&to=2023-01-01', 'querystring.to'],
    ['from=2023-02-30&to=2023-03-01', 'querystring.from'],
    ['from=2023-01-01', 'querystring.to'],
    ['year=2023&colour=red', 'querystring.colour'],
  ]
  for (const [query, path] of cases) {
    for (const url of [`/v1/reports/risk-summary?${query}`, `/v1/reports/risk-summary.svg?${query}`]) {
      const problem = assertProblem(t, await app.inject({ method: 'GET', url, headers }), 400)
      t.equal(problem.errors?.[0]?.path, path, `${url} names ${path}`)
    }
  }
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/reports/risk-summary?year=2023' }), 401)
})
