/**
 * No Docker engine runs on these machines, so the compose file is checked for structure: a
 * PostgreSQL with a health check, and the service waiting for it and configured to use it, as the
 * runtime role of two (the init script makes both; the migrations run as the owner). On
 * PostgreSQL, the init script's SQL is run too, under names of its own.
 */
import { spawnSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { configWith, loadConfig } from '../../src/config.js'
import { connectPostgres } from '../../src/db/client.js'
import { migrateDatabase } from '../../src/db/migrate.js'
import { TEST_DATABASE_URL, testPoolOptions, withAdmin } from '../helpers/database.js'
import { urlAs } from '../helpers/roles.js'

const INIT_DIRECTORY = 'docker/postgres-init'
const INIT_SCRIPT = `${INIT_DIRECTORY}/10-roles.sh`

interface Service {
  image?: string
  build?: string
  environment?: Record<string, string>
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  ports?: string[]
  volumes?: string[]
}

const readCompose = async () => parse(await readFile('docker-compose.yml', 'utf8')) as { services: Record<string, Service> }

/** Compose's own interpolation: `${VAR}`, `${VAR:-default}`, and `${VAR:?message}`, which stops `docker compose up` when VAR is unset or empty. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_match, name: string, operator?: string, argument = '') => {
    if (env[name]) return env[name]
    if (operator === '?') throw new Error(`${name}: ${argument}`)
    return operator === '-' ? argument : ''
  })
}

/** The variables a `${VAR:?…}` in these values makes required. */
const requiredIn = (values: string[]) => new Set(values.flatMap((value) => [...value.matchAll(/\$\{(\w+):\?/g)].map((match) => match[1]!)))

const signingKey = () => JSON.stringify(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }))

/** What an operator sets before `docker compose up`. */
const OPERATOR_ENV = {
  POSTGRES_PASSWORD: 'superuser-secret',
  POSTGRES_OWNER_PASSWORD: 'owner0secret',
  POSTGRES_APP_PASSWORD: 'app0secret',
  AUTH_JWT_SECRET: 'x'.repeat(32),
  AUDIT_SIGNING_KEY: signingKey(),
}

t.test('docker-compose.yml runs the service next to a healthy PostgreSQL', async (t) => {
  const compose = await readCompose()
  const postgres = compose.services.postgres!
  const register = compose.services.register!
  t.match(postgres.image, /^postgres:\d+/)
  t.match(postgres.healthcheck?.test.join(' '), /pg_isready/)
  t.equal(register.build, '.')
  t.same(register.depends_on, { postgres: { condition: 'service_healthy' } })
  t.same(register.ports, ['3000:3000'])

  // The service's environment must be a valid configuration once the operator's secrets are given.
  const env = Object.fromEntries(Object.entries(register.environment ?? {}).map(([key, value]) => [key, interpolate(value, OPERATOR_ENV)]))
  const config = loadConfig(env)
  t.equal(config.NODE_ENV, 'production')
  t.equal(config.HOST, '0.0.0.0')
  t.equal(config.AUDIT_SIGNING_KEY, OPERATOR_ENV.AUDIT_SIGNING_KEY, 'the audit signing key is passed through')
})

