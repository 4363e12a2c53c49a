/**
 * The authorisation table, derived from the app itself: every registered route × no token, each
 * role alone, every pair and all three. Expectations come from each route's own `access`
 * declaration, so a route added tomorrow is covered without touching this file.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import t from 'tap'
import { ROLES, type Role } from '../../src/auth/authenticator.js'
import type { Access } from '../../src/plugins/auth.js'
import { TEST_JWT_SECRET } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'
import { appWithRoutes } from './routes.js'

/** [], each role, each pair, ..., all roles. */
function roleSets(): Role[][] {
  const sets: Role[][] = [[]]
  for (const role of ROLES) for (const set of [...sets]) sets.push([...set, role])
  return sets.sort((a, b) => a.length - b.length)
}

/** A concrete URL for a route pattern: every `:param` a random UUID, a wildcard some text. */
function concreteUrl(pattern: string): string {
  return pattern.replace(/:[A-Za-z0-9_]+(\([^)]*\))?/g, () => randomUUID()).replace(/\*/g, 'x')
}

const HAS_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

type Expected = 'allowed' | 401 | 403

function expectedFor(access: Access | undefined, roles: Role[] | null): Expected {
  if (access === undefined) return 403
  if (access === 'public') return 'allowed'
  if (roles === null) return 401
  return access.some((role) => roles.includes(role)) ? 'allowed' : 403
}

t.test('every route × every role set gets exactly what its access declaration says', async (t) => {
  const { app, routes, token } = await appWithRoutes(t)
  t.ok(routes.length > 10, `routes collected (${routes.length})`)
  t.ok(routes.some((route) => route.url === '/v1/custodians' && route.method === 'POST'), 'module routes are among them')
  const sets = roleSets()
  t.equal(sets.length, 2 ** ROLES.length)
  const tokens = new Map(await Promise.all(sets.map(async (set) => [set.join('+'), await token(set)] as const)))
  const counts = { allowed: 0, 401: 0, 403: 0 }

  for (const route of routes) {
    const access = route.access
    const name = `${route.method} ${route.url}`
    // Deny by default is the safety net; a route that relies on it is still a bug to fix.
    t.ok(access === 'public' || (Array.isArray(access) && access.length > 0), `${name} declares its access`)
    const url = concreteUrl(route.url)
    const cases: [string, Role[] | null][] = [['no token', null], ...sets.map((set): [string, Role[]] => [set.join('+') || 'no roles', set])]
    for (const [label, roles] of cases) {
      const headers: Record<string, string> = roles === null ? {} : { authorization: `Bearer ${tokens.get(roles.join('+'))}` }
      const response = await app.inject({
        method: route.method as 'GET',
        url,
        headers,
        ...(HAS_BODY.has(route.method) ? { payload: {} } : {}),
      })
      const expected = expectedFor(access, roles)
      counts[expected]++
      const what = `${name} with ${label}`
      if (expected === 'allowed') {
        t.notOk([401, 403].includes(response.statusCode), `${what}: allowed (got ${response.statusCode})`)
      } else {
        t.equal(response.statusCode, expected, `${what}: ${expected}`)
        if (route.method !== 'HEAD') t.match(String(response.headers['content-type']), /^application\/problem\+json/, `${what}: problem+json`)
        if (expected === 401) t.equal(response.headers['www-authenticate'], 'Bearer', `${what}: WWW-Authenticate`)
      }
    }
  }
  t.comment(`${routes.length} routes × ${sets.length + 1} callers: ${JSON.stringify(counts)}`)
})

t.test('a route that declares no access is refused for everyone, token or not', async (t) => {
  let ran = 0
  const { app, routes, token } = await appWithRoutes(t, (app) => {
    app.get('/v1/probe-undeclared', async () => {
      ran++
      return { ok: true }
    })
    app.post('/v1/probe-undeclared/:id', async () => {
      ran++
      return { ok: true }
    })
  })
  const probes = routes.filter((route) => route.url.startsWith('/v1/probe-undeclared'))
  t.equal(probes.length, 3, 'GET, its HEAD and POST collected')
  for (const probe of probes) {
    t.equal(probe.access, undefined)
    for (const roles of [null, ...roleSets()]) {
      const headers: Record<string, string> = roles === null ? {} : { authorization: `Bearer ${await token(roles)}` }
      const response = await app.inject({
        method: probe.method as 'GET',
        url: concreteUrl(probe.url),
        headers,
        ...(HAS_BODY.has(probe.method) ? { payload: {} } : {}),
      })
      if (probe.method === 'HEAD') t.equal(response.statusCode, 403, `HEAD with ${roles?.join('+') ?? 'no token'}`)
      else assertProblem(t, response, 403)
    }
  }
  t.equal(ran, 0, 'the handler never ran')
})

t.test('a token whose roles are all unknown is a 403, and a role claim that is not a list gives no role', async (t) => {
  const { app } = await appWithRoutes(t)
  const secret = new TextEncoder().encode(TEST_JWT_SECRET)
  for (const roles of [['admin', 'root'], 'security', { security: true }]) {
    const jwt = await new SignJWT({ roles }).setProtectedHeader({ alg: 'HS256' }).setSubject('odd').setExpirationTime('5m').sign(secret)
    const response = await app.inject({ method: 'GET', url: '/v1/audit-events', headers: { authorization: `Bearer ${jwt}` } })
    assertProblem(t, response, 403)
  }
})
