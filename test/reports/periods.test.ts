import t from 'tap'
import { HttpProblem } from '../../src/plugins/problems.js'
import { type PeriodQuery, resolvePeriod } from '../../src/modules/reports/periods.js'

function refused(query: PeriodQuery): { path: string; message: string } {
  try {
    resolvePeriod(query)
  } catch (error) {
    if (error instanceof HttpProblem && error.status === 400 && error.errors?.[0]) return error.errors[0]
    throw error
  }
  throw new Error(`accepted ${JSON.stringify(query)}`)
}

t.test('a year is calendar by default; a financial year runs 1 April to 31 March', async (t) => {
  t.same(resolvePeriod({ year: '2023' }), {
    from: '2023-01-01', to: '2024-01-01', basis: 'calendar', label: '2023', description: 'calendar year 2023',
  })
  t.same(resolvePeriod({ year: '2023', basis: 'calendar' }).label, '2023')
  t.same(resolvePeriod({ year: '2023', basis: 'financial' }), {
    from: '2023-04-01', to: '2024-04-01', basis: 'financial', label: 'fy2023-24', description: 'financial year 2023-24',
  })
  t.equal(resolvePeriod({ year: '1999', basis: 'financial' }).label, 'fy1999-00', 'the century turns in the label')
})

t.test('a range is from/to dates, to exclusive', async (t) => {
  t.same(resolvePeriod({ from: '2023-01-01', to: '2023-07-01' }), {
    from: '2023-01-01', to: '2023-07-01', basis: 'range', label: '2023-01-01_2023-07-01', description: '2023-01-01 to 2023-06-30',
  })
  t.equal(resolvePeriod({ from: '2024-02-28', to: '2024-03-01' }).description, '2024-02-28 to 2024-02-29', 'leap day')
  t.equal(resolvePeriod({ from: '2000-01-01', to: '2050-01-01' }).basis, 'range', 'exactly 50 years is allowed')
})

t.test('bad combinations are 400s naming the parameter', async (t) => {
  t.match(refused({}), { path: 'querystring.year', message: /year.*from and to/ })
  t.match(refused({ basis: 'financial' }), { path: 'querystring.year', message: /required with basis/ })
  t.match(refused({ year: '2023', from: '2023-01-01' }), { path: 'querystring.from', message: /not both/ })
  t.match(refused({ year: '2023', to: '2023-01-01' }), { path: 'querystring.to', message: /not both/ })
  t.match(refused({ from: '2023-01-01', to: '2023-02-01', basis: 'calendar' }), { path: 'querystring.basis' })
  t.match(refused({ from: '2023-01-01' }), { path: 'querystring.to', message: /required with from/ })
  t.match(refused({ to: '2023-01-01' }), { path: 'querystring.from', message: /required with to/ })
  t.match(refused({ from: '2023-02-01', to: '2023-02-01' }), { path: 'querystring.to', message: /after from/ })
  t.match(refused({ from: '2023-02-01', to: '2023-01-01' }), { path: 'querystring.to', message: /after from/ })
  t.match(refused({ from: '2000-01-01', to: '2050-01-02' }), { path: 'querystring.to', message: /50 years/ })
  t.match(refused({ year: '1066' }), { path: 'querystring.year', message: /from 1990 to 2100/ })
  t.match(refused({ year: '2101' }), { path: 'querystring.year' })
})
