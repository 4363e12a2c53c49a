import type { FastifyPluginAsyncZod, ZodTypeProvider } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { writeContext } from '../../http/context.js'
import { pageOf } from '../../http/pagination.js'
import { expectedVersion, IfMatchHeaders, setCreated, setEtag } from '../../http/preconditions.js'
import { IdParams } from '../../http/schemas.js'
import { withExample } from '../../plugins/openapi.js'
import { ProblemSchema } from '../../plugins/problems.js'
import { importProblem } from './import/check.js'
import { IMPORT_COLUMNS, readImportFile } from './import/parse.js'
import { importDevices } from './import/write.js'
import {
  CreateDeviceBody, DeviceListQuery, DeviceSchema, ImportProblemSchema, ImportResultSchema, RetireBody, TimelineItemSchema, TimelineQuery,
  UpdateDeviceBody,
} from './schemas.js'
import { type AssetTagRule, createDevice, getDevice, listDevices, retireDevice, updateDevice } from './service.js'
import { deviceTimeline } from './timeline.js'

const DEVICE_ROLES = ['security', 'asset_manager'] as const

const TAKEN = ProblemSchema.meta({ description: 'The asset tag or the serial number is already another device\'s (`errors` names which).' })

/** The import's body limit; the rest of the API keeps the default 1 MiB. */
const IMPORT_BODY_LIMIT = 64 * 1024 * 1024

/** Two lines of a file the import takes, for the document's example. */
const CSV_EXAMPLE_ROWS = [
  'HOC-LT-000124,laptop,Dell,Latitude 7440,CN0F7K2D4822,,true,true,official,2024-09-02,129900',
  'HOC-PH-000311,phone,Apple,iPhone 15,F2LXK9QPN72J,490154203237518,true,true,official_sensitive,2024-10-15,79900',
]

const CsvBody = z.string().meta({
  description: `CSV with the header row \`${IMPORT_COLUMNS.join(',')}\`; booleans \`true\`/\`false\`; blank optional cells.`,
})

export interface DeviceModuleOptions {
  /** The register's asset-tag scheme (from ASSET_TAG_PATTERN), applied on create, on change and in the import. */
  assetTagRule: AssetTagRule
}

export const deviceRoutes: FastifyPluginAsyncZod<DeviceModuleOptions> = async (app, { assetTagRule }) => {
  app.post(
    '/v1/devices',
    {
      config: { access: DEVICE_ROLES, idempotent: true },
      schema: {
        operationId: 'createDevice',
        tags: ['devices'],
        summary: 'Register a device',
        body: withExample(CreateDeviceBody, {
          assetTag: 'HOC-LT-000123',
          kind: 'laptop',
          make: 'Dell',
          model: 'Latitude 7440',
          serialNumber: 'CN0F7K2D4821',
          imei: null,
          encrypted: true,
          mdmEnrolled: true,
          classification: 'official',
          purchasedOn: '2024-09-02',
          costPence: 129900,
        }),
        response: { 201: DeviceSchema, 400: ProblemSchema, 409: TAKEN },
      },
    },
    async (request, reply) => {
      const device = await createDevice(app.db, writeContext(request), request.body, assetTagRule)
      setCreated(reply, `/v1/devices/${device.id}`, device)
      return reply.send(device)
    },
  )

  app.get(
    '/v1/devices',
    {
      config: { access: DEVICE_ROLES },
      schema: {
        operationId: 'listDevices',
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
        operationId: 'getDevice',
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
        operationId: 'updateDevice',
        tags: ['devices'],
        summary: 'Change a device\'s details (If-Match required); status changes only through assignment, return, incidents and retirement',
        params: IdParams,
        headers: IfMatchHeaders,
        body: withExample(UpdateDeviceBody, { model: 'Latitude 7450', mdmEnrolled: true }),
        response: { 200: DeviceSchema, 404: ProblemSchema, 409: TAKEN, 412: ProblemSchema, 428: ProblemSchema },
      },
    },
    async (request, reply) => {
      const version = expectedVersion(request)
      const device = await updateDevice(app.db, writeContext(request), request.params.id, version, request.body, assetTagRule)
      setEtag(reply, device.version)
      return device
    },
  )

  app.post(
    '/v1/devices/:id/retire',
    {
      config: { access: DEVICE_ROLES },
      schema: {
        operationId: 'retireDevice',
        tags: ['devices'],
        summary: 'Retire a device (only from in_stock)',
        params: IdParams,
        body: withExample(RetireBody, { reason: 'Battery failed; beyond economic repair.' }),
        response: { 200: DeviceSchema, 404: ProblemSchema, 409: ProblemSchema.meta({ description: 'The device is not in stock.' }) },
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
        operationId: 'getDeviceTimeline',
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
    // Only CSV is read here; any other type is 415. A file that is not UTF-8 is refused naming its line.
    scoped.removeAllContentTypeParsers()
    scoped.addContentTypeParser('text/csv', { parseAs: 'buffer', bodyLimit: IMPORT_BODY_LIMIT }, (_request, body, done) => {
      const file = readImportFile(body as Buffer)
      if ('text' in file) done(null, file.text)
      else done(importProblem(file.refused), undefined)
    })

    scoped.post(
      '/v1/devices/import',
      {
        bodyLimit: IMPORT_BODY_LIMIT,
        config: { access: DEVICE_ROLES, idempotent: true, heavy: true },
        schema: {
          operationId: 'importDevices',
          tags: ['devices'],
          summary: 'Import devices from CSV: all rows or none',
          consumes: ['text/csv'],
          body: withExample(CsvBody, `${IMPORT_COLUMNS.join(',')}\n${CSV_EXAMPLE_ROWS.join('\n')}\n`),
          response: { 201: ImportResultSchema, 413: ProblemSchema, 415: ProblemSchema, 422: ImportProblemSchema },
        },
      },
      async (request, reply) => {
        const result = await importDevices(request.database.db, writeContext(request), request.body, assetTagRule)
        return reply.code(201).send(result)
      },
    )
  })
}
