/**
 * The response serializer (src/http/serializer.ts): a schema with no codec or transform is checked
 * by parsing, with the same outcome as the zod provider's encoding: unknown keys dropped, a
 * mismatch refused.
 */
import { createSerializerCompiler } from '@fastify/type-provider-zod'
import t from 'tap'
import { z } from 'zod'
import { parsesAsItEncodes, responseSerializerCompiler } from '../../src/http/serializer.js'
import { DeviceSchema } from '../../src/modules/devices/schemas.js'
import { IncidentSchema } from '../../src/modules/incidents/schemas.js'

type Route = Parameters<typeof responseSerializerCompiler>[0]
const compile = (compiler: (route: Route) => (data: unknown) => string, schema: unknown) =>
  compiler({ schema, method: 'GET', url: '/probe', httpStatus: '200' } as Route)

t.test('the register\'s resources take the shortcut; a schema with a transform does not', async (t) => {
  t.ok(parsesAsItEncodes(DeviceSchema))
  t.ok(parsesAsItEncodes(IncidentSchema))
  t.notOk(parsesAsItEncodes(z.object({ at: z.string().transform((value) => value.length) })))
  t.notOk(parsesAsItEncodes(z.object({ list: z.array(z.object({ n: z.number().default(1) })) })), 'a default deep inside')
})

t.test('parsing gives what the provider\'s encoding gives: unknown keys dropped, mismatches refused', async (t) => {
  const schema = z.object({ id: z.string(), count: z.int().min(0), kind: z.enum(['a', 'b']), note: z.string().nullable() })
  const ours = compile(responseSerializerCompiler, schema)
  const provider = compile(createSerializerCompiler() as (route: Route) => (data: unknown) => string, schema)
  const good = { id: 'x', count: 2, kind: 'a', note: null, secret: 'dropped' }
  t.equal(ours(good), provider(good))
  t.equal(ours(good), '{"id":"x","count":2,"kind":"a","note":null}')
  for (const bad of [{ ...good, count: 1.5 }, { ...good, kind: 'c' }, { id: 'x' }, null]) {
    t.throws(() => ours(bad), { code: 'FST_ERR_RESPONSE_SERIALIZATION' }, `refused: ${JSON.stringify(bad)}`)
    t.throws(() => provider(bad), { code: 'FST_ERR_RESPONSE_SERIALIZATION' })
  }
})
