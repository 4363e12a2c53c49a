/**
 * `npm run demo`: the service on the embedded database with a demo data set loaded once, and a
 * token for each role with three requests to try. DATA_DIR defaults to ./data-demo here, so the
 * demo never mixes with a register started by `npm start`.
 */
import { buildApp } from '../app.js'
import { createAuthenticator, developmentSecret, ROLES, signToken } from '../auth/authenticator.js'
import { type Config, loadConfig } from '../config.js'
import { openDatabase } from '../db/client.js'
import { migrateDatabase } from '../db/migrate.js'
import { STORY_YEAR } from '../demo/dataset.js'
import { loadDemoData } from '../demo/load.js'
import { failedToStart, startService } from '../process-runner.js'

/**
 * Loads the data set through an app of its own, before the service starts: thousands of requests
 * from one caller, which the service's rate limit would rightly refuse, and whose log lines would
 * bury the ones a user needs.
 */
async function loadOnce(config: Config, token: string): Promise<void> {
  const loaderConfig: Config = { ...config, LOG_LEVEL: 'warn', RATE_LIMIT_PER_MINUTE: 0, PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0, PRESSURE_MAX_HEAP_MB: 0 }
  const database = await openDatabase(loaderConfig)
  const app = await buildApp(loaderConfig, { database, authenticator: await createAuthenticator(loaderConfig) })
  try {
    await migrateDatabase(loaderConfig, database)
    const startedAt = performance.now()
    const result = await loadDemoData(app, token)
    const seconds = Math.round((performance.now() - startedAt) / 100) / 10
    process.stdout.write(
      result.loaded
        ? `demo data set loaded in ${seconds} s: ${result.custodians} custodians, ${result.devices} devices, ${result.incidents} incidents\n`
        : 'demo data set already loaded; starting with the data in DATA_DIR\n',
    )
  } finally {
    await app.close()
  }
}

try {
  const config = loadConfig({ DATA_DIR: './data-demo', ...process.env })
  if (config.AUTH_JWKS_URL) throw new Error('npm run demo mints its own tokens: unset AUTH_JWKS_URL')
  const secret = config.AUTH_JWT_SECRET ? new TextEncoder().encode(config.AUTH_JWT_SECRET) : await developmentSecret(config.DATA_DIR)
  const mint = (role: (typeof ROLES)[number], sub: string, ttl = '8h') => signToken(secret, { sub, roles: [role], ttl }, config)

  await loadOnce(config, await mint('security', 'demo-loader', '1h'))
  await startService(config)

  const base = `http://${config.HOST}:${config.PORT}`
  const tokens = {
    security: await mint('security', 'demo-security-officer'),
    asset_manager: await mint('asset_manager', 'demo-asset-manager'),
    foi_officer: await mint('foi_officer', 'demo-foi-officer'),
  }
  process.stdout.write(
    [
      '',
      `Device loss register demo: ${base}  (API docs: ${base}/docs)`,
      '',
      'Tokens, valid for 8 hours:',
      ...Object.entries(tokens).map(([role, token]) => `  export ${role.toUpperCase()}_TOKEN=${token}`),
      '',
      'Try:',
      `  curl -s -H "Authorization: Bearer $SECURITY_TOKEN" "${base}/v1/reports/risk-summary?year=${STORY_YEAR}"`,
      `  curl -s -H "Authorization: Bearer $FOI_OFFICER_TOKEN" "${base}/v1/exports/foi/lost-stolen?year=${STORY_YEAR}"`,
      `  curl -s -H "Authorization: Bearer $SECURITY_TOKEN" "${base}/v1/reports/risk-summary.svg?year=${STORY_YEAR}" -o risk-${STORY_YEAR}.svg`,
      '',
    ].join('\n'),
  )
} catch (error) {
  failedToStart(error)
}
