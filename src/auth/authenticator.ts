/**
 * Bearer token verification with jose.
 *
 * - `AUTH_JWT_SECRET`: HS256 with that secret.
 * - `AUTH_JWKS_URL`: RS256/ES256 keys from a remote JWKS (Entra ID and other OIDC providers),
 *   fetched with a timeout and cached; keys are only ever taken from that URL, never from a
 *   token's own `jku`/`x5u`/`jwk` headers (jose does not follow them).
 * - neither, outside production: a random development secret generated once into `DATA_DIR`,
 *   which `npm run token` signs with.
 *
 * Algorithms are pinned per mode (`alg: none` is never accepted), `exp` and `sub` are required,
 * `iss`/`aud` are checked when configured (`AUTH_AUDIENCE` is a comma list: Entra ID sends the
 * client id or `api://…` depending on the token version), and the clock tolerance is 30 seconds.
 * A token may live at most `AUTH_MAX_TOKEN_HOURS` (`exp` − `iat`, or `exp` − now without `iat`)
 * and may not be issued in the future: a stolen long-lived token would otherwise outlast any
 * revocation, and a future `iat` is a forger's or a broken clock's.
 */
import { createSecretKey, randomBytes } from 'node:crypto'
import { createRemoteJWKSet, errors as joseErrors, type JWTPayload, type JWTVerifyResult, jwtVerify, SignJWT } from 'jose'
import { type Config, ConfigError } from '../config.js'
import { createdOnce } from '../data-dir.js'

export const ROLES = ['security', 'asset_manager', 'foi_officer'] as const
export type Role = (typeof ROLES)[number]

export interface Principal {
  /** The token's `sub`: the actor recorded in the audit trail. */
  sub: string
  roles: Role[]
}

export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError'
}

/** The identity provider's keys could not be had (down, slow, garbage): not the caller's fault. */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError'
}

/** True when a JWKS failure is about fetching the key set, not about the token. */
function isKeySetFailure(error: unknown): boolean {
  if (!(error instanceof joseErrors.JOSEError)) return true // fetch itself failed (refused, DNS, reset)
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid) return true
  return error.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set HTTP response/.test(error.message)
}

export interface Authenticator {
  /** How tokens are verified, for the start-up log line. */
  readonly mode: 'hs256-secret' | 'jwks' | 'development-secret'
  /**
   * The caller of this exact token if it verified a moment ago, without checking anything: what
   * may still answer an address that has failed authentication too often.
   */
  remembered(token: string): Principal | undefined
  /** Checks the token in full (ask `remembered` first for one that has verified already) and remembers it once it has. */
  verify(token: string): Promise<Principal>
}

/** One way of checking a token (a secret, a key set), before `remembering` wraps it. */
interface TokenVerifier {
  readonly mode: Authenticator['mode']
  /** The caller, and the token's `exp` (seconds; jose has checked that it is there). */
  verifyWithExpiry(token: string): Promise<{ principal: Principal; exp: number }>
}

const CLOCK_TOLERANCE_SECONDS = 30
const DEV_SECRET_FILE = 'dev-jwt-secret'

function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value)
}

type ClaimsConfig = Pick<Config, 'AUTH_ISSUER' | 'AUTH_AUDIENCE' | 'AUTH_MAX_TOKEN_HOURS'>

/**
 * What jose does not check: how long the token lives (`exp` − `iat`, or what is left of it when
 * there is no `iat`) and an `iat` in the future. jose has already checked that both are numbers.
 */
function checkLifetime(payload: JWTPayload, maxTokenHours: number): void {
  const now = Math.floor(Date.now() / 1000)
  if (payload.iat !== undefined && payload.iat > now + CLOCK_TOLERANCE_SECONDS) {
    throw new InvalidTokenError('The token is issued in the future (iat).')
  }
  const lifetime = payload.exp! - (payload.iat ?? now)
  if (lifetime > maxTokenHours * 3600) {
    throw new InvalidTokenError(`The token lives longer than the ${maxTokenHours} hour(s) accepted (from iat, or from now, to exp).`)
  }
}

function principalFrom(payload: JWTPayload): Principal {
  if (typeof payload.sub !== 'string' || payload.sub.trim() === '') {
    throw new InvalidTokenError('The token has no subject (sub).')
  }
  const claim = (payload as { roles?: unknown }).roles
  const roles = Array.isArray(claim) ? claim.filter(isRole) : []
  return { sub: payload.sub, roles: [...new Set(roles)] }
}

/** jose's errors, said plainly. Nothing here reveals the key or the expected values. */
function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'The token has expired.'
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'exp') return 'The token must carry an expiry (exp).'
    if (error.claim === 'nbf') return 'The token is not valid yet (nbf).'
    return `The token's "${error.claim}" claim is not accepted.`
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'The token is signed with an algorithm that is not accepted.'
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'The token signature is not valid.'
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'No key of the identity provider matches the token.'
  if (error instanceof joseErrors.JWKSTimeout) return 'The identity provider keys could not be fetched in time.'
  return 'The token is not a valid JWT.'
}

