/**
 * Runs the service: database, migrations, app, listen; and a graceful stop on SIGTERM/SIGINT
 * (stop accepting, finish requests in flight, close the pool, exit 0). Used by `npm start`
 * (server.ts) and `npm run demo` (cli/demo.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import { type App, buildApp } from './app.js'
import { createAuthenticator } from './auth/authenticator.js'
import { type Config, ConfigError } from './config.js'
import { openDatabase } from './db/client.js'
import { migrateDatabase } from './db/migrate.js'
import { PRESSURE_SAMPLE_MS } from './plugins/protection.js'

export async function startService(config: Config): Promise<App> {
  const authenticator = await createAuthenticator(config)
  // The pool reports lost idle connections to the app's log, which exists only once the app does.
  const poolLog: { to?: App['log'] } = {}
  const database = await openDatabase(config, { warn: (details, message) => poolLog.to?.warn(details, message) })
  const app = await buildApp(config, { database, authenticator })
  poolLog.to = app.log

  // While draining, responses to requests in flight say `Connection: close`: a keep-alive
  // connection left open after its last response would hold server.close() until the grace
  // delay ran out (and the exit code would be 1).
  let draining = false
  // A callback hook, not an async one: it runs on every response, and a promise each is not free.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close')
    done(null, payload)
  })

  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'stopping after an unexpected error')
    else app.log.info({ signal }, 'stopping: finishing requests in flight')
    draining = true
    await app.close()
  })

  const startedAt = performance.now()
  try {
    await migrateDatabase(config, database)
  } catch (error) {
    app.log.fatal({ err: error }, 'database migrations failed')
    await app.close()
    process.exit(1)
  }
  await waitForCalm(app)
  await app.listen({ port: config.PORT, host: config.HOST })
  app.log.info(
    {
      database: database.driver === 'pglite' ? `embedded PGlite in ${config.DATA_DIR}` : 'PostgreSQL',
      auth: authenticator.mode,
      startupMs: Math.round(performance.now() - startedAt),
    },
    'device loss register ready',
  )
  if (authenticator.mode === 'development-secret') {
    app.log.warn(
      `no AUTH_* set: tokens are signed with a development secret in ${config.DATA_DIR}; mint one with: npm run token -- --role security`,
    )
  }
  return app
}

/**
 * Start-up (module loading, migrations) blocks the event loop, and load shedding's first sample
 * after it would refuse the first requests. Listen once the loop is measured calm (at most 5 s).
 */
async function waitForCalm(app: App): Promise<void> {
  if (!app.hasDecorator('isUnderPressure')) return
  const deadline = Date.now() + 5_000
  await sleep(PRESSURE_SAMPLE_MS + 50) // one fresh sample, taken after the blocking work
  while (app.isUnderPressure() && Date.now() < deadline) await sleep(100)
}

/** The last word of a process that could not start: one line, exit code 1. */
export function failedToStart(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`)
  } else {
    process.stderr.write(`device loss register failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  }
  process.exit(1)
}
