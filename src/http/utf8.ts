/**
 * Request bodies are UTF-8, and text that is not is refused rather than repaired: Fastify decodes
 * with replacement, which would store U+FFFD where the client sent something else, and nobody would
 * know. The JSON parser here is Fastify's own (secure-json-parse with the instance's `__proto__`
 * and `constructor` handling, the empty-body error, the body limit, which Fastify applies while
 * reading the bytes); only the decoding before it is strict.
 */
import { isUtf8 } from 'node:buffer'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { problems } from '../plugins/problems.js'

/** The bytes as text, or undefined when they are not valid UTF-8. A byte order mark is kept, as Fastify keeps it. */
export function decodeUtf8(bytes: Buffer): string | undefined {
  return isUtf8(bytes) ? bytes.toString('utf8') : undefined
}

export default fp(
  async function strictJsonBody(app: FastifyInstance) {
    const parseJson = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error')
    app.removeContentTypeParser('application/json')
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      const text = decodeUtf8(body as Buffer)
      if (text === undefined) {
        done(problems.badRequest('The body is not valid UTF-8.', [{ path: 'body', message: 'is not valid UTF-8' }]), undefined)
        return
      }
      parseJson(request, text, done)
    })
  },
  { name: 'strict-json-body' },
)
