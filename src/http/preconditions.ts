/**
 * Optimistic concurrency for single resources: every response that carries a resource carries its
 * `ETag` (the row's `version`), and `PATCH` must say which version it changes with `If-Match`.
 * Missing: 428. Stale: 412 (decided inside the UPDATE, `WHERE id = $1 AND version = $2`, so two
 * writers with the same ETag can never both win). Weak (`W/"3"`): 412, as If-Match compares strongly.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { problems } from '../plugins/problems.js'

export const etagOf = (version: number): string => `"${version}"`

export function setEtag(reply: FastifyReply, version: number): void {
  reply.header('etag', etagOf(version))
}

/** Headers of a 201: where the new resource lives, and its ETag so it can be changed at once. */
export function setCreated(reply: FastifyReply, location: string, resource: { version: number }): void {
  setEtag(reply, resource.version)
  reply.header('location', location).code(201)
}

/** Documents `If-Match` on PATCH routes; presence is checked by `expectedVersion`, for a 428. */
export const IfMatchHeaders = z.object({
  'if-match': z.string().max(100).optional().meta({ description: 'The ETag of the version being changed, e.g. "3".' }),
})

/** The version the client says it is changing, from `If-Match`. */
export function expectedVersion(request: FastifyRequest): number {
  const header = request.headers['if-match']
  if (header === undefined || header === '') {
    throw problems.preconditionRequired('PATCH needs an If-Match header with the ETag you last read, e.g. If-Match: "3".')
  }
  const given = String(header)
  const quoted = JSON.stringify(given.slice(0, 40))
  // Strong comparison (RFC 9110 13.1.1): a weak validator never matches, so no write is made on
  // the strength of "roughly this version".
  if (/^\s*W\//.test(given)) throw problems.preconditionFailed(`If-Match ${quoted} is a weak validator; PATCH needs the ETag as sent, e.g. If-Match: "3".`)
  const match = /^\s*"(\d{1,9})"\s*$/.exec(given)
  if (!match) throw problems.preconditionFailed(`If-Match ${quoted} is not an ETag of this resource; read it again.`)
  return Number(match[1])
}

export function staleVersion(entity: string): never {
  throw problems.preconditionFailed(`The ${entity} has changed since you read it (ETag mismatch); read it again and retry.`)
}
