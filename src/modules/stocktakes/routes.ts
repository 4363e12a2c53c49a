import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { writeContext } from '../../http/context.js'
import { pageOf } from '../../http/pagination.js'
import { setCreated, setEtag } from '../../http/preconditions.js'
import { IdParams } from '../../http/schemas.js'
import { withExample } from '../../plugins/openapi.js'
import { problems, ProblemSchema } from '../../plugins/problems.js'
import {
  AddScansBody,
  CloseStocktakeBody,
  CreateStocktakeBody,
  DeviceEntry,
  DISCREPANCY_CLASSES,
  DiscrepanciesSchema,
  DiscrepancyPage,
  DiscrepancyPageParams,
  DiscrepancyPageQuery,
  isDiscrepancyClass,
  OverdueAuditQuery,
  ScanReceipt,
  StocktakeListQuery,
  StocktakeSchema,
} from './schemas.js'
import {
  addScans,
  closeStocktake,
  createStocktake,
  getDiscrepancies,
  getDiscrepancyPage,
  getStocktake,
  listStocktakes,
  overdueAudit,
} from './service.js'

const STOCKTAKE_ROLES = ['security', 'asset_manager'] as const

/** 5,000 scans with locations run past the app-wide 1 MiB body limit. */
const SCAN_BODY_LIMIT = 4 * 1024 * 1024

export const stocktakeRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/stocktakes',
    {
      config: { access: STOCKTAKE_ROLES, idempotent: true },
      schema: {
        operationId: 'createStocktake',
        tags: ['stocktakes'],
        summary: 'Open a stocktake, optionally limited to one custodian or one kind of device',
        body: withExample(CreateStocktakeBody, { name: 'Portcullis House, spring 2025', scope: { kind: 'laptop' } }),
        response: { 201: StocktakeSchema, 400: ProblemSchema, 422: ProblemSchema.meta({ description: 'scope.custodianId names no custodian.' }) },
      },
    },
    async (request, reply) => {
      const stocktake = await createStocktake(app.db, writeContext(request), request.body)
      setCreated(reply, `/v1/stocktakes/${stocktake.id}`, stocktake)
      return reply.send(stocktake)
    },
  )

  app.get(
    '/v1/stocktakes',
    {
      config: { access: STOCKTAKE_ROLES },
      schema: {
        operationId: 'listStocktakes',
        tags: ['stocktakes'],
        summary: 'List stocktakes',
        querystring: StocktakeListQuery,
        response: { 200: pageOf(StocktakeSchema) },
      },
    },
    async (request) => listStocktakes(app.db, request.query),
  )

  app.get(
    '/v1/stocktakes/:id',
    {
      config: { access: STOCKTAKE_ROLES },
      schema: {
        operationId: 'getStocktake',
        tags: ['stocktakes'],
        summary: 'Read a stocktake with its counts of scans and of each discrepancy class',
        params: IdParams,
        response: { 200: StocktakeSchema, 404: ProblemSchema },
      },
    },
    async (request, reply) => {
      const stocktake = await getStocktake(app.db, request.params.id)
      setEtag(reply, stocktake.version)
      return stocktake
    },
  )

  app.post(
    '/v1/stocktakes/:id/scans',
    {
      bodyLimit: SCAN_BODY_LIMIT,
      config: { access: STOCKTAKE_ROLES, idempotent: true },
      schema: {
        operationId: 'addStocktakeScans',
        tags: ['stocktakes'],
        summary: 'Add up to 5,000 scans (by asset tag or serial number) to an open stocktake',
        params: IdParams,
        body: withExample(AddScansBody, {
          scans: [
            { assetTag: 'HOC-LT-000123', seenAt: '2025-04-02T10:15:00Z', location: 'Portcullis House, room 1.12' },
            { serialNumber: 'CN0F7K2D4822', seenAt: '2025-04-02T10:16:30Z' },
          ],
        }),
        response: {
          200: ScanReceipt,
          400: ProblemSchema,
          404: ProblemSchema,
          409: ProblemSchema.meta({ description: 'The stocktake is closed.' }),
          413: ProblemSchema,
        },
      },
    },
    async (request) => addScans(app.db, writeContext(request), request.params.id, request.body.scans),
  )

  app.get(
    '/v1/stocktakes/:id/discrepancies',
    {
      config: { access: STOCKTAKE_ROLES, heavy: true },
      schema: {
        operationId: 'getStocktakeDiscrepancies',
        tags: ['stocktakes'],
        summary: 'What the stocktake found wrong (as frozen at closing, once closed)',
        params: IdParams,
        response: { 200: DiscrepanciesSchema, 404: ProblemSchema },
      },
    },
    async (request) => getDiscrepancies(request.database.db, request.params.id),
  )

  app.get(
    '/v1/stocktakes/:id/discrepancies/:class',
    {
      config: { access: STOCKTAKE_ROLES, heavy: true },
      schema: {
        operationId: 'listStocktakeDiscrepancies',
        tags: ['stocktakes'],
        summary: 'One class of what the stocktake found wrong, a page at a time (as frozen at closing, once closed)',
        description:
          `\`class\` is one of ${DISCREPANCY_CLASSES.map((name) => `\`${name}\``).join(', ')}; each item is as in that list of ` +
          'the whole document, in the same order (devices by asset tag, unknown identifiers by kind then identifier).',
        params: DiscrepancyPageParams,
        querystring: DiscrepancyPageQuery,
        response: { 200: DiscrepancyPage, 400: ProblemSchema, 404: ProblemSchema },
      },
    },
    async (request) => {
      const { id, class: discrepancyClass } = request.params
      if (!isDiscrepancyClass(discrepancyClass)) {
        throw problems.validation([{ path: 'params.class', message: `must be one of ${DISCREPANCY_CLASSES.join(', ')}` }])
      }
      return getDiscrepancyPage(request.database.db, id, discrepancyClass, request.query)
    },
  )

  app.post(
    '/v1/stocktakes/:id/close',
    {
      config: { access: STOCKTAKE_ROLES },
      schema: {
        operationId: 'closeStocktake',
        tags: ['stocktakes'],
        summary: 'Close a stocktake: no more scans, and its discrepancies are frozen',
        params: IdParams,
        body: withExample(CloseStocktakeBody, {}),
        response: { 200: StocktakeSchema, 404: ProblemSchema, 409: ProblemSchema.meta({ description: 'The stocktake is already closed.' }) },
      },
    },
    async (request, reply) => {
      const stocktake = await closeStocktake(app.db, writeContext(request), request.params.id)
      setEtag(reply, stocktake.version)
      return stocktake
    },
  )

  app.get(
    '/v1/reports/overdue-audit',
    {
      config: { access: STOCKTAKE_ROLES },
      schema: {
        operationId: 'listOverdueAudit',
        tags: ['reports'],
        summary: 'In-service devices not seen for `days` days (default 180) or never: never-seen first, then oldest',
        querystring: OverdueAuditQuery,
        response: { 200: pageOf(DeviceEntry) },
      },
    },
    async (request) => overdueAudit(app.db, request.query),
  )
}
