/**
 * The idempotency plugin's two writes, batched: every idempotent create claims its key before it
 * runs and stores its response after, so under load these were a third of the service's
 * statements (and commits). Claims waiting at the same time go in one INSERT, responses in one
 * UPDATE (see db/batches.ts).
 */
import { sql } from 'drizzle-orm'
import { batched } from '../db/batches.js'
import { preparedStatement } from '../db/prepared.js'

export interface Claim {
  caller: string
  key: string
  method: string
  path: string
  requestHash: string
  createdAt: Date
  expiresAt: Date
}

export interface StoredResponse {
  caller: string
  key: string
  status: number
  /** The exact text sent, kept as a jsonb string so that a replay is the same bytes. */
  body: string
  headers: Record<string, string>
}

const placeholder = (name: string) => sql.placeholder(name)

const insertClaims = preparedStatement<{ caller: string; key: string }>(
  'idempotency_claims',
  () => sql`INSERT INTO idempotency_keys (caller, key, method, path, request_hash, created_at, expires_at)
    SELECT * FROM unnest(${placeholder('callers')}::text[], ${placeholder('keys')}::text[], ${placeholder('methods')}::text[],
                         ${placeholder('paths')}::text[], ${placeholder('hashes')}::text[],
                         ${placeholder('created')}::timestamptz[], ${placeholder('expires')}::timestamptz[])
    ON CONFLICT DO NOTHING
    RETURNING caller, key`,
)

const updateResponses = preparedStatement(
  'idempotency_responses',
  () => sql`UPDATE idempotency_keys AS k
    SET response_status = u.status, response_body = to_jsonb(u.body), response_headers = u.headers::jsonb
    FROM unnest(${placeholder('callers')}::text[], ${placeholder('keys')}::text[], ${placeholder('statuses')}::int[],
                ${placeholder('bodies')}::text[], ${placeholder('headers')}::text[]) AS u(caller, key, status, body, headers)
    WHERE k.caller = u.caller AND k.key = u.key`,
)

const idOf = (entry: { caller: string; key: string }) => `${entry.caller}\u0000${entry.key}`

/** Resolves true when this request's claim inserted the key (it may run), false when the key was there. */
export const claimKey = batched<Claim, boolean>('idempotency-claims', async (db, batch) => {
  // One request per key in a statement: a second one for the same key is told the key is
  // taken (it is, by the first), so it goes on to replay or 409 like any later request.
  const first = new Map<string, Claim>()
  for (const claim of batch) if (!first.has(idOf(claim))) first.set(idOf(claim), claim)
  const unique = [...first.values()]
  const inserted = await insertClaims(db, {
    callers: unique.map((c) => c.caller),
    keys: unique.map((c) => c.key),
    methods: unique.map((c) => c.method),
    paths: unique.map((c) => c.path),
    hashes: unique.map((c) => c.requestHash),
    created: unique.map((c) => c.createdAt.toISOString()),
    expires: unique.map((c) => c.expiresAt.toISOString()),
  })
  const claimed = new Set(inserted.map(idOf))
  return batch.map((claim) => first.get(idOf(claim)) === claim && claimed.has(idOf(claim)))
})

/** Stores a claimed key's response, for replays. */
export const storeResponse = batched<StoredResponse, void>('idempotency-responses', async (db, batch) => {
  await updateResponses(db, {
    callers: batch.map((r) => r.caller),
    keys: batch.map((r) => r.key),
    statuses: batch.map((r) => r.status),
    bodies: batch.map((r) => r.body),
    headers: batch.map((r) => JSON.stringify(r.headers)),
  })
  return batch.map(() => undefined)
})
