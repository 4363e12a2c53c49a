/**
 * Configuration, read once from the environment and validated with zod.
 *
 * Nothing else in the codebase reads `process.env`: the server parses it here and passes the
 * result to `buildApp`, and tests pass their own object, so a test never depends on the shell
 * it runs in.
 */
import { z } from 'zod'

const optionalString = z.string().trim().optional()

const integer = (min: number, max: number, fallback: number) =>
  z.coerce
    .number({ error: `must be an integer between ${min} and ${max}` })
    .int({ error: `must be an integer between ${min} and ${max}` })
    .min(min, { error: `must be an integer between ${min} and ${max}` })
    .max(max, { error: `must be an integer between ${min} and ${max}` })
    .default(fallback)

const databaseUrl = optionalString.refine(
  (value) => value === undefined || /^postgres(ql)?:\/\/.+/.test(value),
  { error: 'must be a postgres:// or postgresql:// connection string' },
)

const httpUrl = optionalString.refine(
  (value) => value === undefined || /^https?:\/\/.+/.test(value),
  { error: 'must be an http:// or https:// URL' },
)

/** ASSET_TAG_PATTERN as the devices module applies it: the whole tag must match. */
export const wholeMatch = (pattern: string) => new RegExp(`^(?:${pattern})$`, 'u')

