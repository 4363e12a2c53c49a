/**
 * Erasure (UK GDPR): a custodian's personal data goes from every table and every audit event, the
 * chain still verifies, and what the register counts and publishes does not change. The retention
 * schedule does the same for people who left long ago and for old incidents' free text.
 */
import t from 'tap'
import type { Database } from '../../src/db/client.js'
import { runRetention } from '../../src/modules/retention/service.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { insertDevice } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'

const YEAR = new Date().getUTCFullYear()

/** Every row of every table in the register's schema, as text: what a logical dump would hold. */
async function wholeDatabase(database: Database): Promise<string> {
  const tables = await database.query<{ name: string }>(
    `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name FROM information_schema.tables
     WHERE table_schema IN ('public', 'drizzle') AND table_type = 'BASE TABLE'`,
  )
  const parts = await Promise.all(tables.map(({ name }) => database.query<{ rows: string | null }>(`SELECT string_agg(t::text, E'\\n') AS rows FROM ${name} t`)))
  return parts.map(([part]) => part?.rows ?? '').join('\n')
}

async function published(app: TestApp['app'], auth: TestApp['auth']) {
  const get = async (url: string, role: 'security' | 'asset_manager' | 'foi_officer') => {
    const response = await app.inject({ method: 'GET', url, headers: await auth(role) })
    t.equal(response.statusCode, 200, url)
    return response.body
  }
  return {
    summary: await get(`/v1/reports/risk-summary?year=${YEAR}`, 'asset_manager'),
    securitySummary: JSON.parse(await get(`/v1/reports/risk-summary?year=${YEAR}`, 'security')) as { repeatCustodians: { name: string | null }[] },
    foiCsv: await get(`/v1/exports/foi/lost-stolen?year=${YEAR}`, 'foi_officer'),
  }
}

