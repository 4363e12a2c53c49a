/**
 * The risk rule: the contract's table row by row, the cap, the level boundaries, and the SQL twin
 * (`liveRiskScoreSql`, `riskLevelSql`) agreeing with `computeRisk` on every combination of factors.
 */
import { sql } from 'drizzle-orm'
import t from 'tap'
import { computeRisk, liveRiskScoreSql, type RiskInput, riskLevel, riskLevelSql } from '../../src/modules/incidents/risk.js'
import { createTestDatabase } from '../helpers/database.js'

const NOW = new Date('2024-06-15T12:00:00Z')
const DAY = 24 * 60 * 60 * 1000

/** An incident that scores nothing: encrypted, official, wipe confirmed, lost at home, MDM, new. */
const clean: RiskInput = {
  kind: 'lost',
  status: 'open',
  reportedAt: new Date(NOW.getTime() - DAY),
  locationCategory: 'home',
  personalDataAtRisk: false,
  remoteWipe: 'confirmed',
  deviceEncrypted: true,
  deviceMdmEnrolled: true,
  deviceClassification: 'official',
}

t.test('each factor alone scores its row of the table', async (t) => {
  t.same(computeRisk(clean, NOW), { score: 0, level: 'low', factors: [] })
  const rows: [Partial<RiskInput>, string, number][] = [
    [{ deviceEncrypted: false }, 'unencrypted', 40],
    [{ deviceClassification: 'secret' }, 'classification_secret', 40],
    [{ deviceClassification: 'official_sensitive' }, 'classification_official_sensitive', 20],
    [{ personalDataAtRisk: true }, 'personal_data', 20],
    [{ remoteWipe: 'not_requested' }, 'wipe_unconfirmed', 15],
    [{ remoteWipe: 'requested' }, 'wipe_unconfirmed', 15],
    [{ remoteWipe: 'not_possible' }, 'wipe_unconfirmed', 15],
    [{ kind: 'stolen' }, 'stolen', 10],
    [{ locationCategory: 'abroad' }, 'abroad', 10],
    [{ deviceMdmEnrolled: false }, 'not_mdm_enrolled', 10],
    [{ reportedAt: new Date(NOW.getTime() - 30 * DAY) }, 'outstanding_30d', 5],
  ]
  for (const [change, code, points] of rows) {
    const risk = computeRisk({ ...clean, ...change }, NOW)
    t.same(risk.factors, [{ code, points }], code)
    t.equal(risk.score, points, `${code} scores ${points}`)
  }
})

t.test('outstanding_30d: from exactly 30 days, and only while open', async (t) => {
  const at = (ms: number, status: RiskInput['status'] = 'open') =>
    computeRisk({ ...clean, status, reportedAt: new Date(NOW.getTime() - ms) }, NOW).score
  t.equal(at(30 * DAY - 1), 0, 'a millisecond short of 30 days')
  t.equal(at(30 * DAY), 5, 'exactly 30 days')
  t.equal(at(90 * DAY, 'recovered'), 0, 'recovered')
  t.equal(at(90 * DAY, 'closed'), 0, 'closed')
})

t.test('the score is capped at 100', async (t) => {
  const worst: RiskInput = {
    ...clean,
    kind: 'stolen',
    reportedAt: new Date(NOW.getTime() - 60 * DAY),
    locationCategory: 'abroad',
    personalDataAtRisk: true,
    remoteWipe: 'not_possible',
    deviceEncrypted: false,
    deviceMdmEnrolled: false,
    deviceClassification: 'secret',
  }
  const risk = computeRisk(worst, NOW)
  t.equal(risk.factors.reduce((sum, f) => sum + f.points, 0), 150, 'the factors add up to 150')
  t.equal(risk.score, 100)
  t.equal(risk.level, 'critical')
})

