/**
 * Hostile input over every registered route (collected through `onRoute`; bodies, queries and
 * headers derived from the app's own OpenAPI document, so a route added tomorrow is covered),
 * sent with a token holding all three roles. Whatever arrives, the service must:
 *
 * - never answer 5xx;
 * - answer every 4xx as application/problem+json whose `status` is the status code;
 * - never show a stack frame, SQL or a source path in any body;
 * - write nothing when it refuses (row counts of every domain table, and the sum of the versions
 *   of every versioned one, before and after).
 *
 * A fixed list of classic attacks runs for every route (huge strings, __proto__, NUL bytes, 2,000
 * levels of nesting, wrong media types, bad ids, cursors and preconditions), then fast-check sends
 * `HOSTILE_RUNS` (default 20) random requests per route. `FC_SEED` replays a run.
 */
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { ROLES } from '../../src/auth/authenticator.js'
import { IMPORT_COLUMNS } from '../../src/modules/devices/import/parse.js'
import { appWithRoutes, type CollectedRoute } from '../auth/routes.js'
import {
  BIG_STRING,
  CURSOR_KEYS,
  deepJsonText,
  encodeKey,
  GARBAGE_JSON_TEXT,
  type GenContext,
  headerText,
  hostileValue,
  IDEMPOTENCY_GARBAGE,
  IF_MATCH_GARBAGE,
  invalidCursor,
  invalidUuid,
  JSON_CONTENT_TYPES,
  type JsonSchema,
  LEAK,
  ODD_STRINGS,
  oddString,
  type OpenApiDocument,
  type Operation,
  valueFor,
  withKey,
  WRONG_CONTENT_TYPES,
} from './arbitraries.js'

const TABLES = ['custodians', 'devices', 'assignments', 'incidents', 'incident_notes', 'stocktakes', 'stocktake_scans', 'audit_events']
const RUNS = Number(process.env.HOSTILE_RUNS ?? 20)
const SEED = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31))

interface HostileRequest {
  label: string
  method: string
  url: string
  headers: Record<string, string>
  payload?: string
}

/** Percent-encodes text for a URL; text with a lone surrogate goes in as raw invalid UTF-8. */
function encode(value: string): string {
  try {
    return encodeURIComponent(value)
  } catch {
    return '%ED%A0%80'
  }
}

const queryString = (pairs: [string, string][]) => pairs.map(([key, value]) => `${encode(key)}=${encode(value)}`).join('&')

const asParam = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value) ?? '')

const truncate = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text)

function describe(request: HostileRequest): string {
  const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => name !== 'authorization'))
  return `${request.label}: ${request.method} ${truncate(request.url, 200)} ${truncate(JSON.stringify(headers), 200)} ${truncate(JSON.stringify(request.payload ?? null), 300)}`
}

