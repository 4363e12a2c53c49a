/**
 * The one-off upgrade of a trail written before migration 0006, when events held personal values
 * in place. Run after the migrations, as the owner (it must pass the append-only triggers), once:
 * migration 0006 leaves a `data_upgrades` row when there were events to upgrade.
 *
 * It first checks the old chain as it stands (an upgrade must not launder a trail that was already
 * altered), then separates each event's personal values as the insert trigger now does, and links
 * the whole chain again from its genesis, in the same order. The upgrade is itself an event,
 * `audit.rehashed`, naming the old head: anyone holding an old export can see where it went.
 */
import { asc, eq, gt, sql } from 'drizzle-orm'
import type { Db, Tx } from '../../db/client.js'
import { auditChain, auditEvents, dataUpgrades } from '../../db/schema.js'
import { AUDIT_CHAIN_LOCK, contentOf, eventHash, linkPendingEvents, NIL_ENTITY_ID, recordAudit } from './trail.js'

const UPGRADE = 'audit-personal-values'
const BATCH = 5_000
const APPEND_ONLY_TRIGGERS = [
  ['audit_events', 'audit_events_no_update_or_delete'],
  ['audit_chain', 'audit_chain_no_update_or_delete'],
  ['audit_chain', 'audit_chain_no_truncate'],
] as const

export class TrailUpgradeError extends Error {
  override name = 'TrailUpgradeError'
}

/** Walks the chain in order: each link, and its event's hash as the event now stands after `prevHash`. */
async function walkChain(tx: Tx, visit: (seq: number, eventId: number, storedHash: string, content: (prevHash: string | null) => string) => Promise<void> | void) {
  let after = 0
  for (;;) {
    const batch = await tx
      .select({ link: auditChain, event: auditEvents })
      .from(auditChain)
      .innerJoin(auditEvents, eq(auditEvents.id, auditChain.eventId))
      .where(gt(auditChain.seq, after))
      .orderBy(asc(auditChain.seq))
      .limit(BATCH)
    for (const { link, event } of batch) {
      await visit(link.seq, event.id, link.hash, (prevHash) => eventHash(contentOf(event, prevHash)))
    }
    if (batch.length < BATCH) return
    after = batch.at(-1)!.link.seq
  }
}

/** Runs the upgrade if it is due; returns the number of events re-linked (0 when nothing was due). */
export async function upgradeAuditTrail(db: Db): Promise<number> {
  const [due] = await db.select().from(dataUpgrades).where(eq(dataUpgrades.name, UPGRADE))
  if (!due || due.doneAt) return 0
  await linkPendingEvents(db)
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`)
    const [still] = await tx.select().from(dataUpgrades).where(eq(dataUpgrades.name, UPGRADE)).for('update')
    if (!still || still.doneAt) return 0

    let prevHash: string | null = null
    let count = 0
    await walkChain(tx, (seq, eventId, storedHash, hashWith) => {
      if (seq !== count + 1 || storedHash !== hashWith(prevHash)) {
        throw new TrailUpgradeError(`the audit chain does not verify at event ${eventId} (link ${seq}); it was not upgraded. Find out why before upgrading.`)
      }
      prevHash = storedHash
      count++
    })
    const previousHead = prevHash

    for (const [table, trigger] of APPEND_ONLY_TRIGGERS) await tx.execute(sql`ALTER TABLE ${sql.identifier(table)} DISABLE TRIGGER ${sql.identifier(trigger)}`)
    await tx.execute(sql`
      UPDATE audit_events SET before = audit_separate_personal(id, entity_type, entity_id, before),
                              after = audit_separate_personal(id, entity_type, entity_id, after)
      WHERE entity_type IN ('custodian', 'incident')`)
    await tx.execute(sql`CREATE TEMPORARY TABLE audit_relinked (seq bigint PRIMARY KEY, hash text NOT NULL) ON COMMIT DROP`)
    prevHash = null
    let links: { seq: number; hash: string }[] = []
    const flush = async () => {
      if (links.length === 0) return
      await tx.execute(sql`INSERT INTO audit_relinked SELECT * FROM unnest(${sql.param(links.map((l) => l.seq))}::bigint[], ${sql.param(links.map((l) => l.hash))}::text[])`)
      links = []
    }
    await walkChain(tx, async (seq, _eventId, _storedHash, hashWith) => {
      const hash = hashWith(prevHash)
      links.push({ seq, hash })
      prevHash = hash
      if (links.length === BATCH) await flush()
    })
    await flush()
    await tx.execute(sql`
      UPDATE audit_chain c SET hash = r.hash, prev_hash = p.hash
      FROM audit_relinked r LEFT JOIN audit_relinked p ON p.seq = r.seq - 1
      WHERE c.seq = r.seq`)
    for (const [table, trigger] of APPEND_ONLY_TRIGGERS) await tx.execute(sql`ALTER TABLE ${sql.identifier(table)} ENABLE TRIGGER ${sql.identifier(trigger)}`)

    await recordAudit(tx, { actor: 'system', requestId: 'migration-0006' }, {
      action: 'audit.rehashed',
      entityType: 'audit',
      entityId: NIL_ENTITY_ID,
      after: { reason: 'personal values kept beside the hashed content (migration 0006)', events: count, previousHeadHash: previousHead, newHeadHash: prevHash },
    })
    await tx.update(dataUpgrades).set({ doneAt: new Date() }).where(eq(dataUpgrades.name, UPGRADE))
    return count
  })
}