/** One verifier over jose's `jwtVerify` with a key (HS256) or a key set (JWKS): the same rules and errors for both. */
function tokenVerifier(mode: TokenVerifier['mode'], verify: (token: string) => Promise<JWTVerifyResult>, config: ClaimsConfig): TokenVerifier {
  return {
    mode,
    async verifyWithExpiry(token) {
      try {
        const { payload } = await verify(token)
        checkLifetime(payload, config.AUTH_MAX_TOKEN_HOURS)
        return { principal: principalFrom(payload), exp: payload.exp! }
      } catch (error) {
        if (error instanceof InvalidTokenError) throw error
        if (isKeySetFailure(error)) throw new KeysUnavailableError('The identity provider keys could not be fetched.', { cause: error })
        throw new InvalidTokenError(describeJoseError(error))
      }
    },
  }
}

function verifyOptions(algorithms: string[], config: ClaimsConfig) {
  return {
    algorithms,
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    requiredClaims: ['exp', 'sub'],
    ...(config.AUTH_ISSUER ? { issuer: config.AUTH_ISSUER } : {}),
    ...(config.AUTH_AUDIENCE ? { audience: config.AUTH_AUDIENCE } : {}),
  }
}

function hmacAuthenticator(secret: Uint8Array, mode: 'hs256-secret' | 'development-secret', config: ClaimsConfig): TokenVerifier {
  // Imported once: handing jose the raw bytes would import the key again on every request.
  const key = createSecretKey(secret)
  const options = verifyOptions(['HS256'], config)
  return tokenVerifier(mode, (token) => jwtVerify(token, key, options), config)
}

function jwksAuthenticator(url: string, config: ClaimsConfig): TokenVerifier {
  const keys = createRemoteJWKSet(new URL(url), {
    timeoutDuration: 5_000,
    cooldownDuration: 30_000,
    cacheMaxAge: 10 * 60_000,
  })
  const options = verifyOptions(['RS256', 'ES256'], config)
  return tokenVerifier('jwks', (token) => jwtVerify(token, keys, options), config)
}

/** Reads the development secret from `DATA_DIR`, creating it (mode 0600) on first use. */
export async function developmentSecret(dataDir: string): Promise<Uint8Array> {
  return new TextEncoder().encode(await createdOnce(dataDir, DEV_SECRET_FILE, () => randomBytes(32).toString('base64url')))
}

export type AuthConfig = Pick<
  Config,
  'NODE_ENV' | 'DATA_DIR' | 'AUTH_JWT_SECRET' | 'AUTH_JWKS_URL' | 'AUTH_ISSUER' | 'AUTH_AUDIENCE' | 'AUTH_MAX_TOKEN_HOURS'
>

export async function createAuthenticator(config: AuthConfig): Promise<Authenticator> {
  if (config.AUTH_JWKS_URL) return remembering(jwksAuthenticator(config.AUTH_JWKS_URL, config))
  if (config.AUTH_JWT_SECRET) {
    return remembering(hmacAuthenticator(new TextEncoder().encode(config.AUTH_JWT_SECRET), 'hs256-secret', config))
  }
  if (config.NODE_ENV === 'production') {
    throw new ConfigError(
      'Invalid configuration: AUTH_JWT_SECRET or AUTH_JWKS_URL must be set when NODE_ENV=production',
    )
  }
  return remembering(hmacAuthenticator(await developmentSecret(config.DATA_DIR), 'development-secret', config))
}

const REMEMBER_MS = 60_000
const REMEMBER_MAX = 10_000

/**
 * Remembers tokens that verified, for at most a minute and never past their own `exp`: a client
 * sends the same token with every request, and checking its signature again each time was the
 * largest single cost of a device read. The key is the whole token, signature included, so only
 * a byte-identical token that already verified is ever taken from here; failures are never kept.
 * Every rule is checked before a token is kept, and none can turn a kept token bad sooner than
 * `exp` (its lifetime and `iat` do not change; what is left of it only shrinks).
 */
function remembering(inner: TokenVerifier): Authenticator {
  const remembered = new Map<string, { principal: Principal; until: number }>()
  return {
    mode: inner.mode,
    remembered(token) {
      const hit = remembered.get(token)
      if (hit && hit.until > Date.now()) return hit.principal
      if (hit) remembered.delete(token)
      return undefined
    },
    async verify(token) {
      const now = Date.now()
      const { principal, exp } = await inner.verifyWithExpiry(token)
      if (remembered.size >= REMEMBER_MAX) remembered.delete(remembered.keys().next().value!)
      remembered.set(token, { principal, until: Math.min(now + REMEMBER_MS, exp * 1000) })
      return principal
    },
  }
}

export interface TokenRequest {
  sub: string
  roles: Role[]
  /** A jose time span such as `8h` or `30m`. */
  ttl: string
}

/** Signs an HS256 token for development and tests. */
export async function signToken(secret: Uint8Array, request: TokenRequest, config: Partial<AuthConfig> = {}) {
  let jwt = new SignJWT({ roles: request.roles })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(request.sub)
    .setIssuedAt()
    .setExpirationTime(request.ttl)
  if (config.AUTH_ISSUER) jwt = jwt.setIssuer(config.AUTH_ISSUER)
  const audience = config.AUTH_AUDIENCE?.[0]
  if (audience) jwt = jwt.setAudience(audience)
  return jwt.sign(secret)
}
