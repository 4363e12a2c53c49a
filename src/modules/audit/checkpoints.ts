/**
 * Signed checkpoints of the audit chain: `{ count, lastEventId, headHash, at }` — "the chain's
 * first `count` links end with event `lastEventId`, whose link hash is `headHash`" — signed with
 * the service's Ed25519 key (signing-key.ts) as a compact JWS over its canonical JSON.
 *
 * The chain alone shows an edit only to someone who trusts the hashes stored beside it; whoever
 * can write the tables can recompute them all. A checkpoint fixes the head with a key the
 * database does not hold, so a chain recomputed, cut short or reordered behind one no longer
 * matches it (verify.ts). Each checkpoint is also an audit event (`audit.checkpoint`, written
 * with it), so the notifications send a copy elsewhere.
 *
 * A checkpoint is written only when the chain has grown by something other than checkpoint
 * events since the last one: its own event must not call for the next, or an idle service would
 * checkpoint for ever. And it only ever extends the last one: when the chain no longer holds the
 * last checkpoint's head, nothing is signed (a rewritten chain is never blessed by a new
 * signature) and the error says to run verify.
 */
import { type KeyObject, randomUUID } from 'node:crypto'
import { compactVerify, CompactSign } from 'jose'
import { sql } from 'drizzle-orm'
import stringify from 'safe-stable-stringify'
import { type Db, rowsOf } from '../../db/client.js'
import { auditCheckpoints } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import type { AuditSigningKey } from './signing-key.js'
import { AUDIT_CHAIN_LOCK, linkPendingEvents, NIL_ENTITY_ID, recordAudit } from './trail.js'

export const CHECKPOINT_ACTION = 'audit.checkpoint'

export interface Checkpoint {
  id: number
  /** ISO 8601 with milliseconds, as signed. */
  at: string
  count: number
  lastEventId: number
  headHash: string
  /** A compact JWS (EdDSA) over `signedContent`. */
  signature: string
}

type Signed = Pick<Checkpoint, 'count' | 'lastEventId' | 'headHash' | 'at'>

/** What a checkpoint's signature covers: its four fields as canonical (sorted-key) JSON. */
export function signedContent(checkpoint: Signed): string {
  const { count, lastEventId, headHash, at } = checkpoint
  return stringify({ count, lastEventId, headHash, at })!
}

export function signCheckpoint(key: AuditSigningKey, checkpoint: Signed): Promise<string> {
  return new CompactSign(new TextEncoder().encode(signedContent(checkpoint))).setProtectedHeader({ alg: 'EdDSA', kid: key.kid }).sign(key.privateKey)
}

/** True when `signature` is this key's over exactly this checkpoint's fields. */
export async function checkpointSigned(publicKey: KeyObject, checkpoint: Signed & Pick<Checkpoint, 'signature'>): Promise<boolean> {
  try {
    const { payload } = await compactVerify(checkpoint.signature, publicKey, { algorithms: ['EdDSA'] })
    return new TextDecoder().decode(payload) === signedContent(checkpoint)
  } catch {
    return false
  }
}

/** The actor and request of the service's own events: no request caused them, so each gets an id of its own. */
export const systemContext = (): WriteContext => ({ actor: 'system', requestId: randomUUID() })

interface Head {
  tail_seq: string | null
  tail_event_id: string | null
  tail_hash: string | null
  last_count: string | null
  last_event_id: string | null
  last_head_hash: string | null
  /** The link at the last checkpoint's count, as the chain holds it now. */
  held_event_id: string | null
  held_hash: string | null
  grown: boolean
  now: string
}

const num = (value: string | null) => (value === null ? null : Number(value))

/**
 * Links whatever has committed, then, under the chain's lock, signs the chain's head if it has
 * grown since the last checkpoint (by more than checkpoint events). Returns the checkpoint, or
 * null when there was nothing new to sign. `key` may be a loader, called only when a checkpoint
 * is due (tests and tools that never checkpoint never need a key).
 */
export async function writeCheckpoint(
  db: Db,
  key: AuditSigningKey | (() => Promise<AuditSigningKey>),
  context: WriteContext = systemContext(),
): Promise<Checkpoint | null> {
  await linkPendingEvents(db)
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`)
    const [head] = await rowsOf<Head>(
      tx,
      sql`WITH tail AS (SELECT seq, event_id, hash FROM audit_chain ORDER BY seq DESC LIMIT 1),
               last AS (SELECT count, last_event_id, head_hash FROM audit_checkpoints ORDER BY count DESC LIMIT 1)
          SELECT tail.seq::text AS tail_seq, tail.event_id::text AS tail_event_id, tail.hash AS tail_hash,
                 last.count::text AS last_count, last.last_event_id::text AS last_event_id, last.head_hash AS last_head_hash,
                 held.event_id::text AS held_event_id, held.hash AS held_hash,
                 EXISTS (SELECT 1 FROM audit_chain c JOIN audit_events e ON e.id = c.event_id
                         WHERE c.seq > coalesce(last.count, 0)
                           AND NOT (e.entity_type = 'audit' AND e.action = ${CHECKPOINT_ACTION})) AS grown,
                 to_char(date_trunc('milliseconds', now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS now
          FROM (SELECT 1) AS one
          LEFT JOIN tail ON true
          LEFT JOIN last ON true
          LEFT JOIN audit_chain held ON held.seq = last.count`,
    )
    if (!head || head.tail_seq === null) return null
    const last = head.last_count === null ? null : { count: Number(head.last_count), lastEventId: num(head.last_event_id), headHash: head.last_head_hash }
    if (last && (num(head.held_event_id) !== last.lastEventId || head.held_hash !== last.headHash)) {
      throw new Error(
        `the chain no longer holds the head of the last checkpoint (count ${last.count}, event ${last.lastEventId}): ` +
          'nothing signed; GET /v1/audit-events/verify names what changed',
      )
    }
    if (!head.grown) return null
    const signed: Signed = { count: Number(head.tail_seq), lastEventId: Number(head.tail_event_id), headHash: head.tail_hash!, at: head.now }
    const signature = await signCheckpoint(typeof key === 'function' ? await key() : key, signed)
    const [row] = await tx
      .insert(auditCheckpoints)
      .values({ ...signed, at: new Date(signed.at), signature })
      .returning({ id: auditCheckpoints.id })
    const checkpoint: Checkpoint = { id: row!.id, ...signed, signature }
    await recordAudit(tx, context, { action: CHECKPOINT_ACTION, entityType: 'audit', entityId: NIL_ENTITY_ID, after: checkpoint })
    return checkpoint
  })
}
