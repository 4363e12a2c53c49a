/**
 * The app with every route it registers collected (through `AppDependencies.onRoute`), for tests
 * that must walk all routes rather than a hand-kept list.
 */
import type { RouteOptions } from 'fastify'
import { buildApp } from '../../src/app.js'
import { createAuthenticator, type Role, signToken } from '../../src/auth/authenticator.js'
import { configWith } from '../../src/config.js'
import type { Access } from '../../src/plugins/auth.js'
import { TEST_CONFIG, TEST_JWT_SECRET } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

interface TestContext {
  teardown(fn: () => unknown): void
}

export interface CollectedRoute {
  method: string
  url: string
  /** Read after `ready`: plugins' onRoute hooks may set it after we first see the route. */
  readonly access: Access | undefined
}

export async function appWithRoutes(t: TestContext, extra?: (app: Awaited<ReturnType<typeof buildApp>>) => void) {
  const config = configWith(TEST_CONFIG)
  const database = await createTestDatabase(t)
  const seen: RouteOptions[] = []
  const app = await buildApp(config, {
    database,
    authenticator: await createAuthenticator(config),
    onRoute: (route) => seen.push(route),
  })
  t.teardown(() => app.close())
  extra?.(app)
  await app.ready()
  const routes: CollectedRoute[] = seen.flatMap((route) =>
    (Array.isArray(route.method) ? route.method : [route.method]).map((method) => ({
      method: String(method),
      url: route.url,
      get access() {
        return route.config?.access
      },
    })),
  )
  const secret = new TextEncoder().encode(TEST_JWT_SECRET)
  const token = (roles: Role[], sub = 'route-walker') => signToken(secret, { sub, roles, ttl: '10m' }, config)
  return { app, routes, token, database }
}