t.test('erasing a custodian: gone everywhere, the chain verifies, counts and exports unchanged', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const manager = await auth('asset_manager', 'alice@parliament')
  const security = await auth('security', 'sam@parliament')
  const personal = { name: 'Zebedee Quillfeather', email: 'zebedee.q@example.org', constituency: 'Upper Snodsbury' }

  const created = await app.inject({ method: 'POST', url: '/v1/custodians', headers: manager, payload: { kind: 'mp', ...personal } })
  t.equal(created.statusCode, 201)
  const custodian = created.json()
  // Ten events on the custodian: created, then nine changes of their personal data.
  let version = 1
  for (let n = 1; n <= 9; n++) {
    const change = n % 3 === 0 ? { email: `zebedee.q${n}@example.org` } : n % 3 === 1 ? { name: `${personal.name} ${n}` } : { constituency: `${personal.constituency} ${n}` }
    const patched = await app.inject({ method: 'PATCH', url: `/v1/custodians/${custodian.id}`, headers: { ...manager, 'if-match': `"${version}"` }, payload: change })
    t.equal(patched.statusCode, 200)
    version++
  }
  const formerValues = [personal.name, personal.email, personal.constituency, `${personal.name} 7`, 'zebedee.q9@example.org', `${personal.constituency} 8`]
  t.equal((await app.inject({ method: 'PATCH', url: `/v1/custodians/${custodian.id}`, headers: { ...manager, 'if-match': `"${version}"` }, payload: personal })).statusCode, 200)

  // Two incidents while they held devices (ended, so nothing is open), making them a repeat custodian.
  for (let n = 0; n < 2; n++) {
    const device = await insertDevice(database)
    t.equal((await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/assignment`, headers: manager, payload: { custodianId: custodian.id } })).statusCode, 201)
    const reported = await app.inject({
      method: 'POST', url: '/v1/incidents', headers: security,
      payload: { deviceId: device.id, kind: 'lost', location: { category: 'transit' }, circumstances: 'Left on a train', personalDataAtRisk: false },
    })
    t.equal(reported.statusCode, 201)
    t.equal((await app.inject({ method: 'POST', url: `/v1/incidents/${reported.json().id}/close`, headers: security, payload: { reason: 'Not found' } })).statusCode, 200)
  }
  const held = await insertDevice(database)
  t.equal((await app.inject({ method: 'POST', url: `/v1/devices/${held.id}/assignment`, headers: manager, payload: { custodianId: custodian.id } })).statusCode, 201)

  const before = await published(app, auth)
  t.same(before.securitySummary.repeatCustodians.map((c) => c.name), [personal.name], 'a repeat custodian, by name, before')
  const dumpBefore = await wholeDatabase(database)
  for (const value of [personal.name, personal.email]) t.ok(dumpBefore.includes(value), `${value} is stored before (the search can find it)`)

  // Refused while they hold a device; nothing changes.
  const erase = (headers: Record<string, string>, payload: unknown = { reason: 'Erasure request ER-2026-014' }) =>
    app.inject({ method: 'POST', url: `/v1/custodians/${custodian.id}/erase`, headers, payload: payload as object })
  const refused = await erase(security)
  assertProblem(t, refused, 409)
  t.match(refused.json().detail, /holds 1 device/)
  assertProblem(t, await erase(manager), 403)
  assertProblem(t, await erase(security, {}), 400)
  assertProblem(t, await erase(security, { reason: 'x', extra: 1 }), 400)
  t.equal(await wholeDatabase(database), dumpBefore, 'refused erasures change nothing')

  t.equal((await app.inject({ method: 'POST', url: `/v1/devices/${held.id}/return`, headers: manager, payload: {} })).statusCode, 200)
  const eventsBefore = (await database.query('SELECT id FROM audit_events')).length
  const erased = await erase(security)
  t.equal(erased.statusCode, 200)
  t.match(erased.json(), { id: custodian.id, kind: 'mp', house: 'commons', name: null, email: null, constituency: null, erasedAt: /^\d{4}-/ })

  const dumpAfter = await wholeDatabase(database)
  for (const value of [...formerValues, 'Quillfeather', 'zebedee', 'Snodsbury']) t.notOk(dumpAfter.includes(value), `"${value}" is in no table`)

  const securityHeaders = await auth('security')
  const verify = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: securityHeaders })
  t.match(verify.json(), { ok: true, firstBadId: null }, 'the chain still verifies')
  const trail = (await app.inject({ method: 'GET', url: `/v1/audit-events?entityId=${custodian.id}&limit=100`, headers: securityHeaders })).json().items as {
    action: string; actor: string; before: Record<string, unknown> | null; after: Record<string, unknown>
  }[]
  t.equal(trail.length, 12, 'ten changes, the last edit, and the erasure')
  t.match(trail.find((e) => e.action === 'custodian.created')?.after, { name: '[erased]', email: '[erased]', constituency: '[erased]', kind: 'mp' }, 'erased values read "[erased]"')
  const erasure = trail[0]!
  t.match(erasure, { action: 'custodian.erased', actor: 'sam@parliament', after: { reason: 'Erasure request ER-2026-014' } }, 'the erasure says who and why')
  t.notOk(JSON.stringify(erasure).includes('Zebedee'), 'and not what')

  const after = await published(app, auth)
  t.equal(after.summary, before.summary, 'risk summary byte-identical')
  t.equal(after.foiCsv, before.foiCsv, 'FOI export byte-identical')
  t.same(after.securitySummary, { ...before.securitySummary, repeatCustodians: [{ ...before.securitySummary.repeatCustodians[0], name: null }] }, "security's summary: the same counts, the person erased")

  const again = await erase(security, { reason: 'again' })
  t.equal(again.statusCode, 200)
  t.same(again.json(), erased.json(), 'erasing again changes nothing')
  t.equal((await database.query('SELECT id FROM audit_events')).length, eventsBefore + 1, 'and records nothing more')
  const edit = await app.inject({ method: 'PATCH', url: `/v1/custodians/${custodian.id}`, headers: { ...manager, 'if-match': `"${erased.json().version}"` }, payload: { name: 'Someone' } })
  assertProblem(t, edit, 409)
})

t.test('erasing one with an open incident is 409; an unknown id is 404', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const security = await auth('security')
  const custodian = (await app.inject({ method: 'POST', url: '/v1/custodians', headers: security, payload: { kind: 'staff', name: 'Open Case' } })).json()
  const device = await insertDevice(database)
  await app.inject({ method: 'POST', url: `/v1/devices/${device.id}/assignment`, headers: security, payload: { custodianId: custodian.id } })
  const reported = await app.inject({
    method: 'POST', url: '/v1/incidents', headers: security,
    payload: { deviceId: device.id, kind: 'stolen', location: { category: 'home' }, circumstances: 'Break-in', personalDataAtRisk: true },
  })
  t.equal(reported.statusCode, 201)
  const refused = await app.inject({ method: 'POST', url: `/v1/custodians/${custodian.id}/erase`, headers: security, payload: { reason: 'request' } })
  assertProblem(t, refused, 409)
  t.match(refused.json().detail, /open incident/)
  assertProblem(t, await app.inject({ method: 'POST', url: '/v1/custodians/0190d3c0-0000-7000-8000-000000000000/erase', headers: security, payload: { reason: 'request' } }), 404)
})

t.test('the retention schedule: people who left long ago, incidents that ended long ago', async (t) => {
  const { app, auth, database, config } = await buildTestApp(t)
  const security = await auth('security')
  const make = async (name: string) => (await app.inject({ method: 'POST', url: '/v1/custodians', headers: security, payload: { kind: 'staff', name, email: `${name.split(' ')[0]!.toLowerCase()}@example.org` } })).json()
  const longGone = await make('Longgone Person')
  const recent = await make('Recently Left')
  const stays = await make('Still Here')
  const holder = await make('Holdsa Laptop')
  const leave = (id: string, leftOn: string) => database.query('UPDATE custodians SET left_on = $2, active = false WHERE id = $1', [id, leftOn])
  const monthsAgo = (months: number) => {
    const day = new Date()
    day.setUTCMonth(day.getUTCMonth() - months)
    return day.toISOString().slice(0, 10)
  }
  await leave(longGone.id, monthsAgo(25))
  await leave(recent.id, monthsAgo(23))
  await leave(holder.id, monthsAgo(30))
  await database.query(`UPDATE devices SET status = 'assigned', current_custodian_id = $1 WHERE id = $2`, [holder.id, (await insertDevice(database)).id])

  // Two ended incidents: one seven years ago, one last year.
  const ended: string[] = []
  for (const yearsAgo of [7, 1]) {
    const device = await insertDevice(database)
    const reported = (await app.inject({
      method: 'POST', url: '/v1/incidents', headers: security,
      payload: { deviceId: device.id, kind: 'lost', location: { category: 'transit', description: `Carriage ${yearsAgo}` }, circumstances: `Lost ${yearsAgo} years ago on the Tube`, personalDataAtRisk: false },
    })).json()
    await app.inject({ method: 'POST', url: `/v1/incidents/${reported.id}/notes`, headers: security, payload: { text: `Note about year ${yearsAgo}` } })
    await app.inject({ method: 'POST', url: `/v1/incidents/${reported.id}/close`, headers: security, payload: { reason: `Closed ${yearsAgo}` } })
    await database.query(`UPDATE incidents SET closed_at = now() - make_interval(years => $2), reported_at = now() - make_interval(years => $2, days => 1) WHERE id = $1`, [reported.id, yearsAgo])
    ended.push(reported.id)
  }

  const plan = await runRetention(database.db, config, { apply: false })
  t.same(plan.custodians, [longGone.id], 'only the custodian who left over 24 months ago and holds nothing')
  t.same(plan.incidents.map((i) => i.id), [ended[0]], 'only the incident that ended over 6 years ago')
  t.equal((await database.query('SELECT 1 FROM custodians WHERE erased_at IS NOT NULL')).length, 0, 'a dry run erases nothing')

  const applied = await runRetention(database.db, config, { apply: true })
  t.match(applied, { ran: true, applied: true })
  const rows = await database.query<{ id: string; name: string | null; email: string | null }>('SELECT id, name, email FROM custodians ORDER BY name NULLS FIRST')
  t.same(rows.find((r) => r.id === longGone.id), { id: longGone.id, name: null, email: null })
  for (const kept of [recent, stays, holder]) t.equal(rows.find((r) => r.id === kept.id)?.name, kept.name, `${kept.name} is kept`)

  const old = (await app.inject({ method: 'GET', url: `/v1/incidents/${ended[0]}`, headers: security })).json()
  t.match(old, { circumstances: null, closeReason: null, location: { category: 'transit', description: null }, status: 'closed' })
  const notes = (await app.inject({ method: 'GET', url: `/v1/incidents/${ended[0]}/notes`, headers: security })).json().items
  t.same(notes.map((n: { text: unknown }) => n.text), [null], "the note's text is erased, the note kept")
  const recentIncident = (await app.inject({ method: 'GET', url: `/v1/incidents/${ended[1]}`, headers: security })).json()
  t.equal(recentIncident.circumstances, 'Lost 1 years ago on the Tube', 'the recent one is kept')
  const dump = await wholeDatabase(database)
  for (const value of ['Longgone', 'longgone@example.org', 'Lost 7 years', 'Carriage 7', 'Note about year 7', 'Closed 7']) t.notOk(dump.includes(value), `"${value}" is in no table`)
  t.ok(dump.includes('Carriage 1'), 'the recent free text is still stored')
  t.match((await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: security })).json(), { ok: true })
  t.same((await runRetention(database.db, config, { apply: true })).custodians, [], 'a second run finds nothing')
})
