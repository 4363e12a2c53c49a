/**
 * Verified tokens are remembered (verification is the largest single cost of a read), but only a
 * byte-identical token is ever taken from memory: a tampered copy of a remembered token is still
 * checked, and still refused.
 */
import t from 'tap'
import { createAuthenticator, signToken } from '../../src/auth/authenticator.js'
import { configWith } from '../../src/config.js'
import { TEST_JWT_SECRET } from '../helpers/app.js'

t.test('a remembered token answers the same caller; a tampered copy is still refused', async (t) => {
  const config = configWith({ AUTH_JWT_SECRET: TEST_JWT_SECRET })
  const authenticator = await createAuthenticator(config)
  const token = await signToken(new TextEncoder().encode(TEST_JWT_SECRET), { sub: 'alice', roles: ['security'], ttl: '10m' })
  t.same(await authenticator.verify(token), { sub: 'alice', roles: ['security'] })
  t.same(authenticator.remembered(token), { sub: 'alice', roles: ['security'] }, 'from memory, the same answer')

  const [header, payload, signature] = token.split('.')
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString())
  const elevated = Buffer.from(JSON.stringify({ ...claims, roles: ['security', 'asset_manager'] })).toString('base64url')
  await t.rejects(authenticator.verify(`${header}.${elevated}.${signature}`), { name: 'InvalidTokenError' })
  await t.rejects(authenticator.verify(`${token}x`), { name: 'InvalidTokenError' })
})

t.test('remembered() answers only for a token that verified, byte for byte, and checks nothing', async (t) => {
  const config = configWith({ AUTH_JWT_SECRET: TEST_JWT_SECRET })
  const authenticator = await createAuthenticator(config)
  const secret = new TextEncoder().encode(TEST_JWT_SECRET)
  const token = await signToken(secret, { sub: 'bob', roles: ['asset_manager'], ttl: '10m' })
  t.equal(authenticator.remembered(token), undefined, 'not before it has verified')
  await authenticator.verify(token)
  t.same(authenticator.remembered(token), { sub: 'bob', roles: ['asset_manager'] })
  t.equal(authenticator.remembered(`${token}x`), undefined, 'not for a copy with a byte more')

  // Living longer than AUTH_MAX_TOKEN_HOURS (24 by default): refused, so never remembered.
  const tooLong = await signToken(secret, { sub: 'carol', roles: ['security'], ttl: '25h' })
  await t.rejects(authenticator.verify(tooLong), { name: 'InvalidTokenError', message: /lives longer/ })
  t.equal(authenticator.remembered(tooLong), undefined)
})
