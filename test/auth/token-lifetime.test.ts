/**
 * How long a token may live: at most AUTH_MAX_TOKEN_HOURS from `iat` to `exp` (from now, when it
 * has no `iat`), and never issued in the future beyond the 30 s clock tolerance. Each refusal is
 * the usual 401 with `WWW-Authenticate: Bearer`.
 */
import { type JWTPayload, SignJWT } from 'jose'
import t from 'tap'
import { buildTestApp, TEST_JWT_SECRET } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'

const URL_UNDER_TEST = '/v1/custodians'
const HOUR = 3600
const now = () => Math.floor(Date.now() / 1000)
const secret = new TextEncoder().encode(TEST_JWT_SECRET)

/** HS256 with exactly these claims, besides `sub` and `roles`. */
const sign = (claims: JWTPayload) =>
  new SignJWT({ sub: 'lifetime-tester', roles: ['security'], ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(secret)

t.test('with the default of 24 hours', async (t) => {
  const { app } = await buildTestApp(t)
  const call = async (claims: JWTPayload) =>
    app.inject({ method: 'GET', url: URL_UNDER_TEST, headers: { authorization: `Bearer ${await sign(claims)}` } })

  const accepted: [string, JWTPayload][] = [
    ['exactly 24 hours from iat to exp', { iat: now(), exp: now() + 24 * HOUR }],
    ['issued 23 hours ago, an hour left', { iat: now() - 23 * HOUR, exp: now() + HOUR }],
    ['no iat, 23 hours left', { exp: now() + 23 * HOUR }],
    ['iat 20 s ahead (within the clock tolerance)', { iat: now() + 20, exp: now() + HOUR }],
  ]
  for (const [what, claims] of accepted) t.equal((await call(claims)).statusCode, 200, what)

  const refused: [string, JWTPayload, RegExp][] = [
    ['24 hours and a second', { iat: now(), exp: now() + 24 * HOUR + 1 }, /lives longer than the 24 hour/],
    ['ten years', { iat: now(), exp: now() + 10 * 366 * 24 * HOUR }, /lives longer/],
    ['issued 30 hours ago, an hour left', { iat: now() - 30 * HOUR, exp: now() + HOUR }, /lives longer/],
    ['no iat, 25 hours left', { exp: now() + 25 * HOUR }, /lives longer/],
    ['issued a year in the future', { iat: now() + 366 * 24 * HOUR, exp: now() + 366 * 24 * HOUR + HOUR }, /issued in the future/],
    ['iat 60 s ahead (beyond the tolerance)', { iat: now() + 60, exp: now() + HOUR }, /issued in the future/],
  ]
  for (const [what, claims, detail] of refused) {
    const response = await call(claims)
    t.test(what, async (t) => {
      const body = assertProblem(t, response, 401)
      t.equal(response.headers['www-authenticate'], 'Bearer')
      t.match(body.detail, detail)
    })
  }

  // A refused token is not remembered either: asked again, it is refused again.
  const tooLong = await sign({ iat: now(), exp: now() + 48 * HOUR })
  for (let i = 0; i < 2; i++) {
    t.equal((await app.inject({ method: 'GET', url: URL_UNDER_TEST, headers: { authorization: `Bearer ${tooLong}` } })).statusCode, 401)
  }
})

t.test('AUTH_MAX_TOKEN_HOURS sets the limit', async (t) => {
  const { app } = await buildTestApp(t, { config: { AUTH_MAX_TOKEN_HOURS: '1' } })
  const call = async (claims: JWTPayload) =>
    (await app.inject({ method: 'GET', url: URL_UNDER_TEST, headers: { authorization: `Bearer ${await sign(claims)}` } })).statusCode
  t.equal(await call({ iat: now(), exp: now() + HOUR }), 200, 'an hour')
  t.equal(await call({ iat: now(), exp: now() + 2 * HOUR }), 401, 'two hours')
  t.equal(await call({ exp: now() + 2 * HOUR }), 401, 'two hours left, no iat')
})
