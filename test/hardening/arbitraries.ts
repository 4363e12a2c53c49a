/**
 * fast-check arbitraries for hostile requests, derived from the app's own OpenAPI document: a
 * body, query or header is generated from its JSON schema ("nearly valid", so that many requests
 * get past validation and into the domain code), with hostile values swapped in at random nodes.
 */
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'

export type JsonSchema = Record<string, unknown>
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, JsonSchema> }
}
export interface Operation {
  parameters?: { in: string; name: string; required?: boolean; schema?: JsonSchema }[]
  requestBody?: { content: Record<string, { schema: JsonSchema }> }
}

const CHECKOUT = process.cwd().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * Text a response must never carry: stack frames, SQL, paths on this machine, our own files
 * (package.json, source) served through a path traversal. A path a client sent may be echoed.
 */
export const LEAK = new RegExp(
  `at .*\\.ts:\\d+|SELECT |INSERT |UPDATE \\w+ SET|DELETE FROM|node_modules/|${CHECKOUT}|"name": ?"(?:device-loss-register|@fastify/[a-z-]+)"|export async function`,
)

const noLeak = (value: string) => !LEAK.test(value)

/** Strings that have broken parsers, databases and normalisers before. */
export const ODD_STRINGS = [
  '', ' ', '\t', '\u0000', 'a\u0000b', '\ud800', 'x\udfff\ud800', '\u202eevil', '\u200b', '\ufeffBOM', 'İstanbul', 'ß', 'ﬃ',
  '１２３', '٣٤', 'e\u0301', '👩‍👩‍👧‍👦', '\r\n', '%00', '%ZZ', '../../etc/passwd', "' OR '1'='1' --", '"; DROP TABLE devices; --",',
  'null', 'undefined', 'NaN', 'Infinity', '-0', '1e309', '0x10', 'true', '[]', '{}', '{"$gt":""}', '<script>alert(1)</script>',
  '\\', '"', "'", '`', '${7*7}', '{{7*7}}', 'PA-T1234\u0000', 'a'.repeat(257),
]

export const BIG_STRING = 'x'.repeat(100_000)

/** Nested arrays (or objects) `depth` levels deep, built without recursion. */
export function deepValue(depth: number, kind: 'array' | 'object'): unknown {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = kind === 'array' ? [value] : { a: value }
  return value
}

export const deepJsonText = (depth: number, kind: 'array' | 'object') =>
  kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)

const DEEP_ARRAY = deepValue(2_000, 'array')
const DEEP_OBJECT = deepValue(2_000, 'object')

/** An own, enumerable property even for `__proto__`, so JSON.stringify writes it. */
export function withKey<T extends object>(target: T, key: string, value: unknown): T {
  Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true })
  return target
}

export const oddString = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...ODD_STRINGS) },
  { weight: 1, arbitrary: fc.constant(BIG_STRING) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).filter(noLeak) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }).filter(noLeak) },
)

const oddNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1.5, 1e308, -1e308, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 2 ** 63, Number.MIN_VALUE, 4_294_967_296),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
)

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'id', 'version', 'status', 'createdBy', '', ' ', '\u0000', 'a'.repeat(1000), '$where']

/** Any value of the wrong kind: wrong type, odd text, odd number, deep nesting, poisoned keys. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: oddString },
  { weight: 2, arbitrary: oddNumber },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(true, false, null, [], {}, [null], [[]], { '': '' }) },
  { weight: 1, arbitrary: fc.constantFrom(DEEP_ARRAY, DEEP_OBJECT) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...HOSTILE_KEYS), fc.jsonValue({ maxDepth: 2 }))
      .map(([key, value]) => withKey({}, key, value)),
  },
)

export const invalidUuid = fc.oneof(
  fc.constantFrom(
    'not-a-uuid', '', '0', '123', '00000000-0000-0000-0000-00000000000', 'g0000000-0000-4000-8000-000000000000',
    '00000000-0000-0000-0000-0000000000000', '{00000000-0000-4000-8000-000000000000}', '00000000000040008000000000000000',
    'a'.repeat(300), "1' OR '1'='1", '../x', '%2e%2e', 'null', '0x0',
  ),
  fc.string({ maxLength: 40 }).filter(noLeak),
)

export interface GenContext {
  doc: OpenApiDocument
  /** Ids of real rows, so that uuid fields sometimes name something that exists. */
  ids: string[]
  /** Ids for a field by its name (`deviceId` → the devices), so that more bodies get through. */
  idsFor?: (field: string) => string[] | undefined
  /** How often a node is swapped for a hostile value (0: never). */
  hostileWeight: number
}