t.test('the service runs as register_app and migrates as register_owner, with every secret required', async (t) => {
  const compose = await readCompose()
  const postgres = compose.services.postgres!
  const register = compose.services.register!
  const environment = register.environment ?? {}
  const runtime = new URL(interpolate(environment.DATABASE_URL ?? '', OPERATOR_ENV))
  const owner = new URL(interpolate(environment.DATABASE_MIGRATION_URL ?? '', OPERATOR_ENV))
  t.match(
    { user: runtime.username, password: runtime.password, host: runtime.host, database: runtime.pathname },
    { user: 'register_app', password: OPERATOR_ENV.POSTGRES_APP_PASSWORD, host: 'postgres:5432', database: '/register' },
    'DATABASE_URL: the runtime role, with the password the init script gives it',
  )
  t.match(
    { user: owner.username, password: owner.password, host: owner.host, database: owner.pathname },
    { user: 'register_owner', password: OPERATOR_ENV.POSTGRES_OWNER_PASSWORD, host: 'postgres:5432', database: '/register' },
    'DATABASE_MIGRATION_URL: the owner, on the same database',
  )
  t.same(
    [...requiredIn(Object.values(environment))].sort(),
    ['AUDIT_SIGNING_KEY', 'AUTH_JWT_SECRET', 'POSTGRES_APP_PASSWORD', 'POSTGRES_OWNER_PASSWORD'],
    'the service will not start without these',
  )
  for (const name of requiredIn(Object.values(environment))) {
    const without = { ...OPERATOR_ENV, [name]: '' }
    t.throws(() => Object.values(environment).map((value) => interpolate(value, without)), new RegExp(`^${name}: set ${name}`), `${name} unset stops compose`)
  }
  const postgresEnvironment = postgres.environment ?? {}
  t.same(
    [...requiredIn(Object.values(postgresEnvironment))].sort(),
    ['POSTGRES_APP_PASSWORD', 'POSTGRES_OWNER_PASSWORD', 'POSTGRES_PASSWORD'],
    'the database container needs the superuser password and the two roles\'',
  )
  t.same(Object.keys(postgresEnvironment).sort(), ['POSTGRES_APP_PASSWORD', 'POSTGRES_OWNER_PASSWORD', 'POSTGRES_PASSWORD'], 'no POSTGRES_DB: the init script makes it')

  t.ok(postgres.volumes?.includes(`./${INIT_DIRECTORY}:/docker-entrypoint-initdb.d:ro`), 'the init scripts are mounted where the image runs them')
  t.ok(((await stat(INIT_SCRIPT)).mode & 0o111) !== 0, 'the init script is executable (else the image sources it into its own shell)')
  const syntax = spawnSync('bash', ['-n', INIT_SCRIPT], { encoding: 'utf8' })
  t.equal(syntax.status, 0, `bash -n ${INIT_SCRIPT}`, { stderr: syntax.stderr })
  const script = await readFile(INIT_SCRIPT, 'utf8')
  for (const name of ['POSTGRES_OWNER_PASSWORD', 'POSTGRES_APP_PASSWORD']) t.match(script, `"\${${name}:?`, `the script checks ${name} before anything`)
  t.match(script, /CREATE ROLE register_owner LOGIN/)
  t.match(script, /CREATE ROLE register_app LOGIN/)
  t.match(script, /CREATE DATABASE register OWNER register_owner;/)
})

t.test('the init script refuses to run without either password, and hands psql both', async (t) => {
  // A psql of our own on PATH, which says how it was called and what SQL it was given.
  const bin = await mkdtemp(path.join(tmpdir(), 'dlr-psql-'))
  t.teardown(() => rm(bin, { recursive: true, force: true }))
  await writeFile(path.join(bin, 'psql'), '#!/bin/sh\nprintf "%s\\n" "$@"\ncat\n')
  await chmod(path.join(bin, 'psql'), 0o755)
  const run = (env: Record<string, string>) =>
    spawnSync('bash', [INIT_SCRIPT], { encoding: 'utf8', env: { PATH: `${bin}:${process.env.PATH ?? ''}`, POSTGRES_USER: 'postgres', ...env } })
  const passwords = { POSTGRES_OWNER_PASSWORD: 'owner-secret', POSTGRES_APP_PASSWORD: 'app-secret' }
  for (const name of Object.keys(passwords)) {
    const refused = run({ ...passwords, [name]: '' })
    t.not(refused.status, 0, `${name} empty: the script fails`)
    t.match(refused.stderr, `${name}: set ${name}`, 'naming the variable')
    t.equal(refused.stdout, '', 'before psql runs')
  }
  const ran = run(passwords)
  t.equal(ran.status, 0, 'with both, the script runs', { stderr: ran.stderr })
  t.match(ran.stdout, /^owner_password=owner-secret$/m, 'the owner password goes to psql as a variable')
  t.match(ran.stdout, /^app_password=app-secret$/m, 'and the service role\'s')
  t.match(ran.stdout, /^ON_ERROR_STOP=1$/m, 'psql stops at the first error')
  t.match(ran.stdout, /CREATE ROLE register_owner LOGIN PASSWORD :'owner_password';/, 'the SQL reaches psql unexpanded by bash')
})

