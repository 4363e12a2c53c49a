import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { writeContext } from '../../http/context.js'
import { pageOf } from '../../http/pagination.js'
import { expectedVersion, IfMatchHeaders, setCreated, setEtag } from '../../http/preconditions.js'
import { IdParams } from '../../http/schemas.js'
import { withExample } from '../../plugins/openapi.js'
import { ProblemSchema } from '../../plugins/problems.js'
import { CreateCustodianBody, CustodianListQuery, CustodianSchema, EraseCustodianBody, UpdateCustodianBody } from './schemas.js'
import { createCustodian, eraseCustodian, getCustodian, listCustodians, updateCustodian } from './service.js'

const CUSTODIAN_ROLES = ['security', 'asset_manager'] as const

export const custodianRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/custodians',
    {
      config: { access: CUSTODIAN_ROLES, idempotent: true },
      schema: {
        operationId: 'createCustodian',
        tags: ['custodians'],
        summary: 'Add a custodian (an MP, peer, member of staff or office)',
        body: withExample(CreateCustodianBody, {
          kind: 'mp',
          name: 'Alex Morgan',
          house: 'commons',
          constituency: 'Bristol North West',
          email: 'alex.morgan@example.org',
        }),
        response: { 201: CustodianSchema, 400: ProblemSchema },
      },
    },
    async (request, reply) => {
      const custodian = await createCustodian(app.db, writeContext(request), request.body)
      setCreated(reply, `/v1/custodians/${custodian.id}`, custodian)
      return reply.send(custodian)
    },
  )

  app.get(
    '/v1/custodians',
    {
      config: { access: CUSTODIAN_ROLES },
      schema: {
        operationId: 'listCustodians',
        tags: ['custodians'],
        summary: 'List custodians',
        querystring: CustodianListQuery,
        response: { 200: pageOf(CustodianSchema) },
      },
    },
    async (request) => listCustodians(app.db, request.query),
  )

  app.get(
    '/v1/custodians/:id',
    {
      config: { access: CUSTODIAN_ROLES },
      schema: {
        operationId: 'getCustodian',
        tags: ['custodians'],
        summary: 'Read a custodian',
        params: IdParams,
        response: { 200: CustodianSchema, 404: ProblemSchema },
      },
    },
    async (request, reply) => {
      const custodian = await getCustodian(app.db, request.params.id)
      setEtag(reply, custodian.version)
      return custodian
    },
  )

  app.patch(
    '/v1/custodians/:id',
    {
      config: { access: CUSTODIAN_ROLES },
      schema: {
        operationId: 'updateCustodian',
        tags: ['custodians'],
        summary: 'Change a custodian (If-Match required); leaving is active: false with leftOn',
        params: IdParams,
        headers: IfMatchHeaders,
        body: withExample(UpdateCustodianBody, { leftOn: '2024-07-04' }),
        response: { 200: CustodianSchema, 404: ProblemSchema, 412: ProblemSchema, 428: ProblemSchema },
      },
    },
    async (request, reply) => {
      const version = expectedVersion(request)
      const custodian = await updateCustodian(app.db, writeContext(request), request.params.id, version, request.body)
      setEtag(reply, custodian.version)
      return custodian
    },
  )

  app.post(
    '/v1/custodians/:id/erase',
    {
      config: { access: ['security'] },
      schema: {
        operationId: 'eraseCustodian',
        tags: ['custodians'],
        summary: "Erase a custodian's personal data now (a data subject's request)",
        description:
          'Name, e-mail and constituency become null here and "[erased]" in the audit trail; the record, its id and every count stay. Erasing again changes nothing.',
        params: IdParams,
        body: withExample(EraseCustodianBody, { reason: 'Erasure request ER-2026-014' }),
        response: {
          200: CustodianSchema,
          404: ProblemSchema,
          409: ProblemSchema.meta({ description: 'They hold a device or have an open incident.' }),
        },
      },
    },
    async (request, reply) => {
      const custodian = await eraseCustodian(app.db, writeContext(request), request.params.id, request.body.reason)
      setEtag(reply, custodian.version)
      return custodian
    },
  )
}
