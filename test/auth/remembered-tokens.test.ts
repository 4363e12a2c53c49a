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
  t.same(await authenticator.verify(token), { sub: 'alice', roles: ['security'] }, 'from memory, the same answer')

  const [header, payload, signature] = token.split('.')
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString())
  const elevated = Buffer.from(JSON.stringify({ ...claims, roles: ['security', 'asset_manager'] })).toString('base64url')
  await t.rejects(authenticator.verify(`${header}.${elevated}.${signature}`), { name: 'InvalidTokenError' })
  await t.rejects(authenticator.verify(`${token}x`), { name: 'InvalidTokenError' })
})
