/**
 * Callers without a valid token are limited by address, before any signature is checked: each
 * failed authentication counts against the address (RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE), and
 * once they are used up the address gets 429 with Retry-After for anything but a token that
 * verified a moment ago. Successes never count, so users behind one proxy address are not
 * throttled; other addresses and public routes are unaffected.
 */
import { randomInt } from 'node:crypto'
import { SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { identityProvider } from '../auth/jwks.js'
import { buildTestApp, TEST_JWT_SECRET, type TestApp } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'
import { redisAnswers } from '../helpers/redis.js'

const URL_UNDER_TEST = '/v1/custodians'
const now = () => Math.floor(Date.now() / 1000)

/** A well-formed HS256 token signed with a secret the app does not know. */
const badSignature = () =>
  new SignJWT({ sub: 'mallory', roles: ['security'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode('not-the-secret-'.repeat(4)))

function call(app: TestApp['app'], from: string, authorization?: string, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'GET',
    url: URL_UNDER_TEST,
    remoteAddress: from,
    headers: { ...headers, ...(authorization ? { authorization } : {}) },
  })
}

/** A 429 of this limit: problem+json, Retry-After within the minute, and no invitation to sign in. */
function assertLimited(t: Test, response: Awaited<ReturnType<typeof call>>, what = 'refused by the limit') {
  t.test(what, async (t) => {
    const body = assertProblem(t, response, 429)
    const retryAfter = Number(response.headers['retry-after'])
    t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s`)
    t.notOk(response.headers['www-authenticate'], 'no WWW-Authenticate')
    t.match(body.detail, /failed authentications from this address/)
  })
}

t.test('3,000 bad signatures from one address: 401 up to the limit, then 429 before anything is checked', async (t) => {
  // An empty value is "unset": the default, 120 a minute.
  const { app, config, auth } = await buildTestApp(t, { config: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '' } })
  t.equal(config.RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE, 120)
  const attacker = '198.51.100.7'
  const elsewhere = '203.0.113.9'
  const alice = await auth('security', 'alice')
  t.equal((await call(app, elsewhere, alice.authorization)).statusCode, 200, "alice's token verifies (from another address)")

  const forged = `Bearer ${await badSignature()}`
  const statuses = new Map<number, number>()
  let firstLimited: Awaited<ReturnType<typeof call>> | undefined
  for (let i = 0; i < 3000; i++) {
    const response = await call(app, attacker, forged)
    statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
    if (response.statusCode === 429) firstLimited ??= response
    else if (response.statusCode !== 401 || i >= 120) break // the first surprise ends the run
  }
  t.same(Object.fromEntries(statuses), { 401: 120, 429: 2880 }, '120 checked and refused, the rest refused unchecked')
  assertLimited(t, firstLimited!, 'the first 429')

  // A valid token never seen before is refused too: had it been verified, it would have passed.
  assertLimited(t, await call(app, attacker, (await auth('security', 'bob')).authorization), 'a valid token not yet seen')
  assertLimited(t, await call(app, attacker), 'no token at all')
  t.equal((await call(app, attacker, alice.authorization)).statusCode, 200, 'a token remembered as valid still answers, from this address too')

  t.equal((await call(app, elsewhere, forged)).statusCode, 401, 'another address: its own count')
  t.equal((await call(app, elsewhere, (await auth('security', 'carol')).authorization)).statusCode, 200, 'another address: new tokens verified')

  for (const url of ['/healthz', '/readyz', '/openapi.json', '/docs']) {
    const response = await app.inject({ method: 'GET', url, remoteAddress: attacker })
    t.ok(response.statusCode < 400, `${url} still answers the limited address (${response.statusCode})`)
  }
})

t.test('only failures count: users behind one address are not throttled; expired and malformed tokens are failures', async (t) => {
  const { app, auth, token } = await buildTestApp(t, { config: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '5' } })
  const proxy = '192.0.2.10'
  for (let i = 0; i < 40; i++) {
    // A new token each time: each is verified, none counts.
    t.equal((await call(app, proxy, (await auth('security', `user-${i}`)).authorization)).statusCode, 200)
  }
  for (let i = 0; i < 5; i++) {
    const response = await call(app, proxy, (await auth('foi_officer', `foi-${i}`)).authorization)
    t.equal(response.statusCode, 403, 'a valid token without the role is authenticated: not counted')
  }
  const forged = `Bearer ${await badSignature()}`
  for (let i = 0; i < 5; i++) t.equal((await call(app, proxy, forged)).statusCode, 401)
  assertLimited(t, await call(app, proxy, forged))

  const other = '192.0.2.20'
  const expired = await new SignJWT({ sub: 'x', roles: ['security'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(now() - 3600)
    .sign(new TextEncoder().encode(TEST_JWT_SECRET))
  const failures = [
    `Bearer ${expired}`,
    `Bearer ${await new SignJWT({ sub: 'x', roles: ['security'] }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('30d').sign(new TextEncoder().encode(TEST_JWT_SECRET))}`,
    'Basic dXNlcjpwYXNz',
    `Bearer ${(await token('security')).slice(0, -4)}AAAA`,
    undefined,
  ]
  for (const authorization of failures) t.equal((await call(app, other, authorization)).statusCode, 401)
  assertLimited(t, await call(app, other, (await auth('security', 'dave')).authorization), 'expired, too long, not Bearer, tampered, none: five failures')
})

t.test('a burst of bad tokens sent at once is held to the limit too: checks under way count as failures to come', async (t) => {
  const { app } = await buildTestApp(t, { config: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '5' } })
  const forged = `Bearer ${await badSignature()}`
  const responses = await Promise.all(Array.from({ length: 50 }, () => call(app, '192.0.2.60', forged)))
  const statuses = new Map<number, number>()
  for (const response of responses) statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
  t.same(Object.fromEntries(statuses), { 401: 5, 429: 45 }, 'five checked, the rest refused unchecked')
  assertLimited(t, await call(app, '192.0.2.60', forged), 'and afterwards')
})

t.test('the address is the client behind a trusted proxy, and X-Forwarded-For is not believed otherwise', async (t) => {
  const forged = `Bearer ${await badSignature()}`
  const direct = await buildTestApp(t, { config: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '2' } })
  for (let i = 0; i < 2; i++) t.equal((await call(direct.app, '192.0.2.30', forged, { 'x-forwarded-for': `10.0.0.${i}` })).statusCode, 401)
  assertLimited(t, await call(direct.app, '192.0.2.30', forged, { 'x-forwarded-for': '10.0.0.99' }))

  const config = { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '2', TRUST_PROXY: '127.0.0.1' }
  const proxied = await buildTestApp(t, { config, database: direct.database })
  const viaProxy = (client: string) => call(proxied.app, '127.0.0.1', forged, { 'x-forwarded-for': client })
  t.equal((await viaProxy('198.51.100.1')).statusCode, 401)
  t.equal((await viaProxy('198.51.100.1')).statusCode, 401)
  assertLimited(t, await viaProxy('198.51.100.1'))
  t.equal((await viaProxy('198.51.100.2')).statusCode, 401, 'another client behind the same proxy has its own count')
})

t.test('in JWKS mode too: forgeries stop costing RSA verifications', async (t) => {
  const idp = await identityProvider(t)
  const issuer = 'https://login.example/tenant'
  const audience = 'api://device-loss-register'
  const { app } = await buildTestApp(t, {
    config: { AUTH_JWT_SECRET: '', AUTH_JWKS_URL: idp.jwks.url, AUTH_ISSUER: issuer, AUTH_AUDIENCE: audience, RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '5' },
  })
  const claims = { sub: 'mallory', roles: ['security'], iss: issuer, aud: audience, iat: now(), exp: now() + 300 }
  const forged = `Bearer ${await idp.forge(claims)}`
  for (let i = 0; i < 5; i++) t.equal((await call(app, '192.0.2.40', forged)).statusCode, 401)
  assertLimited(t, await call(app, '192.0.2.40', forged))
  assertLimited(t, await call(app, '192.0.2.40', `Bearer ${await idp.sign(claims)}`), 'a genuine token, never seen, waits too')
  t.equal((await call(app, '192.0.2.41', `Bearer ${await idp.sign(claims)}`)).statusCode, 200, 'from another address it passes')
})

t.test('0 turns the limit off', async (t) => {
  const { app, config } = await buildTestApp(t)
  t.equal(config.RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE, 0, 'as configWith() sets for tests')
  const forged = `Bearer ${await badSignature()}`
  for (let i = 0; i < 130; i++) {
    const response = await call(app, '192.0.2.50', forged)
    if (response.statusCode !== 401) t.fail(`request ${i}: ${response.statusCode}`)
  }
  t.pass('130 refused, each with a 401 (more than the default allows)')
})

const redisUp = await redisAnswers()

t.test('with REDIS_URL, instances share the count of an address', { skip: !redisUp && 'no Redis on 127.0.0.1:6379' }, async (t) => {
  const config = { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '3', REDIS_URL: 'redis://127.0.0.1:6379' }
  const first = await buildTestApp(t, { config })
  const second = await buildTestApp(t, { config, database: first.database })
  // Counts outlive a run by up to a minute: an address of this run's own.
  const from = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`
  const forged = `Bearer ${await badSignature()}`
  const statuses = []
  for (const { app } of [first, second, first, second, first]) statuses.push((await call(app, from, forged)).statusCode)
  t.same(statuses, [401, 401, 401, 429, 429])
  const alice = await first.auth('security', 'alice')
  t.equal((await call(first.app, '10.255.255.254', alice.authorization)).statusCode, 200)
  t.equal((await call(first.app, from, alice.authorization)).statusCode, 200, 'a token the instance remembers passes')
})
