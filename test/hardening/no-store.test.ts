/**
 * Every response under /v1 carries `Cache-Control: no-store` (personal and security data): reads,
 * writes, the CSV export, the chart, and errors of every kind. Outside /v1 the header is not ours
 * to set.
 */
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'

t.test('Cache-Control: no-store on every /v1 response, errors included', async (t) => {
  const { app, auth } = await buildTestApp(t, { config: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '1' } })
  const security = await auth('security')
  const foi = await auth('foi_officer')
  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers: security, payload: { kind: 'office', name: 'Whips Office' } })
  const requests: [string, { method: 'GET' | 'POST'; url: string; headers?: Record<string, string>; remoteAddress?: string }, number][] = [
    ['a list', { method: 'GET', url: '/v1/custodians', headers: security }, 200],
    ['one custodian', { method: 'GET', url: `/v1/custodians/${JSON.parse(created.body).id}`, headers: security }, 200],
    ['incidents', { method: 'GET', url: '/v1/incidents', headers: security }, 200],
    ['devices', { method: 'GET', url: '/v1/devices', headers: security }, 200],
    ['the FOI CSV export', { method: 'GET', url: '/v1/exports/foi/lost-stolen?year=2025', headers: foi }, 200],
    ['the chart', { method: 'GET', url: '/v1/reports/risk-summary.svg?year=2025', headers: security }, 200],
    ['no token', { method: 'GET', url: '/v1/custodians', remoteAddress: '192.0.2.60' }, 401],
    ['the limit on failed authentications', { method: 'GET', url: '/v1/custodians', remoteAddress: '192.0.2.60' }, 429],
    ['a role short', { method: 'GET', url: '/v1/incidents', headers: foi }, 403],
    ['an unknown query parameter', { method: 'GET', url: '/v1/custodians?colour=red', headers: security }, 400],
    ['an unknown id', { method: 'GET', url: '/v1/custodians/00000000-0000-7000-8000-000000000000', headers: security }, 404],
    ['an unknown route', { method: 'GET', url: '/v1/nothing-here', headers: security }, 404],
  ]
  t.equal(created.statusCode, 201)
  t.equal(created.headers['cache-control'], 'no-store', 'a 201')
  for (const [what, request, status] of requests) {
    const response = await app.inject(request)
    t.equal(response.statusCode, status, `${what}: ${status}`)
    t.equal(response.headers['cache-control'], 'no-store', `${what}: no-store`)
  }
  for (const url of ['/healthz', '/openapi.json']) {
    t.not((await app.inject({ method: 'GET', url })).headers['cache-control'], 'no-store', `${url} is not under /v1`)
  }
})
