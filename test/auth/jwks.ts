/**
 * An identity provider for tests: a key pair, its JWKS served on 127.0.0.1 as Entra ID or any
 * OIDC provider publishes it, and RS256 tokens signed with the key (or with a stranger's).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type CryptoKey, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose'

interface TestContext {
  teardown(fn: () => unknown): void
}

/** A JWKS endpoint serving `keys`; counts how often it is fetched. */
export async function serveJwks(t: TestContext, keys: unknown[]) {
  let fetches = 0
  const server = createServer((_request, response) => {
    fetches++
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`, fetches: () => fetches }
}

export const IDP_KID = 'idp-1'

/** A provider publishing one RS256 key (`kid` idp-1), and a stranger's key to forge with. */
export async function identityProvider(t: TestContext) {
  const idp = await generateKeyPair('RS256')
  const stranger = await generateKeyPair('RS256')
  const jwks = await serveJwks(t, [{ ...(await exportJWK(idp.publicKey)), kid: IDP_KID, alg: 'RS256', use: 'sig' }])
  const rs256 = (key: CryptoKey, kid: string, claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key)
  return {
    jwks,
    /** Signed by the published key: exactly the claims given. */
    sign: (claims: JWTPayload) => rs256(idp.privateKey, IDP_KID, claims),
    /** Signed by another key under the published kid: a bad signature. */
    forge: (claims: JWTPayload) => rs256(stranger.privateKey, IDP_KID, claims),
    stranger,
  }
}
