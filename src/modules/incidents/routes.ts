/**
 * Incidents over HTTP. `security` reports and changes them; `asset_manager` may read them without
 * their free text (see `View`); `foi_officer` has no incident route at all (403).
 */
import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import type { FastifyRequest } from 'fastify'
import { writeContext } from '../../http/context.js'
import { pageOf } from '../../http/pagination.js'
import { expectedVersion, IfMatchHeaders, setCreated, setEtag } from '../../http/preconditions.js'
import { IdParams } from '../../http/schemas.js'
import { hasRole } from '../../plugins/auth.js'
import { withExample } from '../../plugins/openapi.js'
import { ProblemSchema } from '../../plugins/problems.js'
import {
  CloseBody,
  CreateIncidentBody,
  IncidentListQuery,
  IncidentNoteSchema,
  IncidentSchema,
  NoteBody,
  NoteListQuery,
  RecoveryBody,
  UpdateIncidentBody,
} from './schemas.js'
import {
  addNote,
  closeIncident,
  getIncident,
  listIncidents,
  listNotes,
  recoverIncident,
  reportIncident,
  updateIncident,
  type View,
} from './service.js'

const WRITE = ['security'] as const
const READ = ['security', 'asset_manager'] as const

const NOT_OPEN = ProblemSchema.meta({ description: 'The incident is no longer open (recovered or closed).' })

const viewOf = (request: FastifyRequest): View => ({ freeText: hasRole(request, 'security') })

export const incidentRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/incidents',
    {
      config: { access: WRITE, idempotent: true },
      schema: {
        operationId: 'reportIncident',
        tags: ['incidents'],
        summary: 'Report a device lost or stolen',
        body: withExample(CreateIncidentBody, {
          deviceId: '01943a6e-7c2b-7d4e-9f10-2b3c4d5e6f71',
          kind: 'stolen',
          occurredAt: '2025-03-14T18:30:00Z',
          reportedAt: '2025-03-14T21:05:00Z',
          location: { category: 'transit', description: 'Train from London to Bristol' },
          circumstances: 'Bag taken from the luggage rack while the custodian was away from the seat.',
          policeReference: 'BTP-25-031400',
          personalDataAtRisk: true,
          remoteWipe: 'requested',
        }),
        response: {
          201: IncidentSchema,
          400: ProblemSchema,
          409: ProblemSchema.meta({ description: 'The device is already lost or stolen, or retired.' }),
          422: ProblemSchema.meta({ description: 'deviceId names no device.' }),
        },
      },
    },
    async (request, reply) => {
      const incident = await reportIncident(app.db, writeContext(request), request.body)
      setCreated(reply, `/v1/incidents/${incident.id}`, incident)
      return reply.send(incident)
    },
  )

  app.get(
    '/v1/incidents',
    {
      config: { access: READ },
      schema: {
        operationId: 'listIncidents',
        tags: ['incidents'],
        summary: 'List incidents, newest reported first',
        querystring: IncidentListQuery,
        response: { 200: pageOf(IncidentSchema), 400: ProblemSchema },
      },
    },
    async (request) => listIncidents(app.db, request.query, viewOf(request)),
  )

  app.get(
    '/v1/incidents/:id',
    {
      config: { access: READ },
      schema: {
        operationId: 'getIncident',
        tags: ['incidents'],
        summary: 'Read an incident',
        params: IdParams,
        response: { 200: IncidentSchema, 404: ProblemSchema },
      },
    },
    async (request, reply) => {
      const incident = await getIncident(app.db, request.params.id, viewOf(request))
      setEtag(reply, incident.version)
      return incident
    },
  )

  app.patch(
    '/v1/incidents/:id',
    {
      config: { access: WRITE },
      schema: {
        operationId: 'updateIncident',
        tags: ['incidents'],
        summary: 'Change the follow-up fields of an incident (If-Match required)',
        params: IdParams,
        headers: IfMatchHeaders,
        body: withExample(UpdateIncidentBody, { icoReportedAt: '2025-03-16T10:00:00Z', remoteWipe: 'confirmed' }),
        response: { 200: IncidentSchema, 400: ProblemSchema, 404: ProblemSchema, 412: ProblemSchema, 428: ProblemSchema },
      },
    },
    async (request, reply) => {
      const version = expectedVersion(request)
      const incident = await updateIncident(app.db, writeContext(request), request.params.id, version, request.body)
      setEtag(reply, incident.version)
      return incident
    },
  )

  app.post(
    '/v1/incidents/:id/notes',
    {
      config: { access: WRITE, idempotent: true },
      schema: {
        operationId: 'addIncidentNote',
        tags: ['incidents'],
        summary: 'Add a follow-up note (a later police reference, a call from the custodian)',
        params: IdParams,
        body: withExample(NoteBody, { text: 'The custodian called: the bag held no papers.' }),
        response: { 201: IncidentNoteSchema, 400: ProblemSchema, 404: ProblemSchema },
      },
    },
    async (request, reply) => {
      const note = await addNote(app.db, writeContext(request), request.params.id, request.body.text)
      return reply.code(201).send(note)
    },
  )

  app.get(
    '/v1/incidents/:id/notes',
    {
      config: { access: READ },
      schema: {
        operationId: 'listIncidentNotes',
        tags: ['incidents'],
        summary: 'List the notes of an incident, oldest first',
        params: IdParams,
        querystring: NoteListQuery,
        response: { 200: pageOf(IncidentNoteSchema), 404: ProblemSchema },
      },
    },
    async (request) => listNotes(app.db, request.params.id, request.query, viewOf(request)),
  )

  app.post(
    '/v1/incidents/:id/recovery',
    {
      config: { access: WRITE },
      schema: {
        operationId: 'recordRecovery',
        tags: ['incidents'],
        summary: 'Record that the device was found; it goes back in stock',
        params: IdParams,
        body: withExample(RecoveryBody, { recoveredAt: '2025-03-20T12:00:00Z', condition: 'intact', notes: 'Handed in at lost property.' }),
        response: { 200: IncidentSchema, 400: ProblemSchema, 404: ProblemSchema, 409: NOT_OPEN },
      },
    },
    async (request, reply) => {
      const incident = await recoverIncident(app.db, writeContext(request), request.params.id, request.body)
      setEtag(reply, incident.version)
      return incident
    },
  )

  app.post(
    '/v1/incidents/:id/close',
    {
      config: { access: WRITE },
      schema: {
        operationId: 'closeIncident',
        tags: ['incidents'],
        summary: 'Write the device off (never found); it stays lost or stolen',
        params: IdParams,
        body: withExample(CloseBody, { reason: 'Not found after 90 days; written off.' }),
        response: { 200: IncidentSchema, 400: ProblemSchema, 404: ProblemSchema, 409: NOT_OPEN },
      },
    },
    async (request, reply) => {
      const incident = await closeIncident(app.db, writeContext(request), request.params.id, request.body)
      setEtag(reply, incident.version)
      return incident
    },
  )
}
