/**
 * Text that is not UTF-8 is refused rather than repaired, in request bodies and in query strings.
 * Fastify decodes a body with replacement, which would store U+FFFD where the client sent something
 * else, and nobody would know; its query-string parser keeps a value it cannot decode (`%FF`,
 * `%zz`) as the raw characters, so a search for it would quietly look for something else.
 *
 * The JSON parser here is Fastify's own (secure-json-parse with the instance's `__proto__` and
 * `constructor` handling, the empty-body error, the body limit, which Fastify applies while reading
 * the bytes); only the decoding before it is strict.
 */
import { isUtf8 } from 'node:buffer'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { problems } from '../plugins/problems.js'

const decode = (text: string) => {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '))
  } catch {
    return undefined
  }
}

/** The key of the first pair in a raw query string whose key or value is not percent-encoded UTF-8. */
function undecodableQueryField(query: string): string | undefined {
  for (const pair of query.split('&')) {
    if (!pair.includes('%')) continue
    const equals = pair.indexOf('=')
    const key = equals === -1 ? pair : pair.slice(0, equals)
    const name = decode(key)
    if (name === undefined || (equals !== -1 && decode(pair.slice(equals + 1)) === undefined)) return name ?? key
  }
  return undefined
}

export default fp(
  async function strictUtf8(app: FastifyInstance) {
    app.addHook('onRequest', async (request) => {
      const url = request.raw.url ?? ''
      const start = url.indexOf('?')
      if (start === -1 || !url.includes('%', start)) return
      const field = undecodableQueryField(url.slice(start + 1))
      if (field !== undefined) {
        throw problems.badRequest('The query string is not valid UTF-8.', [{ path: `querystring.${field}`, message: 'is not valid percent-encoded UTF-8' }])
      }
    })

    const parseJson = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error')
    app.removeContentTypeParser('application/json')
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      if (!isUtf8(body as Buffer)) {
        done(problems.badRequest('The body is not valid UTF-8.', [{ path: 'body', message: 'is not valid UTF-8' }]), undefined)
        return
      }
      parseJson(request, (body as Buffer).toString('utf8'), done)
    })
  },
  { name: 'strict-utf8' },
)
