/**
 * Checking the audit trail: `ChainChecker` takes the trail's lines in chain order (export.ts) —
 * each link with its event, each checkpoint right after the link at its count — and finds the
 * first that does not hold. The service runs it over the database (`verifyChain`, behind
 * `GET /v1/audit-events/verify`) and `npm run audit:verify` over an export, trusting nothing but
 * the public key: the same code decides both.
 *
 * What each tampering looks like to it:
 * - an event edited: its hash no longer matches (`hash_mismatch`, that event);
 * - links deleted in the middle: `seq` jumps (`missing_events`, the event after the gap) or,
 *   renumbered, the next link does not point to the one before (`broken_link`);
 * - links deleted at the end: a checkpoint counts more links than the chain holds
 *   (`missing_events`, the checkpoint's last event);
 * - links swapped or inserted: `broken_link` or `hash_mismatch` where the order breaks;
 * - the whole chain recomputed after a change: every link holds, but a checkpoint's signed head is
 *   no longer the chain's (`hash_mismatch`, the first event after the last checkpoint that still
 *   matches: the change is somewhere from there to this checkpoint);
 * - a checkpoint changed or forged without the key: `bad_signature` (its last event).
 * An event that is neither linked nor waiting to be comes last (`broken_link`). The database check
 * adds what an export does not hold: a kept personal value that no longer matches its digest
 * (`hash_mismatch`, personal.ts).
 *
 * What it cannot see: events after the last checkpoint can be rewritten with the chain recomputed
 * (no signature covers them yet), and a trail cut back to an earlier checkpoint, taking the later
 * checkpoints with it, is a consistent trail; SECURITY.md says how a deployment narrows both.
 */
import type { KeyObject } from 'node:crypto'
import { z } from 'zod'
import type { Database } from '../../db/client.js'
import type { ExportLimits } from '../exports/foi.js'
import { type Checkpoint, checkpointSigned } from './checkpoints.js'
import { openTrailRows, trailLineOf } from './export.js'
import { firstAlteredValue } from './personal.js'
import { eventHash } from './trail.js'

