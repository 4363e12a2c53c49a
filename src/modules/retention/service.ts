/**
 * The retention schedule (UK GDPR storage limitation): a custodian who left more than
 * RETENTION_CUSTODIAN_MONTHS ago and holds nothing has their personal data erased; an incident
 * closed or recovered more than RETENTION_INCIDENT_YEARS ago has its free text erased. The
 * incident keeps its custodian link: it shows an erased person once the custodian rule has erased
 * them (someone still working there keeps their name).
 *
 * One run at a time across every instance (a transaction-scoped advisory lock): a second one
 * finds the lock taken and does nothing.
 */
import { sql } from 'drizzle-orm'
import { type Db, type DbOrTx, rowsOf } from '../../db/client.js'
import type { Config } from '../../config.js'
import type { WriteContext } from '../../http/context.js'
import { eraseCustodian } from '../custodians/service.js'
import { eraseIncidentFreeText } from '../incidents/service.js'

/** Any constant unique to this lock in the service. */
const RETENTION_LOCK = 727_274_301

export type RetentionConfig = Pick<Config, 'RETENTION_CUSTODIAN_MONTHS' | 'RETENTION_INCIDENT_YEARS'>

export interface RetentionPlan {
  /** Ids only: what a run prints or logs never names anyone. */
  custodians: string[]
  incidents: { id: string; reference: string }[]
}

export interface RetentionOutcome extends RetentionPlan {
  applied: boolean
  /** False when another run held the lock. */
  ran: boolean
}

const SYSTEM: WriteContext = { actor: 'system:retention', requestId: 'retention' }

/** What a run at `now` would erase. */
export async function planRetention(db: DbOrTx, config: RetentionConfig, now = new Date()): Promise<RetentionPlan> {
  const custodians = await rowsOf<{ id: string }>(
    db,
    sql`SELECT c.id FROM custodians c
        WHERE c.erased_at IS NULL AND c.left_on IS NOT NULL
          AND c.left_on <= (${now.toISOString()}::timestamptz AT TIME ZONE 'Europe/London')::date - make_interval(months => ${config.RETENTION_CUSTODIAN_MONTHS})
          AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.current_custodian_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.custodian_id = c.id AND i.status = 'open')
        ORDER BY c.id`,
  )
  const incidents = await rowsOf<{ id: string; reference: string }>(
    db,
    sql`SELECT i.id, i.reference FROM incidents i
        WHERE i.free_text_erased_at IS NULL AND i.status <> 'open'
          AND coalesce(i.closed_at, i.recovered_at) <= ${now.toISOString()}::timestamptz - make_interval(years => ${config.RETENTION_INCIDENT_YEARS})
        ORDER BY i.id`,
  )
  return { custodians: custodians.map((row) => row.id), incidents }
}

/** Plans, and with `apply` erases, in one transaction under the retention lock. */
export async function runRetention(db: Db, config: RetentionConfig, { apply, now = new Date() }: { apply: boolean; now?: Date }): Promise<RetentionOutcome> {
  return db.transaction(async (tx) => {
    const [lock] = await rowsOf<{ taken: boolean }>(tx, sql`SELECT pg_try_advisory_xact_lock(${RETENTION_LOCK}) AS taken`)
    if (!lock?.taken) return { custodians: [], incidents: [], applied: false, ran: false }
    const plan = await planRetention(tx, config, now)
    if (apply) {
      for (const id of plan.custodians) {
        await eraseCustodian(tx, SYSTEM, id, `retention: left more than ${config.RETENTION_CUSTODIAN_MONTHS} months ago`)
      }
      for (const { id } of plan.incidents) {
        await eraseIncidentFreeText(tx, SYSTEM, id, `retention: ended more than ${config.RETENTION_INCIDENT_YEARS} years ago`)
      }
    }
    return { ...plan, applied: apply, ran: true }
  })
}