/** The SQL the init script hands psql, with psql's `:'variable'` quoting done the same way. */
async function initScriptSql(names: { owner: string; app: string; database: string }, passwords: { owner: string; app: string }): Promise<string[]> {
  const script = await readFile(INIT_SCRIPT, 'utf8')
  const body = /<<'SQL'\n([\s\S]*?)\nSQL\n/.exec(script)?.[1]
  if (!body) throw new Error(`no <<'SQL' … SQL block in ${INIT_SCRIPT}`)
  const literal = (value: string) => `'${value.replaceAll("'", "''")}'`
  const text = body
    .replaceAll(":'owner_password'", literal(passwords.owner))
    .replaceAll(":'app_password'", literal(passwords.app))
    .replace(/\bregister_owner\b/g, names.owner)
    .replace(/\bregister_app\b/g, names.app)
    .replace(/\bregister\b/g, names.database)
  if (/:['"]?\w/.test(text.replace(/'[^']*'/g, ''))) throw new Error(`a psql variable this test does not set is left in: ${text}`)
  // One statement at a time: CREATE DATABASE refuses to run inside the implicit transaction of several.
  return text.split(/;\s*$/m).map((statement) => statement.trim()).filter(Boolean)
}

t.test('the init script\'s SQL makes two roles that the migrations and the service then use', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL: the SQL runs on PostgreSQL' }, async (t) => {
  const suffix = randomBytes(5).toString('hex')
  const names = { owner: `dlr_init_owner_${suffix}`, app: `dlr_init_app_${suffix}`, database: `dlr_init_${suffix}` }
  const passwords = { owner: randomBytes(12).toString('hex'), app: `it's ${randomBytes(6).toString('hex')}` }
  // Last added, first run: the database goes before the roles that own and use it.
  t.teardown(() => withAdmin(async (admin) => {
    await admin.query(`DROP ROLE IF EXISTS ${names.owner}`)
    await admin.query(`DROP ROLE IF EXISTS ${names.app}`)
  }))
  t.teardown(() => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${names.database} WITH (FORCE)`)))
  await withAdmin(async (admin) => {
    for (const statement of await initScriptSql(names, passwords)) await admin.query(statement)
  })

  const facts = await withAdmin(async (admin) => (await admin.query(
    `SELECT r.rolname AS role, r.rolcanlogin AS login, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb AS powers,
        has_database_privilege(r.rolname, d.datname, 'CONNECT') AS connect,
        has_database_privilege(r.rolname, d.datname, 'CREATE') AS create,
        has_database_privilege(r.rolname, d.datname, 'TEMP') AS temp,
        pg_get_userbyid(d.datdba) AS database_owner,
        coalesce((SELECT bool_or(acl::text LIKE '=%') FROM unnest(d.datacl) acl), true) AS public_granted
      FROM pg_roles r, pg_database d WHERE r.rolname IN ($1, $2) AND d.datname = $3 ORDER BY r.rolname = $1 DESC`,
    [names.owner, names.app, names.database],
  )).rows)
  t.same(facts, [
    { role: names.owner, login: true, powers: false, connect: true, create: true, temp: true, database_owner: names.owner, public_granted: false },
    { role: names.app, login: true, powers: false, connect: true, create: false, temp: false, database_owner: names.owner, public_granted: false },
  ], 'the owner owns the database; the service role may connect and nothing else; PUBLIC nothing at all')

  const runtime = connectPostgres(testPoolOptions(urlAs(names.app, passwords.app, names.database)))
  t.teardown(() => runtime.close())
  await migrateDatabase(
    configWith({ DATABASE_URL: urlAs(names.app, passwords.app, names.database), DATABASE_MIGRATION_URL: urlAs(names.owner, passwords.owner, names.database) }),
    runtime,
  )
  t.same(await runtime.query('SELECT count(*)::int AS n FROM devices'), [{ n: 0 }], 'the service role reads the migrated tables')
  await t.rejects(runtime.query('DELETE FROM audit_events'), { code: '42501', message: /permission denied/ }, 'and may not delete from the audit trail')
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