function resolve(doc: OpenApiDocument, schema: JsonSchema): JsonSchema {
  let current = schema
  for (let i = 0; i < 10 && typeof current.$ref === 'string'; i++) {
    const name = current.$ref.split('/').pop()!
    current = doc.components?.schemas?.[name] ?? {}
  }
  return current
}

const recentPast = fc.date({ min: new Date('2015-01-01T00:00:00Z'), max: new Date(Date.now() - 60_000), noInvalidDate: true })
const isoDate = fc.date({ min: new Date('1900-01-01T00:00:00Z'), max: new Date('2100-12-31T00:00:00Z'), noInvalidDate: true })

function stringArbitrary(schema: JsonSchema, context: GenContext, field: string): fc.Arbitrary<string> {
  const minLength = typeof schema.minLength === 'number' ? schema.minLength : 0
  const maxLength = Math.min(typeof schema.maxLength === 'number' ? schema.maxLength : 60, 60)
  const pattern = typeof schema.pattern === 'string' ? new RegExp(schema.pattern) : undefined
  switch (schema.format) {
    case 'uuid': {
      const named = context.idsFor?.(field)
      return fc.oneof(
        ...(named?.length ? [{ weight: 4, arbitrary: fc.constantFrom(...named) }] : []),
        { weight: 2, arbitrary: context.ids.length ? fc.constantFrom(...context.ids) : fc.uuid() },
        { weight: 2, arbitrary: fc.uuid() },
        { weight: 1, arbitrary: invalidUuid },
      )
    }
    case 'date':
      return fc.oneof(isoDate.map((d) => d.toISOString().slice(0, 10)), ...(pattern ? [fc.stringMatching(pattern)] : []))
    case 'date-time':
      return fc.oneof(
        { weight: 2, arbitrary: isoDate.map((d) => d.toISOString()) },
        { weight: 3, arbitrary: recentPast.map((d) => d.toISOString()) },
        { weight: 1, arbitrary: fc.constant(new Date().toISOString()) },
        ...(pattern ? [{ weight: 2, arbitrary: fc.stringMatching(pattern) }] : []),
      )
    default:
      if (pattern) return fc.stringMatching(pattern).filter((s) => s.length >= minLength && s.length <= Math.max(maxLength, minLength))
      return fc.string({ minLength, maxLength: Math.max(minLength, maxLength) }).filter(noLeak)
  }
}

function integerArbitrary(schema: JsonSchema): fc.Arbitrary<number> {
  const min = typeof schema.minimum === 'number' ? schema.minimum : -(2 ** 31)
  const max = typeof schema.maximum === 'number' ? schema.maximum : 2 ** 31 - 1
  return fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: Math.max(min, -(2 ** 31)), max: Math.min(max, 2 ** 31 - 1) }) },
    { weight: 1, arbitrary: fc.constantFrom(min, max) },
  )
}

/** A value for `schema`: valid in shape, with a hostile value at a node now and then. */
export function valueFor(schema: JsonSchema, context: GenContext, depth = 0, field = ''): fc.Arbitrary<unknown> {
  const shaped = shapedValue(resolve(context.doc, schema), context, depth, field)
  if (context.hostileWeight <= 0) return shaped
  return fc.oneof({ weight: 12, arbitrary: shaped }, { weight: context.hostileWeight, arbitrary: hostileValue })
}

