/**
 * Token verification: every forgery is a 401 with `WWW-Authenticate: Bearer`, in each mode
 * (shared secret, JWKS served by this test on 127.0.0.1, the development secret of `npm run token`),
 * and every audience of an AUTH_AUDIENCE list is accepted.
 */
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose'
import t, { type Test } from 'tap'
import { buildTestApp, TEST_JWT_SECRET } from '../helpers/app.js'
import { assertProblem } from '../helpers/problem.js'
import { identityProvider, serveJwks } from './jwks.js'

const URL_UNDER_TEST = '/v1/audit-events/verify'
const ISSUER = 'https://login.example/tenant'
const AUDIENCE = 'api://device-loss-register'
const secret = new TextEncoder().encode(TEST_JWT_SECRET)
const now = () => Math.floor(Date.now() / 1000)

type Sign = (claims: JWTPayload) => Promise<string>

/** HS256 with `key`; the claims are exactly what is given (nothing added). */
const hs256 =
  (key: Uint8Array): Sign =>
  (claims) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key)

const good = (extra: JWTPayload = {}): JWTPayload => ({
  sub: 'token-tester',
  roles: ['security'],
  iss: ISSUER,
  aud: AUDIENCE,
  iat: now(),
  exp: now() + 300,
  ...extra,
})

function without(claims: JWTPayload, name: keyof JWTPayload): JWTPayload {
  const copy = { ...claims }
  delete copy[name]
  return copy
}

async function call(app: Awaited<ReturnType<typeof buildTestApp>>['app'], authorization?: string) {
  return app.inject({ method: 'GET', url: URL_UNDER_TEST, headers: authorization ? { authorization } : {} })
}

function assertUnauthorised(t: Test, response: Awaited<ReturnType<typeof call>>, what: string) {
  t.test(what, async (t) => {
    assertProblem(t, response, 401)
    t.equal(response.headers['www-authenticate'], 'Bearer')
  })
}

t.test('HS256 mode with issuer and audience configured', async (t) => {
  const { app } = await buildTestApp(t, { config: { AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE } })
  const sign = hs256(secret)

  const ok = await call(app, `Bearer ${await sign(good())}`)
  t.equal(ok.statusCode, 200, 'a good token is accepted')
  const within = await call(app, `Bearer ${await sign(good({ exp: now() - 10 }))}`)
  t.equal(within.statusCode, 200, 'expired 10 s ago: within the 30 s tolerance')

  const valid = await sign(good())
  const [header, , signature] = valid.split('.')
  const forged = Buffer.from(JSON.stringify(good({ sub: 'someone-else', roles: ['security', 'asset_manager'] }))).toString('base64url')
  const forgeries: [string, string | undefined][] = [
    ['no Authorization header', undefined],
    ['not a Bearer scheme', `Basic ${Buffer.from('a:b').toString('base64')}`],
    ['Bearer with nothing', 'Bearer '],
    ['not a JWT', 'Bearer not-a-jwt'],
    ['alg none', `Bearer ${new UnsecuredJWT(good()).encode()}`],
    ['alg none, signature kept', `Bearer ${new UnsecuredJWT(good()).encode()}${signature}`],
    ['signed with another secret', `Bearer ${await hs256(new TextEncoder().encode('x'.repeat(48)))(good())}`],
    ['payload tampered after signing', `Bearer ${header}.${forged}.${signature}`],
    ['expired 60 s ago (beyond the 30 s tolerance)', `Bearer ${await sign(good({ exp: now() - 60 }))}`],
    ['no exp', `Bearer ${await sign(without(good(), 'exp'))}`],
    ['wrong iss', `Bearer ${await sign(good({ iss: 'https://evil.example' }))}`],
    ['no iss', `Bearer ${await sign(without(good(), 'iss'))}`],
    ['wrong aud', `Bearer ${await sign(good({ aud: 'api://something-else' }))}`],
    ['no aud', `Bearer ${await sign(without(good(), 'aud'))}`],
    ['nbf two minutes ahead', `Bearer ${await sign(good({ nbf: now() + 120 }))}`],
    ['no sub', `Bearer ${await sign(without(good(), 'sub'))}`],
    ['empty sub', `Bearer ${await sign(good({ sub: '  ' }))}`],
  ]
  for (const [what, authorization] of forgeries) assertUnauthorised(t, await call(app, authorization), what)
})

