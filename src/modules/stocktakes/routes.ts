import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { writeContext } from '../../http/context.js'
import { pageOf } from '../../http/pagination.js'
import { setCreated, setEtag } from '../../http/preconditions.js'
import { IdParams } from '../../http/schemas.js'
import { ProblemSchema } from '../../plugins/problems.js'
import {
  AddScansBody,
  CloseStocktakeBody,
  CreateStocktakeBody,
  DeviceEntry,
  DiscrepanciesSchema,
  OverdueAuditQuery,
  ScanReceipt,
  StocktakeListQuery,
  StocktakeSchema,
} from './schemas.js'
import { addScans, closeStocktake, createStocktake, getDiscrepancies, getStocktake, listStocktakes, overdueAudit } from './service.js'

const STOCKTAKE_ROLES = ['security', 'asset_manager'] as const

/** 5,000 scans with locations run past the app-wide 1 MiB body limit. */
const SCAN_BODY_LIMIT = 4 * 1024 * 1024

export const stocktakeRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/stocktakes',
    {
      config: { access: STOCKTAKE_ROLES, idempotent: true },
      schema: {
        tags: ['stocktakes'],
        summary: 'Open a stocktake, optionally limited to one custodian or one kind of device',
        body: CreateStocktakeBody,
        response: { 201: StocktakeSchema, 400: ProblemSchema, 422: ProblemSchema },
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
        tags: ['stocktakes'],
        summary: 'Add up to 5,000 scans (by asset tag or serial number) to an open stocktake',
        params: IdParams,
        body: AddScansBody,
        response: { 200: ScanReceipt, 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 413: ProblemSchema },
      },
    },
    async (request) => addScans(app.db, writeContext(request), request.params.id, request.body.scans),
  )

  app.get(
    '/v1/stocktakes/:id/discrepancies',
    {
      config: { access: STOCKTAKE_ROLES },
      schema: {
        tags: ['stocktakes'],
        summary: 'What the stocktake found wrong (as frozen at closing, once closed)',
        params: IdParams,
        response: { 200: DiscrepanciesSchema, 404: ProblemSchema },
      },
    },
    async (request) => getDiscrepancies(app.db, request.params.id),
  )

  app.post(
    '/v1/stocktakes/:id/close',
    {
      config: { access: STOCKTAKE_ROLES },
      schema: {
        tags: ['stocktakes'],
        summary: 'Close a stocktake: no more scans, and its discrepancies are frozen',
        params: IdParams,
        body: CloseStocktakeBody,
        response: { 200: StocktakeSchema, 404: ProblemSchema, 409: ProblemSchema },
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
        tags: ['reports'],
        summary: 'In-service devices not seen for `days` days (default 180) or never: never-seen first, then oldest',
        querystring: OverdueAuditQuery,
        response: { 200: pageOf(DeviceEntry) },
      },
    },
    async (request) => overdueAudit(app.db, request.query),
  )
}