export const EventLineSchema = z.strictObject({
  type: z.literal('event'),
  /** Null for an event outside the chain (and its hashes too). */
  seq: z.number().int().nullable(),
  id: z.number().int(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  entityType: z.string(),
  entityId: z.string(),
  requestId: z.string().nullable(),
  clientRequestId: z.string().nullable(),
  before: z.unknown(),
  after: z.unknown(),
  prevHash: z.string().nullable(),
  hash: z.string().nullable(),
})

export const CheckpointLineSchema = z.strictObject({
  type: z.literal('checkpoint'),
  id: z.number().int(),
  at: z.string(),
  count: z.number().int(),
  lastEventId: z.number().int(),
  headHash: z.string(),
  signature: z.string(),
})

export const TrailLineSchema = z.discriminatedUnion('type', [EventLineSchema, CheckpointLineSchema])

export type EventLine = z.infer<typeof EventLineSchema>
export type CheckpointLine = z.infer<typeof CheckpointLineSchema>
export type TrailLine = EventLine | CheckpointLine

export const CHAIN_PROBLEMS = ['hash_mismatch', 'broken_link', 'bad_signature', 'missing_events'] as const
export type ChainProblem = (typeof CHAIN_PROBLEMS)[number]

export interface ChainVerdict {
  ok: boolean
  /** Links checked and found intact, from the first. */
  checked: number
  firstBadId: number | null
  problem: ChainProblem | null
  /** What was found, or how far the signatures reach, in words. */
  detail: string
  checkpoints: { checked: number; latest: Checkpoint | null }
}

/** The event as its link's hash covers it (trail.ts `contentOf`, from a line instead of a row). */
const hashedContentOf = (line: EventLine, prevHash: string | null) => ({
  at: line.at,
  actor: line.actor,
  action: line.action,
  entityType: line.entityType,
  entityId: line.entityId,
  requestId: line.requestId,
  ...(line.clientRequestId !== null ? { clientRequestId: line.clientRequestId } : {}),
  before: line.before,
  after: line.after,
  prevHash,
})

const withoutType = ({ type: _type, ...checkpoint }: CheckpointLine): Checkpoint => checkpoint

/**
 * Checks the trail line by line, in chain order, keeping only the running head: memory stays flat
 * however long the trail. Stops at the first problem (`event` and `checkpoint` then return false).
 * A checkpoint is trusted only if `publicKey` signed it; without a key, none is.
 */
export class ChainChecker {
  private checked = 0
  private prevHash: string | null = null
  private lastEventId: number | null = null
  private firstEventId: number | null = null
  /** The first event after the latest checkpoint that held: where an unsigned change can start. */
  private firstUnsigned: number | null = null
  private checkpointsChecked = 0
  private latest: Checkpoint | null = null
  private failure: { problem: ChainProblem; firstBadId: number | null; detail: string } | undefined

  constructor(private readonly publicKey: KeyObject | null) {}

  get failed(): boolean {
    return this.failure !== undefined
  }

  fail(problem: ChainProblem, firstBadId: number | null, detail: string): false {
    this.failure ??= { problem, firstBadId, detail }
    return false
  }

  event(line: EventLine): boolean {
    if (this.failure) return false
    if (line.seq === null) return this.fail('broken_link', line.id, `event ${line.id} is in no link of the chain, nor waiting to be linked`)
    const expected = this.checked + 1
    if (line.seq > expected) {
      const gap = line.seq - 1 === expected ? `link ${expected} is` : `links ${expected} to ${line.seq - 1} are`
      return this.fail('missing_events', line.id, `${gap} missing: the chain goes from link ${this.checked}${this.lastEventId === null ? '' : ` (event ${this.lastEventId})`} to link ${line.seq} (event ${line.id})`)
    }
    if (line.seq < expected) return this.fail('broken_link', line.id, `link ${line.seq} (event ${line.id}) comes after link ${this.checked}`)
    if (line.prevHash !== this.prevHash) {
      return this.fail('broken_link', line.id, `link ${line.seq} (event ${line.id}) does not point to the link before it${this.lastEventId === null ? ' (the first link points to none)' : ` (event ${this.lastEventId})`}`)
    }
    if (eventHash(hashedContentOf(line, this.prevHash)) !== line.hash) {
      return this.fail('hash_mismatch', line.id, `event ${line.id} (link ${line.seq}) is not the event its link hashed`)
    }
    this.checked = line.seq
    this.prevHash = line.hash
    this.lastEventId = line.id
    this.firstEventId ??= line.id
    this.firstUnsigned ??= line.id
    return true
  }

  async checkpoint(line: CheckpointLine): Promise<boolean> {
    if (this.failure) return false
    const name = `checkpoint ${line.id} (count ${line.count}, at ${line.at})`
    if (!this.publicKey || !(await checkpointSigned(this.publicKey, line))) {
      return this.fail('bad_signature', line.lastEventId, `${name} is not signed by the key${this.publicKey ? '' : ' (no key to check it with)'}`)
    }
    if (line.count > this.checked) {
      return this.fail('missing_events', line.lastEventId, `${name} signs ${line.count} links ending with event ${line.lastEventId}; the chain holds ${this.checked}: links ${this.checked + 1} to ${line.count} are missing`)
    }
    if (line.count < this.checked) return this.fail('broken_link', line.lastEventId, `${name} comes after link ${this.checked}, not after link ${line.count}`)
    if (line.headHash !== this.prevHash || line.lastEventId !== this.lastEventId) {
      const since = this.latest ? `checkpoint ${this.latest.id} (count ${this.latest.count})` : 'the first link'
      return this.fail(
        'hash_mismatch',
        this.firstUnsigned ?? line.lastEventId,
        `${name} signed event ${line.lastEventId} with head ${line.headHash}; link ${line.count} is now event ${this.lastEventId} with ${this.prevHash}: ` +
          `the chain was changed and recomputed after ${since}`,
      )
    }
    this.checkpointsChecked++
    this.latest = withoutType(line)
    this.firstUnsigned = null
    return true
  }

  /** Either kind of line. */
  add(line: TrailLine): boolean | Promise<boolean> {
    return line.type === 'event' ? this.event(line) : this.checkpoint(line)
  }

  /**
   * The verdict on everything seen. `requireCheckpoint`: a trail no checkpoint covers is not ok
   * (an export: nothing in it shows it came from the service).
   */
  finish({ requireCheckpoint = false }: { requireCheckpoint?: boolean } = {}): ChainVerdict {
    if (!this.failure && requireCheckpoint && this.checkpointsChecked === 0) {
      this.fail(
        'bad_signature',
        this.firstEventId,
        this.checked === 0 ? 'no events and no checkpoint: nothing to check' : `no checkpoint: nothing signs these ${this.checked} events, so nothing shows they are the service's`,
      )
    }
    const checkpoints = { checked: this.checkpointsChecked, latest: this.latest }
    if (this.failure) return { ok: false, checked: this.checked, ...this.failure, checkpoints }
    const unsigned = this.checked - (this.latest?.count ?? 0)
    const signedPart = this.latest
      ? `the latest (${this.latest.id}, at ${this.latest.at}) signs the first ${this.latest.count}`
      : 'none signed yet'
    const tail = unsigned > 0 ? `; the last ${unsigned} are linked but not yet signed` : ''
    return {
      ok: true,
      checked: this.checked,
      firstBadId: null,
      problem: null,
      detail: `${this.checked} events linked, ${this.checkpointsChecked} checkpoints verified: ${signedPart}${tail}`,
      checkpoints,
    }
  }
}

/**
 * The whole trail in the database, checked as an export of it would be (events left out of the
 * chain included), then what only the database holds: the kept personal values. Streamed (flat memory);
 * `limits.maxMs` bounds the walk. Link pending events first (AuditLinker), or they are not checked.
 */
export async function verifyChain(database: Database, publicKey: KeyObject | null = null, limits: ExportLimits = { maxMs: 3_600_000 }): Promise<ChainVerdict> {
  const checker = new ChainChecker(publicKey)
  const { batches, close } = await openTrailRows(database, (rows) => rows.map(trailLineOf), limits)
  try {
    walk: for await (const lines of batches) {
      for (const line of lines) {
        // Events are checked synchronously: no await (a microtask) per event, only per checkpoint.
        const intact = checker.add(line)
        if (!(intact === true || (intact !== false && (await intact)))) break walk
      }
    }
  } finally {
    await close()
  }
  // What an export does not hold: the personal values kept beside the events.
  const altered = checker.failed ? null : await firstAlteredValue(database.db)
  if (altered !== null) checker.fail('hash_mismatch', altered, `a personal value kept for event ${altered} no longer matches the digest its hash covers`)
  return checker.finish()
}