t.test('level boundaries 24/25, 49/50, 74/75', async (t) => {
  t.equal(riskLevel(0), 'low')
  t.equal(riskLevel(24), 'low')
  t.equal(riskLevel(25), 'medium')
  t.equal(riskLevel(49), 'medium')
  t.equal(riskLevel(50), 'high')
  t.equal(riskLevel(74), 'high')
  t.equal(riskLevel(75), 'critical')
  t.equal(riskLevel(100), 'critical')
  // The same boundaries reached by real sums of factors.
  const old = new Date(NOW.getTime() - 31 * DAY)
  const level = (change: Partial<RiskInput>) => {
    const risk = computeRisk({ ...clean, ...change }, NOW)
    return `${risk.score} ${risk.level}`
  }
  t.equal(level({ personalDataAtRisk: true }), '20 low')
  t.equal(level({ personalDataAtRisk: true, reportedAt: old }), '25 medium')
  t.equal(level({ deviceEncrypted: false, reportedAt: old }), '45 medium')
  t.equal(level({ deviceEncrypted: false, kind: 'stolen' }), '50 high')
  t.equal(level({ deviceEncrypted: false, personalDataAtRisk: true, kind: 'stolen' }), '70 high')
  t.equal(level({ deviceEncrypted: false, personalDataAtRisk: true, remoteWipe: 'requested' }), '75 critical')
})

/** Every combination of the inputs the factors look at. */
function allCombinations(): RiskInput[] {
  const out: RiskInput[] = []
  const ages: [RiskInput['status'], number][] = [
    ['open', DAY],
    ['open', 30 * DAY],
    ['open', 30 * DAY - 1],
    ['recovered', 60 * DAY],
    ['closed', 60 * DAY],
  ]
  for (const deviceEncrypted of [true, false])
    for (const deviceClassification of ['official', 'official_sensitive', 'secret'] as const)
      for (const personalDataAtRisk of [true, false])
        for (const remoteWipe of ['not_requested', 'requested', 'confirmed', 'not_possible'] as const)
          for (const kind of ['lost', 'stolen'] as const)
            for (const locationCategory of ['abroad', 'transit'])
              for (const deviceMdmEnrolled of [true, false])
                for (const [status, age] of ages)
                  out.push({
                    kind,
                    status,
                    reportedAt: new Date(NOW.getTime() - age),
                    locationCategory,
                    personalDataAtRisk,
                    remoteWipe,
                    deviceEncrypted,
                    deviceMdmEnrolled,
                    deviceClassification,
                  })
  return out
}

t.test('the SQL twin agrees with computeRisk on every combination of factors', async (t) => {
  const database = await createTestDatabase(t)
  const inputs = allCombinations()
  const records = inputs.map((input, index) => ({
    n: index + 1,
    kind: input.kind,
    status: input.status,
    reported_at: input.reportedAt.toISOString(),
    location_category: input.locationCategory,
    personal_data_at_risk: input.personalDataAtRisk,
    remote_wipe: input.remoteWipe,
    device_encrypted: input.deviceEncrypted,
    device_mdm_enrolled: input.deviceMdmEnrolled,
    device_classification: input.deviceClassification,
  }))
  // The twin reads `incidents` columns; a record set named `incidents` with those columns stands in.
  const score = liveRiskScoreSql(NOW)
  const result = (await database.db.execute(sql`
    SELECT n, ${score} AS score, ${riskLevelSql(score)} AS level
    FROM jsonb_to_recordset(${JSON.stringify(records)}::jsonb) AS incidents(
      kind text, status text, reported_at timestamptz, location_category text, personal_data_at_risk boolean,
      remote_wipe text, device_encrypted boolean, device_mdm_enrolled boolean, device_classification text, n int)
    ORDER BY n`)) as unknown as { rows: { n: number; score: number; level: string }[] }
  t.equal(result.rows.length, inputs.length, `${inputs.length} combinations`)
  let disagreements = 0
  for (const row of result.rows) {
    const expected = computeRisk(inputs[row.n - 1]!, NOW)
    if (Number(row.score) !== expected.score || row.level !== expected.level) {
      disagreements++
      if (disagreements <= 5) t.fail(`combination ${row.n}: SQL ${row.score}/${row.level}, TS ${expected.score}/${expected.level}`)
    }
  }
  t.equal(disagreements, 0, 'no disagreement')
  const distinctScores = new Set(result.rows.map((row) => Number(row.score)))
  t.ok(distinctScores.has(100) && distinctScores.has(0), 'the combinations reach both 0 and the cap')
})

t.test('riskLevelSql agrees with riskLevel on every score 0..100', async (t) => {
  const database = await createTestDatabase(t)
  const result = (await database.db.execute(
    sql`SELECT s, ${riskLevelSql(sql`s`)} AS level FROM generate_series(0, 100) AS s ORDER BY s`,
  )) as unknown as { rows: { s: number; level: string }[] }
  t.equal(result.rows.length, 101)
  t.same(
    result.rows.map((row) => row.level),
    result.rows.map((row) => riskLevel(Number(row.s))),
  )
})
