/**
 * Custodians: the people and offices that hold devices. Nobody is ever deleted; a member who
 * leaves becomes inactive with a `leftOn` date, and keeps their history.
 */
import { and, asc, eq, gt, type SQL, sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../db/client.js'
import { newId } from '../../db/ids.js'
import { preparedQuery } from '../../db/prepared.js'
import { custodians } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'
import { decodeCursor, toPage } from '../../http/pagination.js'
import { staleVersion } from '../../http/preconditions.js'
import { iso } from '../../http/schemas.js'
import { problems } from '../../plugins/problems.js'
import { ukToday } from '../../time/uk.js'
import { erasePersonalValues } from '../audit/personal.js'
import { recordAudit } from '../audit/trail.js'
import type { CreateCustodianInput, Custodian, UpdateCustodianInput } from './schemas.js'

type CustodianRow = typeof custodians.$inferSelect

export function toCustodian(row: CustodianRow): Custodian {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    house: row.house,
    constituency: row.constituency,
    email: row.email,
    active: row.active,
    leftOn: row.leftOn,
    erasedAt: iso(row.erasedAt),
    createdAt: iso(row.createdAt)!,
    updatedAt: iso(row.updatedAt)!,
    version: row.version,
  }
}

interface Membership {
  kind: CustodianRow['kind']
  house: CustodianRow['house']
  active: boolean
  leftOn: string | null
}

/**
 * Rules across fields: an MP sits in the Commons and a peer in the Lords; someone who has left
 * (`leftOn`) is not active. Giving `leftOn` alone makes the custodian inactive; making a
 * custodian active again (re-elected) clears `leftOn`.
 */
function settleMembership(current: Membership, change: Partial<Membership>): Membership {
  // Only the membership fields: spreading the whole row here would overwrite the PATCH's other fields.
  const next = { kind: current.kind, house: current.house, active: current.active, leftOn: current.leftOn, ...change }
  if (change.leftOn && change.active === undefined) next.active = false
  if (change.active === true && change.leftOn === undefined) next.leftOn = null
  const errors = []
  if (next.kind === 'mp' && next.house === 'lords') errors.push({ path: 'body.house', message: 'an MP sits in the commons' })
  if (next.kind === 'peer' && next.house === 'commons') errors.push({ path: 'body.house', message: 'a peer sits in the lords' })
  if (next.active && next.leftOn) errors.push({ path: 'body.active', message: 'a custodian who has left (leftOn) cannot be active' })
  if (next.leftOn && next.leftOn > ukToday()) {
    errors.push({ path: 'body.leftOn', message: 'must not be in the future' })
  }
  if (errors.length > 0) throw problems.validation(errors)
  return next
}

export async function createCustodian(db: DbOrTx, context: WriteContext, input: CreateCustodianInput): Promise<Custodian> {
  const defaultHouse = input.kind === 'mp' ? 'commons' : input.kind === 'peer' ? 'lords' : null
  const membership = settleMembership(
    { kind: input.kind, house: input.house ?? defaultHouse, active: true, leftOn: null },
    { ...(input.active !== undefined ? { active: input.active } : {}), ...(input.leftOn ? { leftOn: input.leftOn } : {}) },
  )
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(custodians)
      .values({
        id: newId(),
        name: input.name,
        constituency: input.constituency ?? null,
        email: input.email ?? null,
        ...membership,
        createdBy: context.actor,
      })
      .returning()
    const created = toCustodian(row!)
    await recordAudit(tx, context, { action: 'custodian.created', entityType: 'custodian', entityId: created.id, after: created })
    return created
  })
}

/** With `lock`, the row is held FOR SHARE until commit: it cannot be deactivated meanwhile. */
const custodianById = preparedQuery('custodian_by_id', (db) =>
  db.select().from(custodians).where(eq(custodians.id, sql.placeholder('id'))),
)

export async function findCustodian(db: DbOrTx, id: string, lock = false): Promise<CustodianRow | undefined> {
  const [row] = lock ? await db.select().from(custodians).where(eq(custodians.id, id)).for('share') : await custodianById(db, { id })
  return row
}

export async function getCustodian(db: DbOrTx, id: string): Promise<Custodian> {
  const row = await findCustodian(db, id)
  if (!row) throw problems.notFound(`There is no custodian ${id}.`)
  return toCustodian(row)
}

