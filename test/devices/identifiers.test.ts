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

t.test('asset tags: trimmed, upper-cased, house format', async (t) => {
  t.equal(AssetTag.parse(' pa-t123451 '), 'PA-T123451')
  t.equal(AssetTag.parse('HOL-0001'), 'HOL-0001')
  for (const bad of ['P-1234', 'PARLIA-1234', 'PA-123', 'PA-1234567890123', 'PA_1234', 'PA-12 34', '']) {
    t.notOk(AssetTag.safeParse(bad).success, JSON.stringify(bad))
  }
})

t.test('UK today is a date', async (t) => {
  // 23:30 UTC on 31 March 2024 is already 1 April in BST.
  t.equal(ukToday(new Date('2024-03-31T23:30:00Z')), '2024-04-01')
  t.equal(ukToday(new Date('2024-01-31T23:30:00Z')), '2024-01-31')
})
