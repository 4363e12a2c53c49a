/**
 * `npm run token -- --role security [--role asset_manager] [--sub name] [--ttl 8h]`
 * Prints a token signed with the development secret in DATA_DIR (or with AUTH_JWT_SECRET).
 */
import { parseArgs } from 'node:util'
import { developmentSecret, ROLES, type Role, signToken } from '../auth/authenticator.js'
import { loadConfig } from '../config.js'

const usage = `usage: npm run token -- --role <${ROLES.join('|')}> [--role ...] [--sub name] [--ttl 8h]`

function fail(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`)
  process.exit(2)
}

const { values } = parseArgs({
  options: {
    role: { type: 'string', multiple: true, default: [] },
    sub: { type: 'string', default: 'dev-user' },
    ttl: { type: 'string', default: '8h' },
  },
  strict: true,
})

const roles = values.role ?? []
if (roles.length === 0) fail('name at least one role')
const unknown = roles.filter((role) => !(ROLES as readonly string[]).includes(role))
if (unknown.length > 0) fail(`unknown role: ${unknown.join(', ')}`)
const ttl = /^(\d+)\s*(s|m|h|d)$/.exec(values.ttl ?? '')
if (!ttl) fail('--ttl must look like 30m, 8h or 7d')

const config = loadConfig()
const ttlHours = (Number(ttl[1]) * { s: 1, m: 60, h: 3_600, d: 86_400 }[ttl[2] as 's' | 'm' | 'h' | 'd']) / 3_600
if (ttlHours > config.AUTH_MAX_TOKEN_HOURS) fail(`--ttl ${values.ttl} is longer than AUTH_MAX_TOKEN_HOURS (${config.AUTH_MAX_TOKEN_HOURS}): the service would refuse the token`)
if (config.AUTH_JWKS_URL) fail('AUTH_JWKS_URL is set: tokens come from your identity provider, not from here')
const secret = config.AUTH_JWT_SECRET
  ? new TextEncoder().encode(config.AUTH_JWT_SECRET)
  : await developmentSecret(config.DATA_DIR)

const token = await signToken(secret, { sub: values.sub ?? 'dev-user', roles: roles as Role[], ttl: values.ttl ?? '8h' }, config)
process.stdout.write(`${token}\n`)