function shapedValue(schema: JsonSchema, context: GenContext, depth: number, field: string): fc.Arbitrary<unknown> {
  if (depth > 6) return fc.constant(null)
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]))
  if ('const' in schema) return fc.constant(schema.const)
  const alternatives = (schema.anyOf ?? schema.oneOf) as JsonSchema[] | undefined
  if (alternatives?.length) return fc.oneof(...alternatives.map((alternative) => valueFor(alternative, context, depth + 1, field)))
  const type = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string | undefined]
  return fc.oneof(
    ...type.map((one): fc.Arbitrary<unknown> => {
      switch (one) {
        case 'string':
          return stringArbitrary(schema, context, field)
        case 'integer':
          return integerArbitrary(schema)
        case 'number':
          return fc.double({ noNaN: true, noDefaultInfinity: true })
        case 'boolean':
          return fc.boolean()
        case 'null':
          return fc.constant(null)
        case 'array': {
          const items = (schema.items ?? {}) as JsonSchema
          const minLength = typeof schema.minItems === 'number' ? Math.min(schema.minItems, 3) : 0
          return fc.array(valueFor(items, context, depth + 1), { minLength, maxLength: Math.max(minLength, 3) })
        }
        case 'object':
          return objectArbitrary(schema, context, depth)
        default:
          return fc.jsonValue({ maxDepth: 2 })
      }
    }),
  )
}

function objectArbitrary(schema: JsonSchema, context: GenContext, depth: number): fc.Arbitrary<unknown> {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>
  const required = (schema.required ?? []) as string[]
  const model = Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, valueFor(value, context, depth + 1, key)]))
  const record = fc.record(model, { requiredKeys: required.filter((key) => key in model) }) as fc.Arbitrary<Record<string, unknown>>
  if (context.hostileWeight <= 0) return record
  // Now and then an extra key the schema does not have, __proto__ and constructor among them.
  return fc
    .tuple(record, fc.option(fc.tuple(fc.constantFrom(...HOSTILE_KEYS, 'unknownField'), hostileValue), { freq: 6 }))
    .map(([value, extra]) => (extra ? withKey({ ...value }, extra[0], extra[1]) : value))
}

/** Cursors that this service never issued: garbage, and well-formed JSON keys of the wrong shape. */
export const CURSOR_KEYS: unknown[][] = [
  [], ['garbage'], [1e308], [null], [-1], [1.5], [true], [{ a: 1 }], [[1]],
  ['garbage', 'garbage'], [null, null], [1e308, 1e308], ['2024-01-01T00:00:00.000Z', 'not-a-uuid'], ['not-a-date', randomUUID()],
  [123, randomUUID()], ['\u0000', randomUUID()], ['9999-99-99', randomUUID()], [randomUUID(), 'x'], ['x'.repeat(300)],
  ['garbage', 'garbage', 'garbage'], [null, null, null], [1, 2, 3], ['2024-01-01', 5, randomUUID()], [1, 2, 3, 4],
]

export const encodeKey = (key: unknown) => Buffer.from(JSON.stringify(key)).toString('base64url')

export const invalidCursor = fc.oneof(
  fc.constantFrom(...CURSOR_KEYS.map(encodeKey), 'garbage', '%%%', '', '=', 'e30', 'W10', 'bnVsbA', 'x'.repeat(501)),
  fc.array(fc.oneof(fc.string({ maxLength: 30 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.constant(null)), { maxLength: 4 }).map(encodeKey),
  fc.string({ maxLength: 60 }).filter(noLeak),
)

/** Printable latin-1 text, the most a header value can carry. */
export const headerText = (maxLength: number) =>
  fc.string({
    unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c < 0x7f || c > 0x9f).map((c) => String.fromCharCode(c)),
    maxLength,
  }).filter(noLeak)

export const IF_MATCH_GARBAGE = ['*', 'W/"1"', '"1"', '"2"', '"0"', '"abc"', '"99999999999"', '"-1"', '"1", "2"', '1', '""', 'x'.repeat(101), ' ', 'W/', '"\u00ff"']
export const IDEMPOTENCY_GARBAGE = ['', ' ', 'x'.repeat(256), 'x'.repeat(10_000), '\u00ff\u00fe', 'key with spaces', '../../', '%00']

/** Media types a JSON route must refuse (415) or fail to parse (400), never crash on. */
export const WRONG_CONTENT_TYPES = [
  'text/plain', 'application/xml', 'text/xml', 'multipart/form-data; boundary=----x', 'application/x-www-form-urlencoded',
  'text/csv', 'application/octet-stream', 'application/json-patch+json', 'image/png', 'application/x-yaml',
]

export const JSON_CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8']

export const GARBAGE_JSON_TEXT = ['', '{', '{"a":', 'nul', '\u0000', '\ufeff{}', '{"a":1}{"b":2}', '"string"', '123', 'null', '[]', 'true', "{'a':1}", '{"a":1,}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '{"a":"\\ud800"}', '{"a":"\\u0000"}']
