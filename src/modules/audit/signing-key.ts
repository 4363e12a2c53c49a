/**
 * The Ed25519 key that signs the audit chain's checkpoints (checkpoints.ts).
 *
 * `AUDIT_SIGNING_KEY` (a private JWK) in production, where config.ts requires it; outside
 * production, when it is unset, a key generated once into `DATA_DIR` (`audit-signing-key.jwk`,
 * mode 0600), like the development token secret. What makes a rewritten trail detectable is that
 * whoever rewrites it cannot sign: a deployment keeps this key off the database host.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto'
import path from 'node:path'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { type Config, ConfigError } from '../../config.js'
import { createdOnce } from '../../data-dir.js'

export const SIGNING_KEY_FILE = 'audit-signing-key.jwk'

/** The public half, as `GET /v1/audit-checkpoints/public-key` gives it and `npm run audit:verify` takes it. */
export interface PublicSigningJwk extends JWK {
  kty: 'OKP'
  crv: 'Ed25519'
  x: string
  kid: string
  alg: 'EdDSA'
  use: 'sig'
}

export interface AuditSigningKey {
  privateKey: KeyObject
  publicKey: KeyObject
  publicJwk: PublicSigningJwk
  /** The key's RFC 7638 thumbprint, named in each signature's header (`kid`). */
  kid: string
  /** Where it came from (`AUDIT_SIGNING_KEY`, or the file in DATA_DIR), for the start-up log line. */
  source: string
}

export type SigningKeyConfig = Pick<Config, 'NODE_ENV' | 'DATA_DIR' | 'AUDIT_SIGNING_KEY'>

/** A new private key as a JWK string (what `AUDIT_SIGNING_KEY` holds). */
export function generateSigningJwk(): string {
  const { privateKey } = generateKeyPairSync('ed25519')
  return JSON.stringify(privateKey.export({ format: 'jwk' }))
}

/** A public Ed25519 key from a JWK (an object or its text); a private one is refused. */
export function publicKeyFromJwk(jwk: unknown): KeyObject {
  const parsed = (typeof jwk === 'string' ? JSON.parse(jwk) : jwk) as Record<string, unknown>
  if (typeof parsed !== 'object' || parsed === null || parsed.kty !== 'OKP' || parsed.crv !== 'Ed25519' || typeof parsed.x !== 'string') {
    throw new Error('not an Ed25519 public key as a JWK ({"kty":"OKP","crv":"Ed25519","x":…})')
  }
  if ('d' in parsed) throw new Error('this is a private key (it has "d"): give the public key, GET /v1/audit-checkpoints/public-key')
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: parsed.x }, format: 'jwk' })
}

async function fromJwk(text: string, source: string): Promise<AuditSigningKey> {
  const privateKey = createPrivateKey({ key: JSON.parse(text) as JsonWebKey, format: 'jwk' })
  const publicKey = createPublicKey(privateKey)
  const { x } = publicKey.export({ format: 'jwk' }) as { x: string }
  const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x })
  return { privateKey, publicKey, publicJwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' }, kid, source }
}

/** The signing key the configuration names, or outside production the one in (or now made for) DATA_DIR. */
export async function loadSigningKey(config: SigningKeyConfig): Promise<AuditSigningKey> {
  if (config.AUDIT_SIGNING_KEY) return fromJwk(config.AUDIT_SIGNING_KEY, 'AUDIT_SIGNING_KEY')
  if (config.NODE_ENV === 'production') {
    throw new ConfigError('Invalid configuration: AUDIT_SIGNING_KEY is required in production')
  }
  return fromJwk(await createdOnce(config.DATA_DIR, SIGNING_KEY_FILE, generateSigningJwk), path.join(config.DATA_DIR, SIGNING_KEY_FILE))
}