t.test('hostile input over every route: no 5xx, only problem+json 4xx, no leaks, no write when refused', async (t) => {
  const { app, routes, token, database } = await appWithRoutes(t)
  const authorization = `Bearer ${await token([...ROLES], 'hostile-input')}`
  const doc = app.swagger() as unknown as OpenApiDocument
  t.ok(routes.length > 40, `routes collected (${routes.length})`)

  // Real rows, so that some ids in paths and bodies name something that exists.
  const seeded = await seed(app, authorization)
  t.comment(`seeded: ${JSON.stringify(Object.fromEntries(Object.entries(seeded).map(([k, v]) => [k, v.length])))}`)
  const allIds = Object.values(seeded).flat()

  // Row counts catch an insert; the sum of `version` catches an update that a refusal left behind.
  const versioned = (
    await database.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns
       WHERE column_name = 'version' AND table_schema = current_schema() AND table_name IN (${TABLES.map((table) => `'${table}'`).join(', ')})`,
    )
  ).map((row) => row.table_name)
  t.ok(versioned.length >= 3, `versioned tables: ${versioned.join(', ')}`)
  const countQuery = `SELECT ${[
    ...TABLES.map((table) => `(SELECT count(*) FROM ${table})::int AS ${table}`),
    ...versioned.map((table) => `(SELECT coalesce(sum(version), 0) FROM ${table})::text AS ${table}_versions`),
  ].join(', ')}`
  const counts = async () => JSON.stringify((await database.query(countQuery))[0])
  let current = await counts()
  const statuses = new Map<number, number>()
  const firstOf = new Map<number, string>()
  const databaseRefused = new Map<string, string>()
  let routeUrl = ''
  let sent = 0

  /** Sends one request; returns what was wrong with the answer, if anything. */
  async function send(request: HostileRequest): Promise<string | undefined> {
    const before = current
    const response = await app.inject({
      method: request.method as 'GET',
      url: request.url,
      headers: request.headers,
      ...(request.payload !== undefined ? { payload: request.payload } : {}),
    })
    sent++
    current = await counts()
    const status = response.statusCode
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    if (!firstOf.has(status)) firstOf.set(status, `${request.label}: ${request.method} ${truncate(request.url, 60)}`)
    const problems: string[] = []
    if (status >= 500) problems.push(`answered ${status}`)
    if (status >= 400) {
      const type = String(response.headers['content-type'])
      if (!/^application\/problem\+json/.test(type)) problems.push(`${status} as ${type}`)
    }
    if (status >= 400 && request.method !== 'HEAD') {
      try {
        const body = JSON.parse(response.body) as Record<string, unknown>
        if (body.status !== status) problems.push(`body.status ${String(body.status)} for ${status}`)
        for (const field of ['type', 'title', 'detail']) if (typeof body[field] !== 'string') problems.push(`no ${field}`)
        // Refused by the database rather than by a schema: not wrong, but a validation gap to know of.
        if (/breaks a rule of the register|cannot store|conflicts with an existing record|refers to a record that does not exist/.test(String(body.detail)))
          databaseRefused.set(`${request.method} ${routeUrl} ${status}: ${String(body.detail)}`, describe(request))
      } catch {
        problems.push(`${status} body is not JSON`)
      }
    }
    // Static assets of the docs page are third-party JavaScript; every other body is checked,
    // and a path that tries to climb out of the asset folder is no asset.
    const isAsset = status < 300 && request.url.startsWith('/docs/static/') && !/\.\.|%2e|%2f|%5c|\\/i.test(request.url)
    if (!isAsset && LEAK.test(response.body)) problems.push(`leaks internals: ${truncate(LEAK.exec(response.body)![0], 80)}`)
    if (status >= 400 && before !== current) problems.push(`refused with ${status} yet wrote: ${before} → ${current}`)
    if (problems.length === 0) return undefined
    return `${describe(request)} → ${status} ${truncate(response.body, 400)}: ${problems.join('; ')}`
  }

  const started = Date.now()
  for (const route of routes) {
    const name = `${route.method} ${route.url}`
    routeUrl = route.url
    const operation = operationOf(doc, route)
    const context: GenContext = { doc, ids: allIds, idsFor: (field) => seeded[`${field.replace(/Id$/, '')}s`], hostileWeight: 1 }
    const builder = new RequestBuilder(route, operation, context, seeded, authorization)

    const failures: string[] = []
    for (const request of builder.fixedCases()) {
      const failure = await send(request)
      if (failure) failures.push(failure)
    }
    const details = await fc.check(
      fc.asyncProperty(builder.arbitrary(), async (request) => {
        const failure = await send(request)
        if (failure) throw new Error(failure)
      }),
      { numRuns: route.method === 'HEAD' || route.url.startsWith('/docs') ? Math.ceil(RUNS / 4) : RUNS, seed: SEED, endOnFailure: true },
    )
    if (details.failed) failures.push(`random (seed ${SEED}): ${truncate(String((details.errorInstance as Error | undefined)?.message ?? fc.defaultReportMessage(details)), 2000)}`)
    t.strictSame(failures, [], `${name}: nothing wrong`)
  }
  // Guards against a run that proves nothing: every request refused at the door would pass above.
  const count = (status: number) => statuses.get(status) ?? 0
  t.equal(count(401), 0, 'the token was accepted throughout')
  t.ok(count(200) > 0, 'some requests succeeded')
  t.ok(count(404) > 0 && count(409) + count(422) > 0, 'some got past validation into the domain code')
  t.comment(`table counts at the end: ${current}`)
  t.comment(`seed ${SEED}: ${sent} requests over ${routes.length} routes in ${Date.now() - started} ms; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`)
  t.comment(`refused by the database, not by a schema (${databaseRefused.size}):\n${[...databaseRefused].map(([what, example]) => `${what}\n    e.g. ${truncate(example, 300)}`).join('\n')}`)
  t.comment(`first request of each status: ${JSON.stringify(Object.fromEntries([...firstOf].sort((a, b) => a[0] - b[0])), null, 1)}`)
})

/** The documented operation of a route (HEAD is documented as its GET); undefined when hidden. */
function operationOf(doc: OpenApiDocument, route: CollectedRoute): Operation | undefined {
  const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
  return doc.paths[path]?.[route.method === 'HEAD' ? 'get' : route.method.toLowerCase()]
}

type Seeded = Record<string, string[]>

/** Creates a few rows of each kind through the API; returns their ids by collection name. */
async function seed(app: Awaited<ReturnType<typeof appWithRoutes>>['app'], authorization: string): Promise<Seeded> {
  const post = async (url: string, body: unknown, expected = 201) => {
    const response = await app.inject({ method: 'POST', url, headers: { authorization }, payload: body as object })
    if (response.statusCode !== expected) throw new Error(`seeding ${url}: ${response.statusCode} ${response.body}`)
    return response.json() as { id: string }
  }
  const device = (n: number) => ({
    assetTag: `PA-H${1000 + n}`, kind: 'laptop', make: 'Dell', model: 'Latitude', serialNumber: `SN-HOSTILE-${n}`,
    encrypted: true, mdmEnrolled: true, classification: 'official',
  })
  const mp = await post('/v1/custodians', { kind: 'mp', name: 'Seed Member', house: 'commons', constituency: 'Seedshire' })
  const staff = await post('/v1/custodians', { kind: 'staff', name: 'Seed Staff' })
  const devices = [await post('/v1/devices', device(1)), await post('/v1/devices', device(2)), await post('/v1/devices', device(3))]
  await post(`/v1/devices/${devices[0]!.id}/assignment`, { custodianId: mp.id })
  const incident = await post('/v1/incidents', {
    deviceId: devices[1]!.id, kind: 'lost', location: { category: 'transit' }, circumstances: 'Left on a train', personalDataAtRisk: false,
  })
  await post(`/v1/incidents/${incident.id}/notes`, { text: 'The custodian called.' })
  const stocktake = await post('/v1/stocktakes', { name: 'Seed stocktake' })
  await post(`/v1/stocktakes/${stocktake.id}/scans`, { scans: [{ assetTag: 'PA-H1003', seenAt: new Date().toISOString() }] }, 200)
  return {
    custodians: [mp.id, staff.id],
    devices: devices.map((d) => d.id),
    incidents: [incident.id],
    stocktakes: [stocktake.id],
  }
}

/** Builds the fixed hostile cases and the random arbitrary of one route. */
class RequestBuilder {
  private readonly params: string[]
  private readonly query: NonNullable<Operation['parameters']>
  private readonly headerNames: Set<string>
  private readonly bodyType: 'json' | 'csv' | 'none'
  private readonly bodySchema: JsonSchema

  constructor(
    private readonly route: CollectedRoute,
    operation: Operation | undefined,
    private readonly context: GenContext,
    private readonly seeded: Seeded,
    private readonly authorization: string,
  ) {
    this.params = [...route.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1]!)
    this.query = (operation?.parameters ?? []).filter((parameter) => parameter.in === 'query')
    this.headerNames = new Set((operation?.parameters ?? []).filter((parameter) => parameter.in === 'header').map((parameter) => parameter.name))
    const content = operation?.requestBody?.content ?? {}
    this.bodyType = content['text/csv'] ? 'csv' : content['application/json'] || ['POST', 'PATCH', 'PUT'].includes(route.method) ? 'json' : 'none'
    this.bodySchema = content['application/json']?.schema ?? {}
  }

  /** Ids that exist for the `:id` after `/<collection>/`, else any that exist. */
  private existing(param: string): string[] {
    const collection = new RegExp(`/([a-z-]+)/:${param}`).exec(this.route.url)?.[1]
    return this.seeded[collection ?? ''] ?? this.context.ids
  }

  private url(params: Record<string, string>, query = ''): string {
    let path = this.route.url.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => params[name] ?? '')
    path = path.replace(/\*/g, params['*'] ?? 'index.html')
    return query ? `${path}?${query}` : path
  }

  private validParams(): Record<string, string> {
    return Object.fromEntries(this.params.map((param) => [param, this.existing(param)[0]!]))
  }

  private request(label: string, options: Partial<HostileRequest> & { params?: Record<string, string>; query?: string } = {}): HostileRequest {
    const { params, query, headers, ...rest } = options
    return {
      label,
      method: this.route.method,
      url: this.url(params ?? this.validParams(), query),
      headers: { authorization: this.authorization, ...headers },
      ...rest,
    }
  }

  /** One body of the documented shape, with no hostile node. */
  private sampleBody(): unknown {
    return fc.sample(valueFor(this.bodySchema, { ...this.context, hostileWeight: 0 }), { numRuns: 1, seed: SEED })[0]
  }

  fixedCases(): HostileRequest[] {
    const cases: HostileRequest[] = []
    const json = (label: string, payload: string, contentType = 'application/json') =>
      this.request(label, { payload, headers: { 'content-type': contentType } })

    if (this.bodyType === 'json') {
      const base = this.sampleBody()
      const baseObject = base && typeof base === 'object' && !Array.isArray(base) ? (base as Record<string, unknown>) : {}
      const keys = Object.keys((this.bodySchema.properties as object | undefined) ?? baseObject)
      const everyField = (value: unknown) => JSON.stringify(Object.fromEntries((keys.length ? keys : ['a']).map((key) => [key, value])))
      cases.push(
        json('nearly valid body', JSON.stringify(base) ?? 'null'),
        json('100 KB string in every field', everyField(BIG_STRING)),
        json('2 MB body', JSON.stringify({ a: 'x'.repeat(2 * 1024 * 1024) })),
        json('NUL bytes in every field', everyField('a\u0000b')),
        json('lone surrogate in every field', everyField('\ud800')),
        json('RTL override and zero-width', everyField('\u202e\u200bx')),
        json('numbers where strings are', everyField(1e308)),
        json('objects where strings are', everyField({ $gt: '' })),
        json('arrays where strings are', everyField(['a'])),
        json('__proto__ key', `{"__proto__":{"isAdmin":true}${keys[0] ? `,${JSON.stringify(keys[0])}:"x"` : ''}}`),
        json('constructor.prototype', '{"constructor":{"prototype":{"isAdmin":true}}}'),
        json('__proto__ inside a field', JSON.stringify(withKey({ ...baseObject }, keys[0] ?? 'a', withKey({}, '__proto__', { x: 1 })))),
        json('2,000 nested arrays', deepJsonText(2_000, 'array')),
        json('2,000 nested objects', deepJsonText(2_000, 'object')),
        json('2,000 nested arrays in a field', `{${JSON.stringify(keys[0] ?? 'a')}:${deepJsonText(2_000, 'array')}}`),
        json('100,000 nested arrays', deepJsonText(100_000, 'array')),
        json('empty body with JSON content type', ''),
        this.request('no content type, no body'),
        ...GARBAGE_JSON_TEXT.map((text) => json(`garbage JSON ${JSON.stringify(text).slice(0, 30)}`, text)),
        ...WRONG_CONTENT_TYPES.map((type) => json(`content type ${type}`, type.startsWith('multipart')
          ? '------x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n------x--\r\n'
          : type.includes('xml') ? '<?xml version="1.0"?><a>1</a>' : JSON.stringify(base) ?? 'a', type)),
        json('charset latin1', JSON.stringify(base) ?? '{}', 'application/json; charset=iso-8859-1'),
      )
    } else if (this.bodyType === 'csv') {
      const header = IMPORT_COLUMNS.join(',')
      const row = (cells: string[]) => cells.map((cell) => `"${cell.replace(/"/g, '""')}"`).join(',')
      const csv = (label: string, payload: string, contentType = 'text/csv') =>
        this.request(label, { payload, headers: { 'content-type': contentType } })
      cases.push(
        csv('header only', `${header}\n`),
        csv('empty', ''),
        csv('garbage header', 'a,b,c\n1,2,3\n'),
        csv('unbalanced quote', `${header}\n"PA-X1234,laptop\n`),
        csv('NUL bytes', `${header}\n${row(IMPORT_COLUMNS.map(() => 'a\u0000b'))}\n`),
        csv('100 KB cells', `${header}\n${row(IMPORT_COLUMNS.map(() => BIG_STRING))}\n`),
        csv('odd strings', `${header}\n${ODD_STRINGS.map((odd) => row(IMPORT_COLUMNS.map(() => odd))).join('\n')}\n`),
        csv('numbers out of range', `${header}\nPA-X12345,laptop,Dell,X,SN-X1,,true,true,official,0000-01-01,99999999999999999999999\n`),
        csv('too many cells', `${header}\n${'a,'.repeat(1000)}\n`),
        csv('JSON sent as CSV', '{"a":1}'),
        csv('JSON content type', '{"a":1}', 'application/json'),
        csv('text/plain', `${header}\n`, 'text/plain'),
      )
    }

    for (const param of this.params) {
      const others = this.validParams()
      for (const bad of ['not-a-uuid', 'a'.repeat(300), '%ZZ', '%00', '..%2F..%2Fetc%2Fpasswd', '00000000-0000-0000-0000-000000000000',
        '00000000-0000-4000-8000-000000000000', this.existing(param)[0]!.toUpperCase(), randomUUID()]) {
        cases.push(this.withBody(`${param} = ${bad.slice(0, 40)}`, {}, { ...others, [param]: bad }))
      }
    }
    if (this.route.url.includes('*')) {
      for (const path of ['..%2f..%2fpackage.json', '%2e%2e/%2e%2e/package.json', '..%2f..%2f..%2f..%2f..%2fpackage.json', '%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsrc%2fapp.ts', '..\\..\\package.json', '%00', 'a'.repeat(300), '%ZZ']) {
        cases.push(this.request(`wildcard ${path.slice(0, 30)}`, { params: { '*': path } }))
      }
    }

    const names = new Set(this.query.map((parameter) => parameter.name))
    const q = (label: string, query: string) => cases.push(this.request(label, { query }))
    if (names.has('limit')) for (const limit of ['0', '-1', '201', '1e3', '1.5', 'abc', '', '99999999999999999999', '0x10']) q(`limit=${limit}`, `limit=${limit}`)
    if (names.has('limit')) q('limit twice', 'limit=1&limit=2')
    if (names.has('cursor')) {
      for (const key of CURSOR_KEYS) q(`cursor ${JSON.stringify(key).slice(0, 40)}`, `cursor=${encodeKey(key)}`)
      for (const cursor of ['garbage', '%%%', '=', 'x'.repeat(501)]) q(`cursor ${cursor.slice(0, 20)}`, `cursor=${encode(cursor)}`)
    }
    for (const parameter of this.query) {
      for (const odd of ['a\u0000b', BIG_STRING, '\ud800', '', '9999-12-31', '0000-01-01', '2023-02-30']) q(`${parameter.name}=${JSON.stringify(odd).slice(0, 20)}`, queryString([[parameter.name, odd]]))
    }
    q('unknown query', 'unknown=1')
    q('__proto__ query', '__proto__=1&constructor=2&constructor[prototype][x]=1')
    q('raw garbage query', '%E0%A4%A&&&=&%')

    // Every garbage value where the header is documented; two elsewhere (it must be ignored there).
    const garbage = (name: string, values: string[]) => (this.headerNames.has(name) ? values : values.slice(0, 2))
    for (const value of garbage('if-match', IF_MATCH_GARBAGE)) cases.push(this.withBody(`If-Match ${value.slice(0, 20)}`, { 'if-match': value }))
    for (const value of garbage('idempotency-key', IDEMPOTENCY_GARBAGE)) cases.push(this.withBody(`Idempotency-Key ${value.slice(0, 20)}`, { 'idempotency-key': value }))
    for (const accept of ['application/xml', '*/*;q=0', 'garbage']) cases.push(this.withBody(`Accept ${accept}`, { accept }))
    cases.push(this.request('x-request-id garbage', { headers: { 'x-request-id': '\u00ff'.repeat(500) } }))
    // HEAD and the docs page repeat GET's code: the cheaper half of the list is enough there.
    return this.route.method === 'HEAD' || this.route.url.startsWith('/docs') ? cases.filter((_, i) => i % 2 === 0) : cases
  }

  /** A request with these headers and, where the route takes one, a body of the documented shape. */
  private withBody(label: string, headers: Record<string, string>, params?: Record<string, string>): HostileRequest {
    const body = this.minimalBody()
    return this.request(label, { ...body, ...(params ? { params } : {}), headers: { ...body.headers, ...headers } })
  }

  /** A small body for routes that need one, so that header and path cases get to the handler. */
  private minimalBody(): Partial<HostileRequest> {
    if (this.bodyType === 'json') return { payload: JSON.stringify(this.sampleBody()) ?? '{}', headers: { 'content-type': 'application/json' } }
    if (this.bodyType === 'csv') return { payload: `${IMPORT_COLUMNS.join(',')}\n`, headers: { 'content-type': 'text/csv' } }
    return {}
  }

  arbitrary(): fc.Arbitrary<HostileRequest> {
    const paramArbs = Object.fromEntries(
      [...this.params, ...(this.route.url.includes('*') ? ['*'] : [])].map((param) => {
        if (param === '*') {
          return [param, fc.oneof(fc.constantFrom('index.html', 'swagger-initializer.js', '..%2f..%2fpackage.json', '%2e%2e/%2e%2e/src/app.ts', '%00'), oddString.map(encode))]
        }
        const existing = this.existing(param)
        return [param, fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom(...existing) },
          { weight: 2, arbitrary: fc.uuid() },
          { weight: 1, arbitrary: fc.constantFrom(...existing).map((id) => id.toUpperCase()) },
          { weight: 2, arbitrary: invalidUuid.map(encode) },
        )]
      }),
    ) as Record<string, fc.Arbitrary<string>>
    const documented = this.query.map((parameter) =>
      fc.option(
        parameter.name === 'cursor'
          ? invalidCursor.map((cursor): [string, string] => ['cursor', cursor])
          : valueFor(parameter.schema ?? {}, this.context, 0, parameter.name).map((value): [string, string] => [parameter.name, asParam(value)]),
        { freq: 2 },
      ),
    )
    // Mostly none, so that many queries pass validation and reach the database with odd values.
    const extra = fc.oneof(
      { weight: 3, arbitrary: fc.constant<[string, string][]>([]) },
      {
        weight: 1,
        arbitrary: fc.array(
          fc.tuple(fc.constantFrom('__proto__', 'constructor', 'unknown', 'limit', 'cursor', 'a[b]', '', ...this.query.map((p) => p.name)), oddString),
          { minLength: 1, maxLength: 2 },
        ),
      },
    )
    const query = fc
      .tuple(fc.tuple(...documented), extra, fc.option(fc.constantFrom('%', '&&', '=', '%E0%A4%A', 'a=%00'), { freq: 8 }))
      .map(([pairs, more, raw]) => [queryString([...pairs.filter((pair): pair is [string, string] => pair !== null), ...more]), raw].filter(Boolean).join('&'))

    const headers = fc.record(
      {
        'if-match': fc.oneof(fc.constantFrom(...IF_MATCH_GARBAGE), headerText(40)),
        'idempotency-key': fc.oneof(fc.constantFrom(...IDEMPOTENCY_GARBAGE), headerText(60), fc.uuid()),
        accept: fc.oneof(fc.constantFrom('text/csv', 'application/json', '*/*', 'text/html', 'application/xml;q=0', '*/*;q=0', 'garbage', ''), headerText(40)),
        'x-request-id': headerText(140),
      },
      { requiredKeys: [] },
    )

    return fc
      .record({ params: fc.record(paramArbs), query, headers, body: this.bodyArbitrary() })
      .map(({ params, query, headers, body }) =>
        this.request('random', {
          params,
          query,
          headers: { ...headers, ...(body.contentType !== undefined ? { 'content-type': body.contentType } : {}) },
          ...(body.payload !== undefined ? { payload: body.payload } : {}),
        }),
      )
  }

  private bodyArbitrary(): fc.Arbitrary<{ contentType?: string; payload?: string }> {
    if (this.bodyType === 'none') return fc.constant({})
    if (this.bodyType === 'csv') {
      const cell = fc.oneof(oddString, fc.stringMatching(/^[A-Z]{2}-[A-Z0-9]{4,8}$/), fc.constantFrom('laptop', 'true', 'false', 'official', '2024-01-01', '100', ''))
      const row = fc.array(cell, { minLength: IMPORT_COLUMNS.length - 1, maxLength: IMPORT_COLUMNS.length + 1 })
        .map((cells) => cells.map((c) => (/[",\n\r]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(','))
      const text = fc.tuple(fc.constantFrom(IMPORT_COLUMNS.join(','), 'a,b', ''), fc.array(row, { maxLength: 4 }))
        .map(([header, rows]) => [header, ...rows].join('\n'))
      return fc.oneof(
        { weight: 5, arbitrary: text.map((payload) => ({ contentType: 'text/csv', payload })) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...WRONG_CONTENT_TYPES, 'application/json'), text).map(([contentType, payload]) => ({ contentType, payload })) },
      )
    }
    const shaped = valueFor(this.bodySchema, this.context)
    const text = (value: unknown) => JSON.stringify(value) ?? 'null'
    return fc.oneof(
      { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...JSON_CONTENT_TYPES), shaped).map(([contentType, value]) => ({ contentType, payload: text(value) })) },
      { weight: 4, arbitrary: valueFor(this.bodySchema, { ...this.context, hostileWeight: 0 }).map((value) => ({ contentType: 'application/json', payload: text(value) })) },
      { weight: 1, arbitrary: hostileValue.map((value) => ({ contentType: 'application/json', payload: text(value) })) },
      { weight: 1, arbitrary: fc.constantFrom(...GARBAGE_JSON_TEXT).map((payload) => ({ contentType: 'application/json', payload })) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...WRONG_CONTENT_TYPES), shaped).map(([contentType, value]) => ({ contentType, payload: text(value) })) },
      { weight: 1, arbitrary: fc.constantFrom({}, { payload: '{}' }) },
    )
  }
}
