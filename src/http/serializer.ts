/**
 * The response serializer: the zod type provider's (the response is checked against the route's
 * schema, unknown keys are dropped, a mismatch is a ResponseSerializationError), with one shortcut.
 *
 * The provider encodes (`z.safeEncode`), which runs codecs backwards. Encoding skips zod's compiled
 * object parser and parses each field twice when it has checks, which makes it several times the
 * cost of a parse. For a schema without codecs, transforms, defaults or catches, encoding and
 * parsing accept the same values and give the same result, so such schemas are parsed; any other
 * schema is encoded as before.
 */
import { createSerializerCompiler, ResponseSerializationError } from '@fastify/type-provider-zod'
import type { FastifySerializerCompiler } from 'fastify'
import { z } from 'zod'

type Schema = z.core.$ZodType

const encoding = createSerializerCompiler()

/** Kinds of schema that mean the same forwards and backwards, given that what they hold does too. */
const LEAVES = new Set(['string', 'number', 'int', 'boolean', 'null', 'undefined', 'enum', 'literal', 'unknown', 'any', 'bigint'])

/** True when parsing a value with `schema` is the same as encoding it (no codec or transform anywhere). */
export function parsesAsItEncodes(schema: Schema, seen = new Set<Schema>()): boolean {
  if (seen.has(schema)) return true
  seen.add(schema)
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string }
  const all = (schemas: unknown[]) => schemas.every((inner) => parsesAsItEncodes(inner as Schema, seen))
  switch (def.type) {
    case 'nullable':
    case 'optional':
    case 'readonly':
      return all([def.innerType])
    case 'array':
      return all([def.element])
    case 'object':
      return all(Object.values(def.shape as Record<string, unknown>)) && (def.catchall === undefined || all([def.catchall]))
    case 'union':
      return all(def.options as unknown[])
    case 'record':
      return all([def.keyType, def.valueType])
    default:
      return LEAVES.has(def.type)
  }
}

/** The schema a route gives for a status: a zod schema, or `{ properties: <zod schema> }`. */
function zodSchemaOf(schema: unknown): Schema | undefined {
  if (schema instanceof z.core.$ZodType) return schema
  const properties = (schema as { properties?: unknown } | null)?.properties
  return properties instanceof z.core.$ZodType ? properties : undefined
}

export const responseSerializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  const schema = zodSchemaOf(route.schema)
  if (!schema || !parsesAsItEncodes(schema)) return encoding(route as Parameters<typeof encoding>[0])
  const { method, url } = route
  return (data) => {
    const result = z.safeParse(schema, data)
    if (!result.success) throw new ResponseSerializationError(method, url, { cause: result.error })
    return JSON.stringify(result.data)
  }
}
