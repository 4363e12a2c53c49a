import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { z } from 'zod'
import type { Config } from '../../config.js'
import { problems, ProblemSchema } from '../../plugins/problems.js'
import { PeriodQuery, resolvePeriod } from '../reports/periods.js'
import { openFoiCsv, openFoiJson } from './foi.js'
import { FoiRecordSchema } from './schemas.js'

const EXPORT_ROLES = ['security', 'foi_officer'] as const

export const EXPORT_TYPES = ['text/csv', 'application/json'] as const
export type ExportType = (typeof EXPORT_TYPES)[number]

/**
 * Content negotiation over the `Accept` header (RFC 9110 §12.5.1): each type we offer takes the q
 * of the most specific range that matches it (`text/csv` over `text/*` over `*\/*`); the highest q
 * wins, then the more specific match, then CSV (the default). No header means CSV. Returns
 * undefined when neither is acceptable.
 */
export function negotiateExportType(accept: string | undefined): ExportType | undefined {
  if (accept === undefined || accept.trim() === '') return 'text/csv'
  const ranges = accept.split(',').flatMap((part) => {
    const [range, ...params] = part.split(';').map((piece) => piece.trim().toLowerCase())
    if (!range || !/^[a-z0-9!#$&^_.+-]+\/(?:[a-z0-9!#$&^_.+-]+|\*)$|^\*\/\*$/.test(range)) return []
    let q = 1
    for (const param of params) {
      const match = /^q\s*=\s*([0-9](?:\.[0-9]{0,3})?)$/.exec(param)
      if (match) q = Math.min(1, Number(match[1]))
    }
    const [type, subtype] = range.split('/') as [string, string]
    return [{ type, subtype, q }]
  })
  let best: { type: ExportType; q: number; specificity: number } | undefined
  for (const offered of EXPORT_TYPES) {
    const [type, subtype] = offered.split('/') as [string, string]
    let match: { q: number; specificity: number } | undefined
    for (const range of ranges) {
      const specificity =
        range.type === type && range.subtype === subtype ? 2 : range.type === type && range.subtype === '*' ? 1 : range.type === '*' ? 0 : -1
      if (specificity < 0) continue
      if (!match || specificity > match.specificity) match = { q: range.q, specificity }
    }
    if (!match || match.q <= 0) continue
    if (!best || match.q > best.q || (match.q === best.q && match.specificity > best.specificity)) {
      best = { type: offered, ...match }
    }
  }
  return best?.type
}

export const exportRoutes: FastifyPluginAsyncZod<{ config: Config }> = async (app, { config }) => {
  const limits = { maxMs: config.EXPORT_MAX_SECONDS * 1000 }

  app.get(
    '/v1/exports/foi/lost-stolen',
    {
      config: { access: EXPORT_ROLES, heavy: true },
      schema: {
        operationId: 'exportFoiLostStolen',
        tags: ['exports'],
        summary: 'The FOI list of lost and stolen devices for a period (CSV, or JSON by Accept)',
        description:
          'Columns: reference, date_reported, item_type, lost_or_stolen, location_category, encrypted, ' +
          'personal_data_at_risk, remote_wipe, recovered, date_recovered, status. Booleans are yes/no in CSV. ' +
          'Streamed; `text/csv` unless `Accept` prefers `application/json`; 406 when it allows neither.',
        querystring: PeriodQuery,
        response: {
          200: {
            description: 'The rows of the period, oldest report first.',
            content: {
              'text/csv': { schema: z.string().meta({ description: 'A header row, then one line per incident (CRLF line ends).' }) },
              'application/json': { schema: z.array(FoiRecordSchema) },
            },
          },
          400: ProblemSchema,
          406: ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      const period = resolvePeriod(request.query)
      const type = negotiateExportType(request.headers.accept)
      if (!type) throw problems.notAcceptable('This export is available as text/csv or application/json.')
      const extension = type === 'text/csv' ? 'csv' : 'json'
      const { body, close } = await (type === 'text/csv' ? openFoiCsv : openFoiJson)(request.database, period, limits)
      body.on('close', () => {
        close().catch((error: unknown) => request.log.warn({ err: error }, 'FOI export stream did not close cleanly'))
      })
      return reply
        .type(`${type}; charset=utf-8`)
        .header('content-disposition', `attachment; filename="lost-stolen-${period.label}.${extension}"`)
        .header('vary', 'Accept')
        // A stream is sent as is (never serialised); the 200 schema above only documents it.
        .send(body as unknown as string)
    },
  )
}
