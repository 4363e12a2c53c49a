/**
 * Builds the real app on a fresh database of the driver under test, with a known token secret,
 * and closes it when the test ends. Every HTTP test starts here.
 */
import { PassThrough } from 'node:stream'
import { buildApp, type App } from '../../src/app.js'
import { createAuthenticator, type Role, signToken } from '../../src/auth/authenticator.js'
import { type Config, configWith } from '../../src/config.js'
import type { Database } from '../../src/db/client.js'
import { createTestDatabase } from './database.js'

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-characters-long'
/**
 * The audit checkpoints' key in tests (outside production the service would otherwise generate
 * one into DATA_DIR, which is the repository's ./data here). A test's own key is known to it only.
 */
export const TEST_AUDIT_SIGNING_KEY = JSON.stringify({
  kty: 'OKP',
  crv: 'Ed25519',
  d: 'p36oqwL2m4hC-kzDfxQL749ftOw9f9tSYeQdbYF2IDw',
  x: 'tThx1a1YBIw26RpYPSyrDv1jJBEb2IlgITdn8kzVcwA',
})
/** The settings every test app starts from: known secrets, and no checkpoint timer (tests that want one set AUDIT_CHECKPOINT_SECONDS). */
export const TEST_CONFIG = { AUTH_JWT_SECRET: TEST_JWT_SECRET, AUDIT_SIGNING_KEY: TEST_AUDIT_SIGNING_KEY, AUDIT_CHECKPOINT_SECONDS: '86400' } as const

interface TestContext {
  teardown(fn: () => unknown): void
}

export interface TestApp {
  app: App
  database: Database
  config: Config
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[]
  /** A signed token for these roles (and subject). */
  token(roles: Role | Role[], sub?: string): Promise<string>
  /** `{ authorization: 'Bearer …' }` for these roles. */
  auth(roles: Role | Role[], sub?: string): Promise<{ authorization: string }>
}

export async function buildTestApp(
  t: TestContext,
  options: { config?: Partial<Record<keyof Config, string>>; database?: Database; ready?: boolean } = {},
): Promise<TestApp> {
  const config = configWith({ ...TEST_CONFIG, LOG_LEVEL: 'info', ...options.config })
  const database = options.database ?? (await createTestDatabase(t))
  const logs: Record<string, unknown>[] = []
  const logStream = new PassThrough()
  logStream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line))
  })
  const app = await buildApp(config, { database, authenticator: await createAuthenticator(config), logStream })
  t.teardown(() => app.close())
  if (options.ready !== false) await app.ready()
  const secret = new TextEncoder().encode(config.AUTH_JWT_SECRET)
  const token = (roles: Role | Role[], sub = 'test-user') =>
    signToken(secret, { sub, roles: Array.isArray(roles) ? roles : [roles], ttl: '10m' }, config)
  return {
    app,
    database,
    config,
    logs,
    token,
    auth: async (roles, sub) => ({ authorization: `Bearer ${await token(roles, sub)}` }),
  }
}
