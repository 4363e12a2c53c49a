/**
 * Security headers, CORS only when configured, rate limits per caller (and shared through Redis),
 * and load shedding: each refusal a problem+json with Retry-After.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'
import { waitUntil } from '../helpers/wait.js'
import { redisAnswers } from '../helpers/redis.js'

t.test('security headers on every response; no CORS unless configured', async (t) => {
  const { app, auth } = await buildTestApp(t)
  const response = await app.inject({ method: 'GET', url: '/v1/custodians', headers: await auth('security') })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['x-content-type-options'], 'nosniff')
  t.match(String(response.headers['content-security-policy']), /default-src 'none'/)
  t.match(String(response.headers['strict-transport-security']), /max-age=/)
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/v1/custodians',
    headers: { origin: 'https://elsewhere.example', 'access-control-request-method': 'GET' },
  })
  t.notOk(preflight.headers['access-control-allow-origin'], 'no CORS by default')
})

t.test('CORS_ORIGINS allows exactly the origins it names', async (t) => {
  const { app } = await buildTestApp(t, { config: { CORS_ORIGINS: 'https://register.example.org' } })
  const allowed = await app.inject({
    method: 'OPTIONS',
    url: '/v1/custodians',
    headers: { origin: 'https://register.example.org', 'access-control-request-method': 'PATCH' },
  })
  t.equal(allowed.headers['access-control-allow-origin'], 'https://register.example.org')
  const other = await app.inject({
    method: 'OPTIONS',
    url: '/v1/custodians',
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
  })
  t.not(other.headers['access-control-allow-origin'], 'https://evil.example')
})

t.test('rate limit per token subject: 429 problem with Retry-After; others and liveness unaffected', async (t) => {
  const { app, auth } = await buildTestApp(t, { config: { RATE_LIMIT_PER_MINUTE: '3', RATE_LIMIT_HEAVY_PER_MINUTE: '1' } })
  const alice = await auth('security', 'alice')
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'GET', url: '/v1/custodians', headers: alice })).statusCode, 200)
  const limited = await app.inject({ method: 'GET', url: '/v1/custodians', headers: alice })
  assertProblem(t, limited, 429)
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After in seconds')
  t.equal((await app.inject({ method: 'GET', url: '/v1/custodians', headers: await auth('security', 'bob') })).statusCode, 200, 'another caller has their own allowance')
  for (let i = 0; i < 5; i++) t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)

  const foi = await auth('foi_officer', 'carol')
  const exportUrl = '/v1/exports/foi/lost-stolen?year=2025'
  t.equal((await app.inject({ method: 'GET', url: exportUrl, headers: foi })).statusCode, 200)
  assertProblem(t, await app.inject({ method: 'GET', url: exportUrl, headers: foi }), 429)
  // The heavy routes share one allowance: the export used it up for the risk summary too.
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/reports/risk-summary?year=2025', headers: foi }), 429)
  t.equal((await app.inject({ method: 'GET', url: '/v1/custodians', headers: await auth('security', 'dave') })).statusCode, 200, 'the stricter limit is for heavy routes only')
})

const redisUp = await redisAnswers()

t.test('with REDIS_URL, two instances share one allowance', { skip: !redisUp && 'no Redis on 127.0.0.1:6379' }, async (t) => {
  const config = { RATE_LIMIT_PER_MINUTE: '3', REDIS_URL: 'redis://127.0.0.1:6379' }
  const first = await buildTestApp(t, { config })
  const second = await buildTestApp(t, { config, database: first.database })
  const caller = await first.auth('security', `shared-${randomUUID()}`)
  const statuses = []
  for (const { app } of [first, second, first, second]) {
    statuses.push((await app.inject({ method: 'GET', url: '/v1/custodians', headers: caller })).statusCode)
  }
  t.same(statuses, [200, 200, 200, 429])
})

t.test('under pressure: 503 problem with Retry-After, liveness still answers', async (t) => {
  // A 1 MB heap ceiling is always exceeded: the simplest way to put the service under pressure.
  const { app, auth } = await buildTestApp(t, { config: { PRESSURE_MAX_HEAP_MB: '1' } })
  await waitUntil('the first under-pressure sample', () => app.isUnderPressure())
  const shed = await app.inject({ method: 'GET', url: '/v1/custodians', headers: await auth('security') })
  assertProblem(t, shed, 503)
  t.ok(Number(shed.headers['retry-after']) > 0)
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
})
