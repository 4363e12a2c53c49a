/**
 * The audit log, for the security team: who changed what, when, from which request, with the
 * state before and after; a check that the hash chain and its signed checkpoints still hold; the
 * whole trail as NDJSON for an auditor to check offline; the checkpoints and the key that signs
 * them. Reads link whatever has committed first, so an event is listed (with its hash) as soon as
 * its write has answered.
 */
import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { and, desc, eq, getTableColumns, gte, lt, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import type { Config } from '../../config.js'
import { auditChain, auditCheckpoints, auditEvents } from '../../db/schema.js'
import { decodeCursor, PageQuery, pageOf, toPage } from '../../http/pagination.js'
import { DateString, iso, Uuid } from '../../http/schemas.js'
import { ukMidnight } from '../../time/uk.js'
import { openTrailExport } from './export.js'
import { withPersonalValues } from './personal.js'
import { CHAIN_PROBLEMS, verifyChain } from './verify.js'

const AuditEventSchema = z
  .object({
    id: z.number().int(),
    at: z.string(),
    actor: z.string(),
    action: z.string(),
    entityType: z.string(),
    entityId: z.string(),
    requestId: z.string().nullable().meta({ description: "The server's id of the request that made the change." }),
    clientRequestId: z.string().nullable().meta({ description: 'The x-request-id the client sent with that request, if any (its own name, not checked).' }),
    before: z.unknown(),
    after: z.unknown(),
    hash: z.string(),
    prevHash: z.string().nullable(),
  })
  .meta({ id: 'AuditEvent' })

const AuditQuery = z.strictObject({
  entityType: z.enum(['custodian', 'device', 'assignment', 'incident', 'stocktake', 'audit']).optional(),
  entityId: Uuid.optional(),
  actor: z.string().min(1).max(255).optional(),
  from: DateString.optional().meta({ description: 'First day (UK local), inclusive.' }),
  to: DateString.optional().meta({ description: 'Last day (UK local), exclusive.' }),
  ...PageQuery,
})

const AuditCheckpointSchema = z
  .object({
    id: z.number().int(),
    at: z.string(),
    count: z.number().int().meta({ description: 'How many links of the chain it signs: the first `count`, by seq.' }),
    lastEventId: z.number().int().meta({ description: 'The event of link `count`.' }),
    headHash: z.string().meta({ description: "That link's hash." }),
    signature: z.string().meta({ description: 'A compact JWS (EdDSA) whose payload is {at, count, headHash, lastEventId} as canonical (sorted-key) JSON.' }),
  })
  .meta({ id: 'AuditCheckpoint' })

const ChainVerdictSchema = z
  .object({
    ok: z.boolean(),
    checked: z.number().int().meta({ description: 'Links found intact, from the first.' }),
    firstBadId: z.number().int().nullable(),
    problem: z.enum(CHAIN_PROBLEMS).nullable(),
    detail: z.string().meta({ description: 'What was found, or how far the signatures reach, in words.' }),
    checkpoints: z.object({
      checked: z.number().int(),
      latest: AuditCheckpointSchema.nullable().meta({ description: 'The latest checkpoint that verified.' }),
    }),
  })
  .meta({ id: 'AuditChainVerdict' })

const AuditPublicKeySchema = z
  .object({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: z.string(),
    kid: z.string().meta({ description: "The key's RFC 7638 thumbprint, also in each signature's header." }),
    alg: z.literal('EdDSA'),
    use: z.literal('sig'),
  })
  .meta({ id: 'AuditPublicKey', description: 'The public key (a JWK) that verifies the checkpoints: `npm run audit:verify -- FILE --public-key KEY.jwk`.' })

const CheckpointQuery = z.strictObject({ ...PageQuery })

export const auditRoutes: FastifyPluginAsyncZod<{ config: Config }> = async (app, { config }) => {
  const limits = { maxMs: config.EXPORT_MAX_SECONDS * 1000 }

  app.get(
    '/v1/audit-events',
    {
      config: { access: ['security'] },
      schema: {
        operationId: 'listAuditEvents',
        tags: ['audit'],
        summary: 'List audit events, newest first',
        querystring: AuditQuery,
        response: { 200: pageOf(AuditEventSchema) },
      },
    },
    async (request) => {
      const query = request.query
      const cursor = decodeCursor(query.cursor, ['int'])
      const filters: (SQL | undefined)[] = [
        query.entityType ? eq(auditEvents.entityType, query.entityType) : undefined,
        query.entityId ? eq(auditEvents.entityId, query.entityId) : undefined,
        query.actor ? eq(auditEvents.actor, query.actor) : undefined,
        query.from ? gte(auditEvents.at, ukMidnight(query.from)) : undefined,
        query.to ? lt(auditEvents.at, ukMidnight(query.to)) : undefined,
        cursor ? lt(auditEvents.id, Number(cursor[0])) : undefined,
      ]
      await app.auditLinker.link()
      const db = request.database.db
      const rows = await db
        .select({ ...getTableColumns(auditEvents), hash: auditChain.hash, prevHash: auditChain.prevHash })
        .from(auditEvents)
        .innerJoin(auditChain, eq(auditChain.eventId, auditEvents.id))
        .where(and(...filters))
        .orderBy(desc(auditEvents.id))
        .limit(query.limit + 1)
      return toPage(
        await withPersonalValues(db, rows),
        query.limit,
        (row) => [row.id],
        (row) => ({ ...row, at: iso(row.at)! }),
      )
    },
  )

  app.get(
    '/v1/audit-events/verify',
    {
      config: { access: ['security'], heavy: true },
      schema: {
        operationId: 'verifyAuditChain',
        tags: ['audit'],
        summary: 'Check every link of the hash chain and every signed checkpoint; report the first event that does not hold',
        description:
          'Events newer than the latest checkpoint are checked for their links only: no signature covers them yet. ' +
          '`problem`: hash_mismatch (an event, or a kept personal value, is not what was hashed; or the chain was recomputed behind a checkpoint), ' +
          'broken_link (a link does not follow the one before; an event outside the chain), bad_signature (a checkpoint the key did not sign), ' +
          'missing_events (links gone from the middle or the end).',
        response: { 200: ChainVerdictSchema },
      },
    },
    async (request) => {
      await app.auditLinker.link()
      return verifyChain(request.database, await app.auditCheckpoints.publicKey(), limits)
    },
  )

  app.get(
    '/v1/audit-events/export',
    {
      config: { access: ['security'], heavy: true },
      schema: {
        operationId: 'exportAuditTrail',
        tags: ['audit'],
        summary: 'The whole audit trail and its checkpoints as NDJSON, in chain order, for checking offline',
        description:
          'One line per link, `{"type":"event", seq, id, at, actor, action, entityType, entityId, requestId, clientRequestId, before, after, prevHash, hash}` ' +
          '(as stored and hashed: personal values appear as their digests), and one per checkpoint, `{"type":"checkpoint", id, at, count, lastEventId, headHash, signature}`, ' +
          'right after the event at its `count`. A checkpoint of everything linked is written first when the chain has grown since the last one. ' +
          'Check it with `npm run audit:verify -- FILE --public-key KEY.jwk`. Streamed.',
        response: {
          200: {
            description: 'The trail, one JSON document per line.',
            content: { 'application/x-ndjson': { schema: z.string() } },
          },
        },
      },
    },
    async (request, reply) => {
      // So that the export ends signed (but for the checkpoint's own event): nothing in it need wait for the timer.
      await app.auditCheckpoints.checkpoint()
      await app.auditLinker.link()
      const { body, close } = await openTrailExport(request.database, limits)
      body.on('close', () => {
        close().catch((error: unknown) => request.log.warn({ err: error }, 'audit export stream did not close cleanly'))
      })
      const day = new Date().toISOString().slice(0, 10)
      return reply
        .type('application/x-ndjson; charset=utf-8')
        .header('content-disposition', `attachment; filename="audit-trail-${day}.ndjson"`)
        // A stream is sent as is (never serialised); the 200 schema above only documents it.
        .send(body as unknown as string)
    },
  )

  app.get(
    '/v1/audit-checkpoints',
    {
      config: { access: ['security'] },
      schema: {
        operationId: 'listAuditCheckpoints',
        tags: ['audit'],
        summary: "List the signed checkpoints of the chain's head, newest first",
        querystring: CheckpointQuery,
        response: { 200: pageOf(AuditCheckpointSchema) },
      },
    },
    async (request) => {
      const query = request.query
      const cursor = decodeCursor(query.cursor, ['int'])
      const rows = await request.database.db
        .select()
        .from(auditCheckpoints)
        .where(cursor ? lt(auditCheckpoints.id, Number(cursor[0])) : undefined)
        .orderBy(desc(auditCheckpoints.id))
        .limit(query.limit + 1)
      return toPage(
        rows,
        query.limit,
        (row) => [row.id],
        (row) => ({ ...row, at: iso(row.at)! }),
      )
    },
  )

  app.get(
    '/v1/audit-checkpoints/public-key',
    {
      config: { access: ['security'] },
      schema: {
        operationId: 'getAuditPublicKey',
        tags: ['audit'],
        summary: 'The public key (a JWK) that verifies the checkpoints',
        response: { 200: AuditPublicKeySchema },
      },
    },
    async () => (await app.auditCheckpoints.signingKey()).publicJwk,
  )
}