export async function updateCustodian(
  db: DbOrTx,
  context: WriteContext,
  id: string,
  version: number,
  change: UpdateCustodianInput,
): Promise<Custodian> {
  return db.transaction(async (tx) => {
    const current = await findCustodian(tx, id)
    if (!current) throw problems.notFound(`There is no custodian ${id}.`)
    if (current.version !== version) staleVersion('custodian')
    if (current.erasedAt) throw problems.conflict(`Custodian ${id} was erased: their record stays only as an erased person.`)
    const { kind, house, active, leftOn, ...plain } = change
    const membership = settleMembership(current, {
      ...(kind !== undefined ? { kind } : {}),
      ...(house !== undefined ? { house } : {}),
      ...(active !== undefined ? { active } : {}),
      ...(leftOn !== undefined ? { leftOn } : {}),
    })
    // The version check is repeated inside the UPDATE: of two writers holding the same ETag, one wins.
    const [row] = await tx
      .update(custodians)
      .set({ ...plain, ...membership, updatedAt: new Date(), version: sql`${custodians.version} + 1` })
      .where(and(eq(custodians.id, id), eq(custodians.version, version)))
      .returning()
    if (!row) staleVersion('custodian')
    const before = toCustodian(current)
    const after = toCustodian(row)
    await recordAudit(tx, context, { action: 'custodian.updated', entityType: 'custodian', entityId: id, before, after })
    return after
  })
}

export interface CustodianListFilter {
  active?: boolean | undefined
  kind?: CustodianRow['kind'] | undefined
  q?: string | undefined
  limit: number
  cursor?: string | undefined
}

/** `%` and `_` in a search are literal characters, not wildcards. */
export const likeEscape = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`)

export async function listCustodians(db: DbOrTx, filter: CustodianListFilter) {
  const cursor = decodeCursor(filter.cursor, ['uuid'])
  const conditions: (SQL | undefined)[] = [
    filter.active !== undefined ? eq(custodians.active, filter.active) : undefined,
    filter.kind ? eq(custodians.kind, filter.kind) : undefined,
    filter.q ? sql`lower(${custodians.name}) LIKE ${`%${likeEscape(filter.q.toLowerCase())}%`}` : undefined,
    cursor ? gt(custodians.id, String(cursor[0])) : undefined,
  ]
  const rows = await db
    .select()
    .from(custodians)
    .where(and(...conditions))
    .orderBy(asc(custodians.id))
    .limit(filter.limit + 1)
  return toPage(rows, filter.limit, (row) => [row.id], toCustodian)
}

/**
 * Erases a custodian's personal data now (a data subject's request, or the retention schedule):
 * name, e-mail and constituency in the register, their values in the audit trail, and any stored
 * response that repeats them. The row stays, with its id and kind, so counts, reports and the
 * devices' histories are unchanged. Refused (409) while they hold a device or have an open
 * incident. The erasure's own event says who erased and why, not what. Erasing twice changes nothing.
 */
export async function eraseCustodian(db: DbOrTx, context: WriteContext, id: string, reason: string): Promise<Custodian> {
  return db.transaction(async (tx) => {
    const [current] = await tx.select().from(custodians).where(eq(custodians.id, id)).for('update')
    if (!current) throw problems.notFound(`There is no custodian ${id}.`)
    if (current.erasedAt) return toCustodian(current)
    const [holding] = await rowsOf<{ devices: number; incidents: number }>(
      tx,
      sql`SELECT (SELECT count(*)::int FROM devices WHERE current_custodian_id = ${id}::uuid) AS devices,
                 (SELECT count(*)::int FROM incidents WHERE custodian_id = ${id}::uuid AND status = 'open') AS incidents`,
    )
    if (holding!.devices > 0) throw problems.conflict(`Custodian ${id} holds ${holding!.devices} device(s): return them before erasing.`)
    if (holding!.incidents > 0) throw problems.conflict(`Custodian ${id} has an open incident: close or recover it before erasing.`)
    const [row] = await tx
      .update(custodians)
      .set({ name: null, email: null, constituency: null, erasedAt: sql`now()`, updatedAt: sql`now()`, version: sql`${custodians.version} + 1` })
      .where(eq(custodians.id, id))
      .returning()
    const valuesErased = await erasePersonalValues(tx, 'custodian', id)
    // A replayed response would otherwise give the name back (they expire within a day anyway).
    await tx.execute(sql`DELETE FROM idempotency_keys WHERE strpos(response_body::text, ${id}) > 0`)
    const erased = toCustodian(row!)
    await recordAudit(tx, context, {
      action: 'custodian.erased',
      entityType: 'custodian',
      entityId: id,
      after: { erasedAt: erased.erasedAt, reason, valuesErased, version: erased.version },
    })
    return erased
  })
}
