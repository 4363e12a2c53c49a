import type { FastifyPluginAsyncZod, ZodTypeProvider } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { writeContext } from '../../http/context.js'
import { pageOf } from '../../http/pagination.js'
import { expectedVersion, IfMatchHeaders, setCreated, setEtag } from '../../http/preconditions.js'
import { IdParams } from '../../http/schemas.js'
import { ProblemSchema } from '../../plugins/problems.js'
import { IMPORT_COLUMNS } from './import/parse.js'
import { importDevices } from './import/write.js'
import {
  CreateDeviceBody, DeviceListQuery, DeviceSchema, ImportResultSchema, RetireBody, TimelineItemSchema, TimelineQuery, UpdateDeviceBody,
} from './schemas.js'
import { createDevice, getDevice, listDevices, retireDevice, updateDevice } from './service.js'
import { deviceTimeline } from './timeline.js'

const DEVICE_ROLES = ['security', 'asset_manager'] as const

/** The import's body limit; the rest of the API keeps the default 1 MiB. */
const IMPORT_BODY_LIMIT = 64 * 1024 * 1024

const CsvBody = z.string().meta({
  description: `CSV with the header row \`${IMPORT_COLUMNS.join(',')}\`; booleans \`true\`/\`false\`; blank optional cells.`,
})

export const deviceRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/devices',
    {
      config: { access: DEVICE_ROLES, idempotent: true },
      schema: {
        tags: ['devices'],
        summary: 'Register a device',
        body: CreateDeviceBody,
        response: { 201: DeviceSchema, 400: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request, reply) => {
      const device = await createDevice(app.db, writeContext(request), request.body)
      setCreated(reply, `/v1/devices/${device.id}`, device)
      return reply.send(device)
    },
  )

  app.get(
    '/v1/devices',
    {
      config: { access: DEVICE_ROLES },
      schema: {
        tags: ['devices'],
        summary: 'List devices',
        querystring: DeviceListQuery,
        response: { 200: pageOf(DeviceSchema) },
      },
    },
    async (request) => listDevices(app.db, request.query),
  )

  app.get(
    '/v1/devices/:id',
    {
      config: { access: DEVICE_ROLES },
      schema: {
        tags: ['devices'],
        summary: 'Read a device',
        params: IdParams,
        response: { 200: DeviceSchema, 404: ProblemSchema },
      },
    },
    async (request, reply) => {
      const device = await getDevice(app.db, request.params.id)
      setEtag(reply, device.version)
      return device
    },
  )

  app.patch(
    '/v1/devices/:id',
    {
      config: { access: DEVICE_ROLES },
      schema: {
        tags: ['devices'],
        summary: 'Change a device\'s details (If-Match required); status changes only through assignment, return, incidents and retirement',
        params: IdParams,
        headers: IfMatchHeaders,
        body: UpdateDeviceBody,
        response: { 200: DeviceSchema, 404: ProblemSchema, 409: ProblemSchema, 412: ProblemSchema, 428: ProblemSchema },
      },
    },
    async (request, reply) => {
      const version = expectedVersion(request)
      const device = await updateDevice(app.db, writeContext(request), request.params.id, version, request.body)
      setEtag(reply, device.version)
      return device
    },
  )

  app.post(
    '/v1/devices/:id/retire',
    {
      config: { access: DEVICE_ROLES },
      schema: {
        tags: ['devices'],
        summary: 'Retire a device (only from in_stock)',
        params: IdParams,
        body: RetireBody,
        response: { 200: DeviceSchema, 404: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request, reply) => {
      const device = await retireDevice(app.db, writeContext(request), request.params.id, request.body.reason)
      setEtag(reply, device.version)
      return device
    },
  )

  app.get(
    '/v1/devices/:id/timeline',
    {
      config: { access: DEVICE_ROLES },
      schema: {
        tags: ['devices'],
        summary: 'Everything that happened to a device, newest first (no free text)',
        params: IdParams,
        querystring: TimelineQuery,
        response: { 200: pageOf(TimelineItemSchema), 404: ProblemSchema },
      },
    },
    async (request) => deviceTimeline(app.db, request.params.id, request.query),
  )

  // Encapsulated (its own plugin context): its CSV parser and body limit apply to the import route
  // only, and the rest of the API keeps JSON.
  await app.register(async (plugin) => {
    const scoped = plugin.withTypeProvider<ZodTypeProvider>()
    // Only CSV is read here; any other type is 415.
    scoped.removeAllContentTypeParsers()
    scoped.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: IMPORT_BODY_LIMIT }, (_request, body, done) => {
      done(null, body)
    })

    scoped.post(
      '/v1/devices/import',
      {
        bodyLimit: IMPORT_BODY_LIMIT,
        config: { access: DEVICE_ROLES, idempotent: true },
        schema: {
          tags: ['devices'],
          summary: 'Import devices from CSV: all rows or none',
          consumes: ['text/csv'],
          body: CsvBody,
          response: { 201: ImportResultSchema, 413: ProblemSchema, 415: ProblemSchema, 422: ProblemSchema },
        },
      },
      async (request, reply) => {
        const result = await importDevices(app.db, writeContext(request), request.body)
        return reply.code(201).send(result)
      },
    )
  })
}