t.test('HS256 mode without issuer and audience configured does not require them', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await call(app, `Bearer ${await hs256(secret)(without(without(good(), 'iss'), 'aud'))}`)
  t.equal(response.statusCode, 200)
})

t.test('JWKS mode: RS256 keys from the JWKS, and only those', async (t) => {
  const idp = await generateKeyPair('RS256')
  const stranger = await generateKeyPair('RS256')
  const published = { ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' }
  const jwks = await serveJwks(t, [published])
  const { app } = await buildTestApp(t, {
    config: { AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE },
  })
  const rs256 = (key: typeof idp.privateKey, kid: string, claims: JWTPayload) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key)

  const ok = await call(app, `Bearer ${await rs256(idp.privateKey, 'idp-1', good())}`)
  t.equal(ok.statusCode, 200, 'signed by the published key: accepted')
  t.equal(jwks.fetches(), 1, 'the JWKS was fetched')

  const forgeries: [string, string][] = [
    ['signed by another key, same kid', `Bearer ${await rs256(stranger.privateKey, 'idp-1', good())}`],
    ['signed by another key, unknown kid', `Bearer ${await rs256(stranger.privateKey, 'other', good())}`],
    ['HS256 with the shared test secret (alg pinned)', `Bearer ${await hs256(secret)(good())}`],
    ['alg none', `Bearer ${new UnsecuredJWT(good()).encode()}`],
    ['expired beyond tolerance', `Bearer ${await rs256(idp.privateKey, 'idp-1', good({ exp: now() - 60 }))}`],
    ['wrong aud', `Bearer ${await rs256(idp.privateKey, 'idp-1', good({ aud: 'api://other' }))}`],
  ]
  for (const [what, authorization] of forgeries) assertUnauthorised(t, await call(app, authorization), what)

  // An embedded key is never trusted: the token brings its own jwk header.
  const embedded = await new SignJWT(good())
    .setProtectedHeader({ alg: 'RS256', jwk: await exportJWK(stranger.publicKey) })
    .sign(stranger.privateKey)
  assertUnauthorised(t, await call(app, `Bearer ${embedded}`), 'a key embedded in the token header')
})

t.test('JWKS mode with an audience list: each listed audience is accepted, any other issuer or audience refused', async (t) => {
  // Entra ID: v1 tokens carry `api://…`, v2 tokens the client id; its keys sign every tenant's tokens.
  const CLIENT_ID = '6e1b2f9c-3d4a-4c1e-9f2b-7a8d5c4e3b21'
  const idp = await identityProvider(t)
  const { app } = await buildTestApp(t, {
    config: { AUTH_JWT_SECRET: '', AUTH_JWKS_URL: idp.jwks.url, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: ` ${CLIENT_ID} , ${AUDIENCE}` },
  })
  const accepted: [string, JWTPayload][] = [
    ['aud: the client id (v2 token)', good({ aud: CLIENT_ID })],
    ['aud: api://… (v1 token)', good({ aud: AUDIENCE })],
    ['aud: a list holding one of them', good({ aud: ['api://someone-else', CLIENT_ID] })],
  ]
  for (const [what, claims] of accepted) t.equal((await call(app, `Bearer ${await idp.sign(claims)}`)).statusCode, 200, what)

  const refused: [string, JWTPayload][] = [
    ['another application of the same provider', good({ aud: 'api://another-app' })],
    ['the configured list as one string', good({ aud: `${CLIENT_ID},${AUDIENCE}` })],
    ['no aud', without(good(), 'aud')],
    ['another tenant (same keys, other issuer)', good({ iss: 'https://login.example/other-tenant' })],
    ['no iss', without(good(), 'iss')],
    ['living ten years', good({ exp: now() + 10 * 366 * 86_400 })],
    ['issued a year in the future', good({ iat: now() + 366 * 86_400, exp: now() + 366 * 86_400 + 300 })],
  ]
  for (const [what, claims] of refused) assertUnauthorised(t, await call(app, `Bearer ${await idp.sign(claims)}`), what)
})

