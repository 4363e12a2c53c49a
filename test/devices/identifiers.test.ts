import t from 'tap'
import { AssetTag, isValidImei, luhnValid } from '../../src/modules/devices/schemas.js'
import { ukToday } from '../../src/time/uk.js'

t.test('Luhn check digit', async (t) => {
  t.ok(luhnValid('79927398713'), 'the textbook example')
  t.notOk(luhnValid('79927398710'), 'a wrong check digit')
  t.notOk(luhnValid('7992739871a'), 'not digits')
  t.notOk(luhnValid(''), 'empty')
})

t.test('IMEI: 15 digits with a Luhn check digit', async (t) => {
  for (const good of ['490154203237518', '356938035643809']) t.ok(isValidImei(good), good)
  t.notOk(isValidImei('490154203237519'), 'check digit off by one')
  t.notOk(isValidImei('49015420323751'), '14 digits')
  t.notOk(isValidImei('4901542032375180'), '16 digits')
  t.notOk(isValidImei('49015420323751X'), 'a letter')
  // Every single-digit change of a valid IMEI is caught by the check digit.
  const valid = '490154203237518'
  for (let i = 0; i < 15; i++) {
    const changed = valid.slice(0, i) + String((Number(valid[i]) + 1) % 10) + valid.slice(i + 1)
    t.notOk(isValidImei(changed), `digit ${i} changed`)
  }
})

t.test('asset tags: any organisation\'s scheme, trimmed, stored as written', async (t) => {
  // Schemes seen in real registers: a parliament's, a performance team's, plain numbers, a
  // department's with slashes, a year-based one, words with a number sign and a space.
  for (const good of ['IM-ABC123-0', 'PERF-1', '12345', 'HOC/LT/000123', 'PA/2019/0042', 'HOC-LT-000123', 'LAPTOP #12', 'a_b.c', 'Zürich-7', 'x'.repeat(64)]) {
    t.equal(AssetTag.parse(good), good, good)
  }
  t.equal(AssetTag.parse('  pa-t123451 \t'), 'pa-t123451', 'trimmed; case as written')
  const refused: [string, RegExp][] = [
    ['', /blank/],
    ['   ', /blank/],
    ['x'.repeat(65), /at most 64/],
    ['PA@12', /only letters, digits, spaces and - _ \. \/ #/],
    ['PA,12', /only letters/],
    ['PA\u00a012', /only letters/],
    ['PA-\u202e21', /bidirectional/],
    ['PA-\u2066x', /bidirectional/],
    ['PA-\u200f1', /bidirectional/],
    ['PA\u000012', /control characters/],
    ['PA\t12', /control characters/],
    ['PA\n12', /control characters/],
    ['PA\u008512', /control characters/],
    ['PA\ud80012', /broken Unicode/],
  ]
  for (const [bad, message] of refused) {
    const result = AssetTag.safeParse(bad)
    t.notOk(result.success, JSON.stringify(bad))
    t.equal(result.error?.issues.length, 1, `${JSON.stringify(bad)}: one message`)
    t.match(result.error?.issues[0]?.message, message, JSON.stringify(bad))
  }
})

t.test('UK today is a date', async (t) => {
  // 23:30 UTC on 31 March 2024 is already 1 April in BST.
  t.equal(ukToday(new Date('2024-03-31T23:30:00Z')), '2024-04-01')
  t.equal(ukToday(new Date('2024-01-31T23:30:00Z')), '2024-01-31')
})
