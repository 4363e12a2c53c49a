/**
 * `npm run demo`: the service on the embedded database with a demo data set loaded once, and a
 * token for each role with three requests to try. DATA_DIR defaults to ./data-demo here, so the
 * demo never mixes with a register started by `npm start`.
 */
import { developmentSecret, ROLES, signToken } from '../auth/authenticator.js'
import { loadConfig } from '../config.js'
import { loadDemoData } from '../demo/load.js'
import { STORY_YEAR } from '../demo/dataset.js'
import { failedToStart, startService } from '../service.js'

try {
  const config = loadConfig({ DATA_DIR: './data-demo', ...process.env })
  if (config.AUTH_JWKS_URL) throw new Error('npm run demo mints its own tokens: unset AUTH_JWKS_URL')
  const secret = config.AUTH_JWT_SECRET ? new TextEncoder().encode(config.AUTH_JWT_SECRET) : await developmentSecret(config.DATA_DIR)
  const mint = (role: (typeof ROLES)[number], sub: string, ttl = '8h') => signToken(secret, { sub, roles: [role], ttl }, config)

  await startService(config, {
    async beforeListen(app) {
      const startedAt = performance.now()
      // Thousands of loading requests would bury the lines a user needs; only problems are logged.
      const level = app.log.level
      app.log.level = 'warn'
      const result = await loadDemoData(app, await mint('security', 'demo-loader', '1h')).finally(() => {
        app.log.level = level
      })
      if (result.loaded) {
        app.log.info(
          { ...result, seconds: Math.round((performance.now() - startedAt) / 100) / 10 },
          'demo data set loaded',
        )
      } else {
        app.log.info('demo data set already loaded; starting with the data in DATA_DIR')
      }
    },
  })

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