t.test('HS256 mode with an audience list: tokens minted for the first audience are accepted', async (t) => {
  const { app, auth } = await buildTestApp(t, { config: { AUTH_AUDIENCE: `${AUDIENCE},api://second` } })
  t.equal((await app.inject({ method: 'GET', url: URL_UNDER_TEST, headers: await auth('security') })).statusCode, 200)
  const second = await hs256(secret)(good({ aud: 'api://second' }))
  t.equal((await call(app, `Bearer ${second}`)).statusCode, 200, 'and the second audience')
})

t.test('JWKS mode: keys that cannot be fetched are a 503, not a 401', async (t) => {
  const idp = await generateKeyPair('RS256')
  const failing = createServer((_request, response) => response.writeHead(500).end('down'))
  await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => failing.close(() => resolve())))
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const closedPort = (closed.address() as AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const garbage = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"nokeys":1}'))
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => garbage.close(() => resolve())))
  const token = await new SignJWT(good()).setProtectedHeader({ alg: 'RS256', kid: 'idp-1' }).sign(idp.privateKey)

  const urls = {
    'answers 500': `http://127.0.0.1:${(failing.address() as AddressInfo).port}/keys`,
    'refuses connections': `http://127.0.0.1:${closedPort}/keys`,
    'answers something that is not a JWKS': `http://127.0.0.1:${(garbage.address() as AddressInfo).port}/keys`,
  }
  for (const [what, url] of Object.entries(urls)) {
    const { app } = await buildTestApp(t, { config: { AUTH_JWT_SECRET: '', AUTH_JWKS_URL: url, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE } })
    const response = await call(app, `Bearer ${token}`)
    t.test(`the JWKS endpoint ${what}`, async (t) => {
      assertProblem(t, response, 503)
      t.ok(response.headers['retry-after'])
    })
    assertUnauthorised(t, await call(app), `and no token is still a 401 (${what})`)
  }
})

t.test('`npm run token` mints a token the development-secret mode accepts', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dlr-token-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const mint = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/token.ts', ...args], {
      env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
      encoding: 'utf8',
      timeout: 30_000,
    })
  const minted = mint('--role', 'security', '--sub', 'cli-user')
  t.equal(minted.status, 0, minted.stderr)
  const jwt = minted.stdout.trim()
  t.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'prints one JWT')

  const { app, database } = await buildTestApp(t, { config: { AUTH_JWT_SECRET: '', DATA_DIR: dataDir } })
  t.equal((await call(app, `Bearer ${jwt}`)).statusCode, 200, 'accepted by an app on the same DATA_DIR')
  const created = await app.inject({
    method: 'POST',
    url: '/v1/custodians',
    headers: { authorization: `Bearer ${jwt}` },
    payload: { kind: 'office', name: 'Whips Office' },
  })
  t.equal(created.statusCode, 201)
  t.same(await database.query('SELECT actor FROM audit_events'), [{ actor: 'cli-user' }], 'its sub is the audit actor')

  const other = await mkdtemp(path.join(tmpdir(), 'dlr-token-other-'))
  t.teardown(() => rm(other, { recursive: true, force: true }))
  const elsewhere = await buildTestApp(t, { config: { AUTH_JWT_SECRET: '', DATA_DIR: other } })
  assertUnauthorised(t, await call(elsewhere.app, `Bearer ${jwt}`), 'refused by an app with another development secret')

  const foi = mint('--role', 'foi_officer')
  t.equal(foi.status, 0)
  assertProblem(t, await call(app, `Bearer ${foi.stdout.trim()}`), 403)

  const unknown = mint('--role', 'admin')
  t.equal(unknown.status, 2, 'an unknown role is refused')
  t.match(unknown.stderr, /unknown role: admin/)
  t.equal(unknown.stdout, '', 'and no token printed')
})
