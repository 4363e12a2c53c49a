import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { writeContext } from '../../http/context.js'
import { pageOf } from '../../http/pagination.js'
import { IdParams } from '../../http/schemas.js'
import { withExample } from '../../plugins/openapi.js'
import { ProblemSchema } from '../../plugins/problems.js'
import { AssignBody, AssignmentListQuery, AssignmentSchema, ReturnBody, UnreturnedItemSchema, UnreturnedQuery } from './schemas.js'
import { assignDevice, listCustodianAssignments, listDeviceAssignments, listUnreturned, returnDevice } from './service.js'

const ASSIGNMENT_ROLES = ['security', 'asset_manager'] as const

export const assignmentRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/devices/:id/assignment',
    {
      config: { access: ASSIGNMENT_ROLES, idempotent: true },
      schema: {
        operationId: 'assignDevice',
        tags: ['assignments'],
        summary: 'Hand a device in stock to an active custodian',
        params: IdParams,
        body: withExample(AssignBody, { custodianId: '01943a6e-7c2b-7d4e-9f10-2b3c4d5e6f70', assignedAt: '2025-01-06T09:00:00Z' }),
        response: {
          201: AssignmentSchema,
          404: ProblemSchema,
          409: ProblemSchema.meta({ description: 'The device is not in stock, or the custodian is not active.' }),
          422: ProblemSchema.meta({ description: 'custodianId names no custodian, or assignedAt is before the device came back from the last one.' }),
        },
      },
    },
    async (request, reply) => {
      const assignment = await assignDevice(app.db, writeContext(request), request.params.id, request.body)
      reply.header('location', `/v1/devices/${request.params.id}/assignments`)
      return reply.code(201).send(assignment)
    },
  )

  app.post(
    '/v1/devices/:id/return',
    {
      config: { access: ASSIGNMENT_ROLES },
      schema: {
        operationId: 'returnDevice',
        tags: ['assignments'],
        summary: 'Take a device back from its custodian (closes the open assignment)',
        params: IdParams,
        body: withExample(ReturnBody.nullish(), { returnedAt: '2025-06-30T16:00:00Z' }),
        response: {
          200: AssignmentSchema,
          404: ProblemSchema,
          409: ProblemSchema.meta({ description: 'The device is not assigned.' }),
          422: ProblemSchema.meta({ description: 'returnedAt is before the device was handed out.' }),
        },
      },
    },
    async (request) => returnDevice(app.db, writeContext(request), request.params.id, request.body ?? {}),
  )

  app.get(
    '/v1/devices/:id/assignments',
    {
      config: { access: ASSIGNMENT_ROLES },
      schema: {
        operationId: 'listDeviceAssignments',
        tags: ['assignments'],
        summary: 'A device\'s assignment history, newest first',
        params: IdParams,
        querystring: AssignmentListQuery,
        response: { 200: pageOf(AssignmentSchema), 404: ProblemSchema },
      },
    },
    async (request) => listDeviceAssignments(app.db, request.params.id, request.query),
  )

  app.get(
    '/v1/custodians/:id/assignments',
    {
      config: { access: ASSIGNMENT_ROLES },
      schema: {
        operationId: 'listCustodianAssignments',
        tags: ['assignments'],
        summary: 'A custodian\'s assignment history, newest first',
        params: IdParams,
        querystring: AssignmentListQuery,
        response: { 200: pageOf(AssignmentSchema), 404: ProblemSchema },
      },
    },
    async (request) => listCustodianAssignments(app.db, request.params.id, request.query),
  )

  app.get(
    '/v1/reports/unreturned',
    {
      config: { access: ['asset_manager', 'security'] },
      schema: {
        operationId: 'listUnreturnedDevices',
        tags: ['reports'],
        summary: 'Devices still assigned to custodians who are inactive or have left',
        querystring: UnreturnedQuery,
        response: { 200: pageOf(UnreturnedItemSchema) },
      },
    },
    async (request) => listUnreturned(app.db, request.query),
  )
}
