import { spawnSync } from 'node:child_process'
import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'
import { TEST_AUDIT_SIGNING_KEY } from '../helpers/audit-key.js'

t.test('defaults make a working configuration from an empty environment', async (t) => {
  const config = loadConfig({})
  t.equal(config.PORT, 3000)
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.DATA_DIR, './data')
  t.equal(config.DATABASE_URL, undefined)
  t.equal(config.LOG_LEVEL, 'info')
})

t.test("TRUST_PROXY takes the proxies' addresses", async (t) => {
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8, loopback' }).TRUST_PROXY, '10.0.0.0/8, loopback')
  t.equal(loadConfig({ TRUST_PROXY: 'false' }).TRUST_PROXY, 'false')
})

t.test('empty variables mean "unset"', async (t) => {
  const config = loadConfig({ DATABASE_URL: '', AUTH_JWT_SECRET: '  ' })
  t.equal(config.DATABASE_URL, undefined)
  t.equal(config.AUTH_JWT_SECRET, undefined)
})

t.test('each bad variable is named in one line', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /^Invalid configuration: PORT must be an integer between 0 and 65535$/],
    [{ PORT: '70000' }, /PORT must be an integer/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must be a postgres:\/\//],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ AUTH_JWT_SECRET: 'short' }, /AUTH_JWT_SECRET must be at least 32 characters/],
    [{ AUTH_JWKS_URL: 'not a url' }, /AUTH_JWKS_URL must be an http/],
    [{ AUTH_JWT_SECRET: 'x'.repeat(32), AUTH_JWKS_URL: 'https://idp.example/keys' }, /AUTH_JWKS_URL set either/],
    [{ DB_POOL_MAX: '0' }, /DB_POOL_MAX/],
    [{ TRUST_PROXY: 'true' }, /TRUST_PROXY must be false or a comma list of the proxies' addresses/],
    [{ TRUST_PROXY: '1' }, /TRUST_PROXY .*not true or a hop count/],
    [{ TRUST_PROXY: '10.0.0.0/8, evil' }, /TRUST_PROXY/],
    [{ ASSET_TAG_PATTERN: '\\d{5}' }, /ASSET_TAG_EXAMPLE is required with ASSET_TAG_PATTERN/],
    [{ ASSET_TAG_PATTERN: '\\d{5}', ASSET_TAG_EXAMPLE: '1234' }, /ASSET_TAG_EXAMPLE does not match ASSET_TAG_PATTERN/],
  ]
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), ConfigError, JSON.stringify(env))
    try {
      loadConfig(env)
    } catch (error) {
      t.match((error as Error).message, message)
      t.notMatch((error as Error).message, /\n/, 'one line')
    }
  }
})

function startServer(env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  })
}

t.test('the server refuses to start on bad configuration, with a clear line and a non-zero exit', async (t) => {
  const result = startServer({ PORT: 'not-a-port' })
  t.not(result.status, 0)
  t.equal(result.stderr.trim().split('\n').at(-1), 'Invalid configuration: PORT must be an integer between 0 and 65535')
})

t.test('production without AUTH_* refuses to start', async (t) => {
  const result = startServer({ NODE_ENV: 'production', AUDIT_SIGNING_KEY: TEST_AUDIT_SIGNING_KEY, DATA_DIR: '/tmp/dlr-never-used' })
  t.not(result.status, 0)
  t.match(result.stderr, /AUTH_JWT_SECRET or AUTH_JWKS_URL must be set when NODE_ENV=production/)
})