export const ConfigSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    PORT: integer(0, 65535, 3000),
    HOST: z.string().trim().min(1).default('127.0.0.1'),
    DATABASE_URL: databaseUrl,
    /** The owner's connection, for migrations; the service then runs as DATABASE_URL's role with only what it needs. */
    DATABASE_MIGRATION_URL: databaseUrl,
    DATA_DIR: z.string().trim().min(1).default('./data'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

    AUTH_JWT_SECRET: optionalString.refine((value) => value === undefined || value.length >= 32, {
      error: 'must be at least 32 characters (HS256 needs a 256-bit secret)',
    }),
    AUTH_JWKS_URL: httpUrl,
    AUTH_ISSUER: optionalString,
    /** A comma list: Entra ID sends the client id or `api://…` depending on the token version. */
    AUTH_AUDIENCE: optionalString
      .transform((value) => value?.split(',').map((audience) => audience.trim()).filter(Boolean))
      // "," alone would otherwise check no audience at all.
      .refine((audiences) => audiences === undefined || audiences.length > 0, { error: 'must list at least one audience' }),
    AUTH_MAX_TOKEN_HOURS: integer(1, 24 * 366, 24),
    // Only the proxies' own addresses: `true` or a hop count would also believe an X-Forwarded-For
    // from a client that reaches the service directly, and let it pick a new address per request.
    TRUST_PROXY: optionalString.refine(
      (value) => value === undefined || value === 'false' || value.split(',').every((entry) => /^[0-9A-Fa-f/]*[.:][0-9A-Fa-f.:/]*$|^(loopback|linklocal|uniquelocal)$/.test(entry.trim())),
      { error: "must be false or a comma list of the proxies' addresses, CIDR ranges, loopback, linklocal or uniquelocal (not true or a hop count: those believe a client that bypasses the proxy)" },
    ),

    DB_POOL_MAX: integer(1, 200, 10),
    /** The pool of the heavy routes (exports, imports, reports, audit verify), apart from everything else's. */
    DB_HEAVY_POOL_MAX: integer(1, 50, 2),
    EXPORT_MAX_SECONDS: integer(1, 86_400, 300),
    /** How long a request's body may take to arrive in full before the answer is 408. */
    REQUEST_BODY_TIMEOUT_MS: integer(1_000, 600_000, 30_000),
    DB_CONNECT_TIMEOUT_MS: integer(100, 120_000, 5_000),
    DB_STATEMENT_TIMEOUT_MS: integer(100, 3_600_000, 30_000),
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: integer(100, 3_600_000, 60_000),
    SHUTDOWN_GRACE_MS: integer(0, 600_000, 10_000),

    RATE_LIMIT_PER_MINUTE: integer(0, 1_000_000, 600),
    RATE_LIMIT_HEAVY_PER_MINUTE: integer(0, 1_000_000, 30),
    /** Failed authentications a minute per address; past it, refused before any signature is checked. */
    RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: integer(0, 1_000_000, 120),
    REDIS_URL: optionalString.refine((value) => value === undefined || /^rediss?:\/\/.+/.test(value), {
      error: 'must be a redis:// or rediss:// URL',
    }),
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: integer(0, 60_000, 1_000),
    PRESSURE_MAX_HEAP_MB: integer(0, 65_536, 1_536),
    /** An organisation's own asset-tag scheme, as a regular expression the whole tag must match. */
    ASSET_TAG_PATTERN: optionalString.refine(
      (value) => {
        if (value === undefined) return true
        try {
          wholeMatch(value)
          return true
        } catch {
          return false
        }
      },
      { error: 'must be a valid regular expression' },
    ),
    /** Required with ASSET_TAG_PATTERN: a tag that matches it, quoted in the error a wrong tag gets. */
    ASSET_TAG_EXAMPLE: optionalString,
    /** The Ed25519 private key (a JWK) that signs the audit chain's checkpoints; outside production, generated into DATA_DIR. */
    AUDIT_SIGNING_KEY: optionalString.refine(
      (value) => {
        if (value === undefined) return true
        try {
          const key = JSON.parse(value) as Record<string, unknown>
          return key.kty === 'OKP' && key.crv === 'Ed25519' && typeof key.d === 'string' && typeof key.x === 'string'
        } catch {
          return false
        }
      },
      { error: 'must be an Ed25519 private key as a JWK ({"kty":"OKP","crv":"Ed25519","d":…,"x":…})' },
    ),
    AUDIT_CHECKPOINT_SECONDS: integer(1, 86_400, 60),
    /** A custodian who left this many months ago and holds nothing has their personal data erased. */
    RETENTION_CUSTODIAN_MONTHS: integer(1, 1_200, 24),
    /** An incident closed or recovered this many years ago has its free text erased. */
    RETENTION_INCIDENT_YEARS: integer(1, 100, 6),
    /** `daily`: the service runs the retention schedule once a day (one instance at a time); `off`: only `npm run retention`. */
    RETENTION_SCHEDULE: z.enum(['daily', 'off']).default('daily'),
    CORS_ORIGINS: optionalString.refine(
      (value) => value === undefined || value.split(',').every((origin) => /^https?:\/\/[^/\s]+$/.test(origin.trim())),
      { error: 'must be a comma-separated list of origins such as https://register.example.org' },
    ),
  })
  .superRefine((config, ctx) => {
    if (config.AUTH_JWT_SECRET && config.AUTH_JWKS_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['AUTH_JWKS_URL'],
        message: 'set either AUTH_JWT_SECRET or AUTH_JWKS_URL, not both',
      })
    }
    // Entra ID's signing keys are shared by every tenant: without both, any app's token would pass.
    if (config.NODE_ENV === 'production' && config.AUTH_JWKS_URL) {
      for (const name of ['AUTH_ISSUER', 'AUTH_AUDIENCE'] as const) {
        if (!config[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'is required in production with AUTH_JWKS_URL' })
      }
    }
    if (config.NODE_ENV === 'production' && !config.AUDIT_SIGNING_KEY) {
      ctx.addIssue({ code: 'custom', path: ['AUDIT_SIGNING_KEY'], message: 'is required in production (keep it off the database host: it is what makes a rewritten trail detectable)' })
    }
    if (config.DATABASE_MIGRATION_URL && !config.DATABASE_URL) {
      ctx.addIssue({ code: 'custom', path: ['DATABASE_MIGRATION_URL'], message: 'needs DATABASE_URL too (the role the service runs as)' })
    }
    // A person told "must match ^[A-Z]{2}\d{6}$" is worse off than one shown a tag that does.
    if (config.ASSET_TAG_PATTERN && !config.ASSET_TAG_EXAMPLE) {
      ctx.addIssue({ code: 'custom', path: ['ASSET_TAG_EXAMPLE'], message: 'is required with ASSET_TAG_PATTERN (a tag that matches it, shown to whoever types a wrong one)' })
    } else if (config.ASSET_TAG_PATTERN && config.ASSET_TAG_EXAMPLE && !wholeMatch(config.ASSET_TAG_PATTERN).test(config.ASSET_TAG_EXAMPLE)) {
      ctx.addIssue({ code: 'custom', path: ['ASSET_TAG_EXAMPLE'], message: 'does not match ASSET_TAG_PATTERN' })
    }
  })

export type Config = z.infer<typeof ConfigSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Parses the environment. Throws a ConfigError whose message is one line naming every bad
 * variable, e.g. `Invalid configuration: PORT must be an integer between 0 and 65535`.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An unset variable and an empty one mean the same: "use the default".
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''))
  const result = ConfigSchema.safeParse(given)
  if (result.success) return result.data
  const problems = result.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`)
  throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`)
}

/** A configuration for tests and tools: defaults, then the given overrides. */
export function configWith(overrides: Partial<Record<keyof Config, string>> = {}): Config {
  // Rate limits and load shedding are off unless a test turns them on: a test makes hundreds of
  // requests a second as one caller, and a busy CI machine delays the event loop.
  return loadConfig({
    LOG_LEVEL: 'silent',
    NODE_ENV: 'test',
    RATE_LIMIT_PER_MINUTE: '0',
    RATE_LIMIT_HEAVY_PER_MINUTE: '0',
    RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: '0',
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    PRESSURE_MAX_HEAP_MB: '0',
    // A test asks for a retention run when it wants one.
    RETENTION_SCHEDULE: 'off',
    ...overrides,
  })
}
