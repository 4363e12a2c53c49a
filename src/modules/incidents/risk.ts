/**
 * The risk score of an incident, exactly as the contract's table: points per factor, summed and
 * capped at 100, and a level from the total. One pure function, used by the incident responses
 * and by the reports, so the two can never disagree.
 *
 * While an incident is open the score follows its current state and the clock (`outstanding_30d`
 * is computed at read time from `now`); once recovered or closed, the score stored at that moment
 * is shown instead (see incidents/service.ts).
 */
export type RiskLevel = 'low' | 'medium' | 'high' | 'critical'

export interface RiskFactor {
  code: string
  points: number
}

export interface Risk {
  score: number
  level: RiskLevel
  factors: RiskFactor[]
}

export interface RiskInput {
  kind: 'lost' | 'stolen'
  status: 'open' | 'recovered' | 'closed'
  reportedAt: Date
  locationCategory: string
  personalDataAtRisk: boolean
  remoteWipe: 'not_requested' | 'requested' | 'confirmed' | 'not_possible'
  deviceEncrypted: boolean
  deviceMdmEnrolled: boolean
  deviceClassification: 'official' | 'official_sensitive' | 'secret'
}

export const OUTSTANDING_DAYS = 30
const DAY_MS = 24 * 60 * 60 * 1000

/** The factors in the contract's order, each with its points and when it applies. */
export const RISK_FACTORS: { code: string; points: number; applies: (i: RiskInput, now: Date) => boolean }[] = [
  { code: 'unencrypted', points: 40, applies: (i) => !i.deviceEncrypted },
  { code: 'classification_secret', points: 40, applies: (i) => i.deviceClassification === 'secret' },
  { code: 'classification_official_sensitive', points: 20, applies: (i) => i.deviceClassification === 'official_sensitive' },
  { code: 'personal_data', points: 20, applies: (i) => i.personalDataAtRisk },
  { code: 'wipe_unconfirmed', points: 15, applies: (i) => i.remoteWipe !== 'confirmed' },
  { code: 'stolen', points: 10, applies: (i) => i.kind === 'stolen' },
  { code: 'abroad', points: 10, applies: (i) => i.locationCategory === 'abroad' },
  { code: 'not_mdm_enrolled', points: 10, applies: (i) => !i.deviceMdmEnrolled },
  {
    code: 'outstanding_30d',
    points: 5,
    applies: (i, now) => i.status === 'open' && now.getTime() - i.reportedAt.getTime() >= OUTSTANDING_DAYS * DAY_MS,
  },
]

export const MAX_SCORE = 100

export function riskLevel(score: number): RiskLevel {
  if (score >= 75) return 'critical'
  if (score >= 50) return 'high'
  if (score >= 25) return 'medium'
  return 'low'
}

export function computeRisk(input: RiskInput, now: Date = new Date()): Risk {
  const factors = RISK_FACTORS.filter((factor) => factor.applies(input, now)).map(({ code, points }) => ({ code, points }))
  const score = Math.min(MAX_SCORE, factors.reduce((sum, factor) => sum + factor.points, 0))
  return { score, level: riskLevel(score), factors }
}
