/**
 * The daily retention run inside the service (RETENTION_SCHEDULE=daily): the first a minute after
 * start (not during start-up's burst), then every 24 hours. Every instance runs it; the lock in
 * runRetention lets one of them at a time do the work. What it erased is logged as counts only.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { runRetention } from './service.js'

const FIRST_RUN_MS = 60_000
const EVERY_MS = 24 * 60 * 60_000

export default fp<{ config: Config }>(
  async function retentionSchedule(app: FastifyInstance, { config }) {
    if (config.RETENTION_SCHEDULE !== 'daily') return
    let timer: NodeJS.Timeout | undefined
    const run = async () => {
      try {
        const outcome = await runRetention(app.db, config, { apply: true })
        if (outcome.ran) app.log.info({ custodiansErased: outcome.custodians.length, incidentsErased: outcome.incidents.length }, 'retention run')
      } catch (error) {
        app.log.error({ err: error }, 'retention run failed; the next one will try again')
      }
      timer = setTimeout(run, EVERY_MS).unref()
    }
    app.addHook('onReady', async () => {
      timer = setTimeout(run, FIRST_RUN_MS).unref()
    })
    app.addHook('onClose', async () => clearTimeout(timer))
  },
  { name: 'retention-schedule', dependencies: ['database'] },
)