t.test('production with AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE', async (t) => {
  const jwks = { NODE_ENV: 'production', AUDIT_SIGNING_KEY: TEST_AUDIT_SIGNING_KEY, AUTH_JWKS_URL: 'https://login.example/common/discovery/v2.0/keys' }
  const issuer = 'https://login.example/tenant/v2.0'
  const audience = 'api://device-loss-register,6e1b2f9c-3d4a-4c1e-9f2b-7a8d5c4e3b21'
  t.throws(() => loadConfig({ ...jwks, AUTH_AUDIENCE: audience }), { message: /^Invalid configuration: AUTH_ISSUER is required in production with AUTH_JWKS_URL$/ })
  t.throws(() => loadConfig({ ...jwks, AUTH_ISSUER: issuer }), { message: /^Invalid configuration: AUTH_AUDIENCE is required in production with AUTH_JWKS_URL$/ })
  t.throws(() => loadConfig(jwks), { message: /AUTH_ISSUER is required.*; AUTH_AUDIENCE is required/ })
  t.same(loadConfig({ ...jwks, AUTH_ISSUER: issuer, AUTH_AUDIENCE: audience }).AUTH_AUDIENCE, audience.split(','))
  t.same(loadConfig({ AUTH_AUDIENCE: ' api://one , two,' }).AUTH_AUDIENCE, ['api://one', 'two'], 'a comma list, blanks dropped')
  t.ok(loadConfig({ AUTH_JWKS_URL: jwks.AUTH_JWKS_URL }), 'outside production, neither is required')
  t.ok(loadConfig({ NODE_ENV: 'production', AUDIT_SIGNING_KEY: TEST_AUDIT_SIGNING_KEY, AUTH_JWT_SECRET: 'x'.repeat(32) }), 'nor with a shared secret')

  // The start itself refuses, with the one line that names what is missing.
  for (const [missing, env] of [
    ['AUTH_ISSUER', { ...jwks, AUTH_AUDIENCE: audience }],
    ['AUTH_AUDIENCE', { ...jwks, AUTH_ISSUER: issuer }],
  ] as const) {
    const result = startServer({ ...env, DATA_DIR: '/tmp/dlr-never-used' })
    t.equal(result.status, 1, `without ${missing}: exit code 1`)
    t.equal(result.stderr.trim().split('\n').at(-1), `Invalid configuration: ${missing} is required in production with AUTH_JWKS_URL`)
  }
})

t.test('an AUTH_AUDIENCE that lists no audience is refused, not read as "any"', async (t) => {
  t.throws(() => loadConfig({ AUTH_JWT_SECRET: 'x'.repeat(32), AUTH_AUDIENCE: ' , ' }), {
    name: 'ConfigError',
    message: 'Invalid configuration: AUTH_AUDIENCE must list at least one audience',
  })
})

t.test('the new limits have their documented defaults', async (t) => {
  const config = loadConfig({})
  t.equal(config.AUTH_MAX_TOKEN_HOURS, 24)
  t.equal(config.RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE, 120)
  t.throws(() => loadConfig({ AUTH_MAX_TOKEN_HOURS: '0' }), { message: /AUTH_MAX_TOKEN_HOURS must be an integer/ })
})

t.test('production needs the audit signing key, an Ed25519 private JWK', async (t) => {
  const production = { NODE_ENV: 'production', AUTH_JWT_SECRET: 'x'.repeat(32) }
  t.throws(() => loadConfig(production), { message: /^Invalid configuration: AUDIT_SIGNING_KEY is required in production/ })
  for (const bad of ['not json', '{"kty":"RSA"}', JSON.stringify({ ...JSON.parse(TEST_AUDIT_SIGNING_KEY), d: undefined })]) {
    t.throws(() => loadConfig({ AUDIT_SIGNING_KEY: bad }), { message: /^Invalid configuration: AUDIT_SIGNING_KEY must be an Ed25519 private key as a JWK/ }, bad)
  }
  t.ok(loadConfig({ ...production, AUDIT_SIGNING_KEY: TEST_AUDIT_SIGNING_KEY }))
  t.equal(loadConfig({}).AUDIT_CHECKPOINT_SECONDS, 60)
  t.equal(loadConfig({}).RETENTION_SCHEDULE, 'daily', 'the service runs retention unless told not to')
  t.throws(() => loadConfig({ DATABASE_MIGRATION_URL: 'postgres://owner@db/register' }), { message: /DATABASE_MIGRATION_URL needs DATABASE_URL too/ })
})
