/**
 * Text is taken as it reads: a JSON body or a query string that is not UTF-8 is refused rather
 * than stored with U+FFFD or searched for as raw characters, and no text field holds control characters or the bidirectional controls that make
 * a name show one thing and hold another (multi-line free text keeps its tabs and line breaks).
 */
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'

const HIDDEN = {
  'right-to-left override': 'Dell\u202e',
  'left-to-right embedding': '\u202aDell',
  'first-strong isolate': 'De\u2068ll',
  'pop directional isolate': 'Dell\u2069',
  'right-to-left mark': 'Dell\u200f',
  'Arabic letter mark': 'Dell\u061c',
  NUL: 'De\u0000ll',
  bell: 'Dell\u0007',
  escape: '\u001b[31mDell',
  DEL: 'Dell\u007f',
  'C1 next line': 'De\u0085ll',
  'line break': 'Dell\nInc',
  tab: 'Dell\tInc',
} as const

async function tableCounts(database: Awaited<ReturnType<typeof buildTestApp>>['database']) {
  const [row] = await database.query(
    `SELECT (SELECT count(*) FROM custodians)::int AS custodians, (SELECT count(*) FROM devices)::int AS devices,
            (SELECT count(*) FROM incidents)::int AS incidents, (SELECT count(*) FROM stocktakes)::int AS stocktakes,
            (SELECT coalesce(sum(version), 0) FROM devices)::int AS device_versions, (SELECT count(*) FROM audit_events)::int AS events`,
  )
  return row
}

t.test('control and bidirectional characters in short text are 400 naming the field, on create and on PATCH', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth(['security', 'asset_manager'])
  const custodian = await insertCustodian(database)
  const device = await insertDevice(database)
  const before = await tableCounts(database)
  const laptop = { assetTag: 'PA-TXT01', kind: 'laptop', make: 'Dell', model: 'X', serialNumber: 'SN-TXT-1', encrypted: true, mdmEnrolled: true, classification: 'official' }
  const requests: [string, (value: string) => { method: 'POST' | 'PATCH'; url: string; payload: object; ifMatch?: boolean }][] = [
    ['body.make', (value) => ({ method: 'POST', url: '/v1/devices', payload: { ...laptop, make: value } })],
    ['body.model', (value) => ({ method: 'PATCH', url: `/v1/devices/${device.id}`, payload: { model: value }, ifMatch: true })],
    ['body.name', (value) => ({ method: 'POST', url: '/v1/custodians', payload: { kind: 'staff', name: value } })],
    ['body.constituency', (value) => ({ method: 'PATCH', url: `/v1/custodians/${custodian.id}`, payload: { constituency: value }, ifMatch: true })],
    ['body.location.description', (value) => ({
      method: 'POST', url: '/v1/incidents',
      payload: { deviceId: device.id, kind: 'lost', location: { category: 'transit', description: value }, circumstances: 'Left on a train', personalDataAtRisk: false },
    })],
    ['body.policeReference', (value) => ({
      method: 'POST', url: '/v1/incidents',
      payload: { deviceId: device.id, kind: 'stolen', location: { category: 'transit' }, circumstances: 'Taken', policeReference: value, personalDataAtRisk: false },
    })],
    ['body.name', (value) => ({ method: 'POST', url: '/v1/stocktakes', payload: { name: value } })],
  ]
  for (const [field, request] of requests) {
    for (const [what, value] of Object.entries(HIDDEN)) {
      const { method, url, payload, ifMatch } = request(value)
      const response = await app.inject({ method, url, headers: { ...headers, ...(ifMatch ? { 'if-match': '"1"' } : {}) }, payload })
      const problem = assertProblem(t, response, 400)
      t.same(problem.errors.map((e: { path: string }) => e.path), [field], `${method} ${url.replace(/[0-9a-f-]{36}/, ':id')} ${field}: ${what}`)
      t.match(problem.errors[0].message, /control characters/)
    }
  }
  // A search term is text too.
  for (const url of ['/v1/devices?q=PA%E2%80%AE', '/v1/custodians?q=a%00b']) {
    t.match(assertProblem(t, await app.inject({ method: 'GET', url, headers }), 400).errors, [{ path: 'querystring.q' }], url)
  }
  t.same(await tableCounts(database), before, 'nothing written, nothing changed')
  // Text of other scripts and symbols is text: accepted as sent.
  const fine = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name: 'Siân Ó Súilleabháin — ديفيد 😀' } })
  t.equal(fine.statusCode, 201)
  t.equal(fine.json().name, 'Siân Ó Súilleabháin — ديفيد 😀')
})

t.test('multi-line free text keeps its line breaks and tabs, and nothing else of the kind', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('security')
  const device = await insertDevice(database)
  const report = (circumstances: string) =>
    app.inject({
      method: 'POST', url: '/v1/incidents', headers,
      payload: { deviceId: device.id, kind: 'lost', location: { category: 'transit' }, circumstances, personalDataAtRisk: false },
    })
  for (const value of ['Left on\u0000 a train', 'Left on a train\u202e', 'Left\u0007', 'Left\u0085on']) {
    const problem = assertProblem(t, await report(value), 400)
    t.same(problem.errors.map((e: { path: string }) => e.path), ['body.circumstances'], JSON.stringify(value))
  }
  t.same(await database.query('SELECT id FROM incidents'), [])
  const written = 'Left on the 18:05 to Leeds.\r\nCalled the line:\n\tno answer.'
  const reported = await report(written)
  t.equal(reported.statusCode, 201, reported.body)
  t.equal(reported.json().circumstances, written)
})

