import { spawnSync } from 'node:child_process'
import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'

t.test('defaults make a working configuration from an empty environment', async (t) => {
  const config = loadConfig({})
  t.equal(config.PORT, 3000)
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.DATA_DIR, './data')
  t.equal(config.DATABASE_URL, undefined)
  t.equal(config.LOG_LEVEL, 'info')
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
  const result = startServer({ NODE_ENV: 'production', DATA_DIR: '/tmp/dlr-never-used' })
  t.not(result.status, 0)
  t.match(result.stderr, /AUTH_JWT_SECRET or AUTH_JWKS_URL must be set when NODE_ENV=production/)
})
