import t from 'tap'
import { escapeXml, renderRiskChart } from '../../src/modules/reports/chart.js'
import { resolvePeriod } from '../../src/modules/reports/periods.js'
import type { RiskSummary } from '../../src/modules/reports/risk-summary.js'
import { buildTestApp } from '../helpers/app.js'
import { insertIncident } from '../helpers/fixtures.js'
import { allElements, parseXml } from './xml.js'

t.test('the XML checker itself refuses what is not well-formed', async (t) => {
  t.throws(() => parseXml('<svg><g></svg>'))
  t.throws(() => parseXml('<svg><text>a < b</text></svg>'))
  t.throws(() => parseXml('<svg><text>Q&A</text></svg>'))
  t.throws(() => parseXml('<svg a="1" a="2"/>'))
  t.throws(() => parseXml('<svg a=1/>'))
  t.throws(() => parseXml('<svg/><svg/>'))
  t.throws(() => parseXml('<svg><g>'))
  t.same(parseXml('<svg a="x &amp; y"><t>1 &lt; 2</t></svg>').children[0]!.text, '1 < 2')
})

t.test('text is escaped', async (t) => {
  t.equal(escapeXml(`<a href="x">Tom & Jerry's</a>`), '&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;')
  // A summary whose month labels carry markup still renders as well-formed XML with the text intact.
  const summary = {
    period: { from: '2023-01-01', to: '2023-03-01', basis: 'range' },
    totals: { reported: 3, lost: 2, stolen: 1, recovered: 1, closed: 0, outstanding: 2, recoveryRate: 0.3333 },
    byMonth: [
      { month: '<script>&', lost: 2, stolen: 0, recovered: 1 },
      { month: '2023-02', lost: 0, stolen: 1, recovered: 0 },
    ],
  } as unknown as RiskSummary
  const svg = parseXml(renderRiskChart(summary, resolvePeriod({ from: '2023-01-01', to: '2023-03-01' })))
  t.ok(allElements(svg).some((e) => e.name === 'text' && e.text === '<script>&'))
  t.notOk(allElements(svg).some((e) => e.name === 'script'))
})

t.test('GET risk-summary.svg: well-formed, titled, one patterned bar per month per series, outstanding total', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  await insertIncident(database, { reportedAt: '2023-01-10T12:00:00Z', kind: 'lost' })
  await insertIncident(database, { reportedAt: '2023-01-11T12:00:00Z', kind: 'lost', status: 'recovered' })
  await insertIncident(database, { reportedAt: '2023-06-30T23:30:00Z', kind: 'stolen' }) // 1 July BST
  await insertIncident(database, { reportedAt: '2024-02-01T12:00:00Z', kind: 'stolen', status: 'closed' })

  const response = await app.inject({
    method: 'GET', url: '/v1/reports/risk-summary.svg?year=2023&basis=financial', headers: await auth('foi_officer'),
  })
  t.equal(response.statusCode, 200)
  t.match(String(response.headers['content-type']), /^image\/svg\+xml/)
  const svg = parseXml(response.body)
  t.equal(svg.name, 'svg')
  t.equal(svg.attributes.xmlns, 'http://www.w3.org/2000/svg')
  t.equal(svg.children[0]!.name, 'title', 'the first child is the title')
  t.equal(svg.children[0]!.text, 'Losses, thefts and recoveries by month, financial year 2023-24')

  const elements = allElements(svg)
  const bars = elements.filter((e) => e.name === 'rect' && e.attributes.class === 'bar')
  t.equal(bars.length, 12 * 3, 'one mark per month per series')
  const months = [...new Set(bars.map((bar) => bar.attributes['data-month']))]
  t.equal(months[0], '2023-04')
  t.equal(months.at(-1), '2024-03')
  const value = (series: string, month: string) =>
    Number(bars.find((bar) => bar.attributes['data-series'] === series && bar.attributes['data-month'] === month)!.attributes['data-value'])
  t.equal(value('stolen', '2023-07'), 1, 'the 1 July (BST) theft is a July bar')
  t.equal(value('stolen', '2024-02'), 1)
  t.equal(value('lost', '2023-07'), 0)
  t.equal(Number(bars.find((b) => b.attributes['data-series'] === 'lost' && b.attributes['data-month'] === '2023-05')!.attributes.height), 0)

  // Legible in black and white: each series filled with its own pattern, each pattern defined.
  const patterns = elements.filter((e) => e.name === 'pattern').map((e) => e.attributes.id)
  const fills = new Map<string, string>()
  for (const bar of bars) fills.set(bar.attributes['data-series']!, bar.attributes.fill!)
  t.equal(new Set(fills.values()).size, 3, 'three distinct fills')
  for (const fill of fills.values()) t.ok(patterns.includes(/^url\(#(.+)\)$/.exec(fill)?.[1]), `${fill} is a defined pattern`)
  const texts = elements.filter((e) => e.name === 'text').map((e) => e.text)
  t.ok(texts.includes('Outstanding (still open): 1'), 'the outstanding total (the July theft)')
  for (const label of ['Lost', 'Stolen', 'Recovered', 'Incidents', 'Month reported (UK local time)', '2023-04']) {
    t.ok(texts.includes(label), `label ${label}`)
  }
  const again = await app.inject({
    method: 'GET', url: '/v1/reports/risk-summary.svg?year=2023&basis=financial', headers: await auth('security'),
  })
  t.equal(again.body, response.body, 'the same for every role (no people in a chart)')
})

t.test('a long range still draws every month, labelled sparsely', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const response = await app.inject({
    method: 'GET', url: '/v1/reports/risk-summary.svg?from=2000-01-15&to=2010-01-01', headers: await auth('asset_manager'),
  })
  t.equal(response.statusCode, 200)
  const svg = parseXml(response.body)
  t.equal(svg.children[0]!.text, 'Losses, thefts and recoveries by month, 2000-01-15 to 2009-12-31')
  t.equal(allElements(svg).filter((e) => e.name === 'rect' && e.attributes.class === 'bar').length, 120 * 3)
})