t.test('a JSON body that is not UTF-8 is 400 naming the body, and nothing is stored', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'content-type': 'application/json' }
  const custodian = await insertCustodian(database)
  const before = await tableCounts(database)
  const json = (prefix: string, bytes: number[], suffix: string) => Buffer.concat([Buffer.from(prefix), Buffer.from(bytes), Buffer.from(suffix)])
  const bodies: [string, Buffer][] = [
    ['Latin-1 é', json('{"kind":"staff","name":"Ren', [0xe9], 'e"}')],
    ['a lone continuation byte', json('{"kind":"staff","name":"A', [0x80], '"}')],
    ['a truncated sequence', json('{"kind":"staff","name":"A', [0xe2, 0x82], '"}')],
    ['an encoded surrogate', json('{"kind":"staff","name":"A', [0xed, 0xa0, 0x80], '"}')],
    ['an overlong slash', json('{"kind":"staff","name":"A', [0xc0, 0xaf], '"}')],
    ['a byte that UTF-8 never uses', json('{"kind":"staff","name":"A', [0xff], '"}')],
  ]
  for (const [what, payload] of bodies) {
    const problem = assertProblem(t, await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload }), 400)
    t.same(problem.errors, [{ path: 'body', message: 'is not valid UTF-8' }], what)
  }
  const patch = await app.inject({
    method: 'PATCH', url: `/v1/custodians/${custodian.id}`, headers: { ...headers, 'if-match': '"1"' }, payload: json('{"name":"Ren', [0xe9], 'e"}'),
  })
  t.same(assertProblem(t, patch, 400).errors, [{ path: 'body', message: 'is not valid UTF-8' }])
  t.same(await tableCounts(database), before, 'nothing written, nothing changed')

  // The same text in UTF-8 is stored as sent, a byte order mark before it or not.
  const ok = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: Buffer.from('{"kind":"staff","name":"Renée"}') })
  t.equal(ok.statusCode, 201)
  t.equal(ok.json().name, 'Renée')
  const bom = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: Buffer.from('\ufeff{"kind":"staff","name":"Zoë"}') })
  t.equal(bom.statusCode, 201, 'as Fastify\'s own parser took it')
})

t.test('a query string that is not percent-encoded UTF-8 is 400 naming its key, never searched for as raw characters', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth(['asset_manager', 'security'])
  const before = await tableCounts(database)
  const cases: [string, string][] = [
    ['/v1/devices?q=%FF', 'querystring.q'],
    ['/v1/custodians?limit=10&q=Ren%E9e', 'querystring.q'],
    ['/v1/devices?q=%E2%82', 'querystring.q'],
    ['/v1/devices?q=%zz', 'querystring.q'],
    ['/v1/devices?%FF=1', 'querystring.%FF'],
    ['/v1/incidents?status=open&circum%C3%A9=%ED%A0%80', 'querystring.circumé'],
  ]
  for (const [url, path] of cases) {
    t.same(assertProblem(t, await app.inject({ method: 'GET', url, headers }), 400).errors, [{ path, message: 'is not valid percent-encoded UTF-8' }], url)
  }
  const post = await app.inject({ method: 'POST', url: '/v1/custodians?x=%FF', headers, payload: { kind: 'staff', name: 'Renée' } })
  t.same(assertProblem(t, post, 400).errors, [{ path: 'querystring.x', message: 'is not valid percent-encoded UTF-8' }])
  t.same(await tableCounts(database), before, 'nothing written')
  const fine = await app.inject({ method: 'GET', url: '/v1/custodians?q=Ren%C3%A9e+S', headers })
  t.equal(fine.statusCode, 200, 'UTF-8, percent-encoded and with +, is read as sent')
})

t.test('the JSON parser keeps Fastify\'s protections: prototype poisoning, empty bodies, the body limit', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = { ...(await auth('asset_manager')), 'content-type': 'application/json' }
  const post = (payload: string | Buffer) => app.inject({ method: 'POST', url: '/v1/custodians', headers, payload })
  assertProblem(t, await post('{"kind":"staff","name":"A","__proto__":{"admin":true}}'), 400)
  assertProblem(t, await post('{"kind":"staff","name":"A","\\u005f_proto__":{"admin":true}}'), 400)
  assertProblem(t, await post('{"kind":"staff","name":"A","constructor":{"prototype":{"admin":true}}}'), 400)
  t.match(assertProblem(t, await post(''), 400).detail, /empty/i)
  assertProblem(t, await post('{"kind":"staff",'), 400)
  assertProblem(t, await post(JSON.stringify({ kind: 'staff', name: 'x'.repeat(1024 * 1024) })), 413)
  t.same(await database.query('SELECT id FROM custodians'), [])
})
