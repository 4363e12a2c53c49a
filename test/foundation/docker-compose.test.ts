/**
 * No Docker engine runs on these machines, so the compose file is checked for structure: a
 * PostgreSQL with a health check, and the service waiting for it and configured to use it.
 */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config.js'

interface Service {
  image?: string
  build?: string
  environment?: Record<string, string>
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  ports?: string[]
}

t.test('docker-compose.yml runs the service next to a healthy PostgreSQL', async (t) => {
  const compose = parse(await readFile('docker-compose.yml', 'utf8')) as { services: Record<string, Service> }
  const postgres = compose.services.postgres!
  const register = compose.services.register!
  t.match(postgres.image, /^postgres:\d+/)
  t.match(postgres.healthcheck?.test.join(' '), /pg_isready/)
  t.equal(register.build, '.')
  t.same(register.depends_on, { postgres: { condition: 'service_healthy' } })
  t.match(register.environment?.DATABASE_URL, /^postgres:\/\/\w+:\w+@postgres:5432\//)
  t.same(register.ports, ['3000:3000'])

  // The service's environment must be a valid configuration once the required secret is given.
  const env = Object.fromEntries(
    Object.entries(register.environment ?? {}).map(([key, value]) => [key, value.startsWith('${') ? '' : value]),
  )
  const config = loadConfig({ ...env, AUTH_JWT_SECRET: 'x'.repeat(32) })
  t.equal(config.NODE_ENV, 'production')
  t.equal(config.HOST, '0.0.0.0')
})

t.test('the Dockerfile starts the service the way npm start does', async (t) => {
  const dockerfile = await readFile('Dockerfile', 'utf8')
  const pkg = JSON.parse(await readFile('package.json', 'utf8'))
  t.match(dockerfile, /^FROM node:20/m)
  t.match(dockerfile, /npm ci/)
  // Both run the compiled server (tsconfig.build.json), built by the same `npm run build`.
  t.equal(pkg.scripts.start, 'node dist/server.js')
  t.equal(pkg.scripts.prestart, pkg.scripts.build)
  t.match(dockerfile, /RUN npm run build/)
  t.match(dockerfile, /CMD \["node", "dist\/server\.js"\]/)
})
