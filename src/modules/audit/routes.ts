/**
 * The audit log, for the security team: who changed what, when, from which request, with the
 * state before and after; and a check that the hash chain is intact. Both link whatever has
 * committed first, so an event is listed (with its hash) as soon as its write has answered.
 */
import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { and, desc, eq, getTableColumns, gte, lt, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import { auditChain, auditEvents } from '../../db/schema.js'
import { decodeCursor, PageQuery, pageOf, toPage } from '../../http/pagination.js'
import { DateString, iso, Uuid } from '../../http/schemas.js'
import { ukMidnight } from '../../time/uk.js'
import { verifyChain } from './trail.js'

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
  entityType: z.enum(['custodian', 'device', 'assignment', 'incident', 'stocktake']).optional(),
  entityId: Uuid.optional(),
  actor: z.string().min(1).max(255).optional(),
  from: DateString.optional().meta({ description: 'First day (UK local), inclusive.' }),
  to: DateString.optional().meta({ description: 'Last day (UK local), exclusive.' }),
  ...PageQuery,
})

const ChainVerdictSchema = z
  .object({ ok: z.boolean(), checked: z.number().int(), firstBadId: z.number().int().nullable() })
  .meta({ id: 'AuditChainVerdict' })

export const auditRoutes: FastifyPluginAsyncZod = async (app) => {
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
      const rows = await app.db
        .select({ ...getTableColumns(auditEvents), hash: auditChain.hash, prevHash: auditChain.prevHash })
        .from(auditEvents)
        .innerJoin(auditChain, eq(auditChain.eventId, auditEvents.id))
        .where(and(...filters))
        .orderBy(desc(auditEvents.id))
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
    '/v1/audit-events/verify',
    {
      config: { access: ['security'], heavy: true },
      schema: {
        operationId: 'verifyAuditChain',
        tags: ['audit'],
        summary: 'Recompute the hash chain and report the first event that does not match',
        response: { 200: ChainVerdictSchema },
      },
    },
    async (request) => {
      await app.auditLinker.link()
      return verifyChain(request.database.db)
    },
  )
}
