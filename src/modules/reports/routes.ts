import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { z } from 'zod'
import { hasRole } from '../../plugins/auth.js'
import { ProblemSchema } from '../../plugins/problems.js'
import { renderRiskChart } from './chart.js'
import { PeriodQuery, resolvePeriod } from './periods.js'
import { riskSummary, RiskSummarySchema } from './risk-summary.js'

const SUMMARY_ROLES = ['security', 'asset_manager', 'foi_officer'] as const

export const reportRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/reports/risk-summary',
    {
      config: { access: SUMMARY_ROLES, heavy: true },
      schema: {
        operationId: 'getRiskSummary',
        tags: ['reports'],
        summary: 'Risk summary of a period (year with basis calendar|financial, or from/to)',
        description: '`repeatCustodians` is present only for the security role.',
        querystring: PeriodQuery,
        response: { 200: RiskSummarySchema, 400: ProblemSchema },
      },
    },
    async (request) => {
      const period = resolvePeriod(request.query)
      // Only security may see people: the key is absent for everyone else, not empty.
      return riskSummary(request.database.db, period, { withCustodians: hasRole(request, 'security') })
    },
  )

  app.get(
    '/v1/reports/risk-summary.svg',
    {
      config: { access: SUMMARY_ROLES, heavy: true },
      schema: {
        operationId: 'getRiskChart',
        tags: ['reports'],
        summary: 'The risk summary as a chart (image/svg+xml): losses, thefts and recoveries by month',
        querystring: PeriodQuery,
        produces: ['image/svg+xml'],
        response: { 200: z.string().meta({ description: 'An SVG document.' }), 400: ProblemSchema },
      },
    },
    async (request, reply) => {
      const period = resolvePeriod(request.query)
      const summary = await riskSummary(request.database.db, period, { withCustodians: false })
      return reply.type('image/svg+xml; charset=utf-8').send(renderRiskChart(summary, period))
    },
  )
}
