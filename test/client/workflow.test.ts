/**
 * A whole workflow through a client typed only from the OpenAPI document: openapi-fetch over the
 * `paths` that openapi-typescript generated (api.d.ts), against a real listening server. No type
 * here is written by hand and nothing is cast: `tsc --noEmit` checks every path, parameter, body
 * and field against the document. Every answer, errors included, must be a status the document
 * lists for its operation, and every error must be problem+json.
 */
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import createClient from 'openapi-fetch'
import t from 'tap'
import { z } from 'zod'
import { FoiRecordSchema } from '../../src/modules/exports/schemas.js'
import { OPENAPI_FILE } from '../../src/openapi-document.js'
import { buildTestApp } from '../helpers/app.js'
import type { paths } from './api.js'

/** The body of a successful answer; a failure names the status and the problem instead. */
function bodyOf<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.data === undefined) throw new Error(`answered ${answer.response.status}: ${JSON.stringify(answer.error)}`)
  return answer.data
}

const HOUR_MS = 60 * 60 * 1000
const DAY_MS = 24 * HOUR_MS
const dateOf = (time: number) => new Date(time).toISOString().slice(0, 10)

t.test('custodian, device, assignment, incident, note, recovery, risk summary and FOI export, through the typed client', async (t) => {
  const { app, database, auth } = await buildTestApp(t)
  const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' })
  const document = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'))

  const clientFor = (headers: Record<string, string>) => {
    const client = createClient<paths>({ baseUrl, headers })
    client.use({
      onResponse({ request, schemaPath, response }) {
        const operation = document.paths[schemaPath]?.[request.method.toLowerCase()]
        t.ok(operation?.responses?.[String(response.status)], `${request.method} ${schemaPath} ${response.status} is in the document`)
        if (response.status >= 400) t.match(response.headers.get('content-type'), /^application\/problem\+json/)
      },
    })
    return client
  }
  const assets = clientFor(await auth('asset_manager', 'asset-manager'))
  const security = clientFor(await auth('security', 'security-officer'))
  const foi = clientFor(await auth('foi_officer', 'foi-officer'))
  const anonymous = clientFor({})

  const custodian = bodyOf(
    await assets.POST('/v1/custodians', {
      params: { header: { 'idempotency-key': randomUUID() } },
      body: { kind: 'mp', name: 'Alex Morgan', house: 'commons', constituency: 'Bristol North West' },
    }),
  )
  t.equal(custodian.active, true)

  const created = await assets.POST('/v1/devices', {
    body: {
      assetTag: `HOC-LT-${randomUUID().slice(0, 6)}`,
      kind: 'laptop',
      make: 'Dell',
      model: 'Latitude 7440',
      serialNumber: `CN${randomUUID().slice(0, 8)}`,
      encrypted: false,
      mdmEnrolled: true,
      classification: 'official_sensitive',
    },
  })
  t.equal(created.response.status, 201)
  const device = bodyOf(created)
  t.equal(created.response.headers.get('etag'), `"${device.version}"`)
  t.equal(device.status, 'in_stock')

  const assignment = bodyOf(
    await assets.POST('/v1/devices/{id}/assignment', { params: { path: { id: device.id } }, body: { custodianId: custodian.id } }),
  )
  t.equal(assignment.custodianId, custodian.id)
  t.equal(bodyOf(await assets.GET('/v1/devices/{id}', { params: { path: { id: device.id } } })).status, 'assigned')

  const reported = bodyOf(
    await security.POST('/v1/incidents', {
      params: { header: { 'idempotency-key': randomUUID() } },
      body: {
        deviceId: device.id,
        kind: 'stolen',
        reportedAt: new Date(Date.now() - 2 * HOUR_MS).toISOString(),
        location: { category: 'transit', description: 'Train from London to Bristol' },
        circumstances: 'Bag taken from the luggage rack.',
        personalDataAtRisk: true,
      },
    }),
  )
  t.match(reported.reference, /^INC-\d{4}-\d{4,}$/)
  t.equal(reported.status, 'open')
  t.equal(reported.custodianId, custodian.id, 'the incident keeps who held the device')
  t.not(reported.icoDeadline, null, 'personal data at risk starts the ICO clock')
  t.equal(bodyOf(await assets.GET('/v1/devices/{id}', { params: { path: { id: device.id } } })).status, 'stolen')

  const note = bodyOf(
    await security.POST('/v1/incidents/{id}/notes', {
      params: { path: { id: reported.id } },
      body: { text: 'The custodian called: the bag held no papers.' },
    }),
  )
  t.equal(note.incidentId, reported.id)
  const notesSeenByAssets = bodyOf(await assets.GET('/v1/incidents/{id}/notes', { params: { path: { id: reported.id } } }))
  t.same(
    notesSeenByAssets.items.map((item) => item.text),
    [null],
    'an asset manager sees that the note exists, not what it says',
  )

  // A change without If-Match: the error is typed as the document's problem.
  const unconditional = await security.PATCH('/v1/incidents/{id}', {
    params: { path: { id: reported.id } },
    body: { policeReference: 'BTP-25-031400' },
  })
  t.equal(unconditional.response.status, 428)
  t.equal(unconditional.error?.status, 428)
  t.match(unconditional.error?.type, /precondition-required$/)
  const current = await security.GET('/v1/incidents/{id}', { params: { path: { id: reported.id } } })
  const changed = bodyOf(
    await security.PATCH('/v1/incidents/{id}', {
      params: { path: { id: reported.id }, header: { 'if-match': current.response.headers.get('etag') ?? '' } },
      body: { policeReference: 'BTP-25-031400' },
    }),
  )
  t.equal(changed.policeReference, 'BTP-25-031400')

  const recovered = bodyOf(
    await security.POST('/v1/incidents/{id}/recovery', {
      params: { path: { id: reported.id } },
      body: { recoveredAt: new Date(Date.now() - 60_000).toISOString(), condition: 'intact', notes: 'Handed in at lost property.' },
    }),
  )
  t.equal(recovered.status, 'recovered')
  t.equal(recovered.recovery?.condition, 'intact')
  t.equal(bodyOf(await assets.GET('/v1/devices/{id}', { params: { path: { id: device.id } } })).status, 'in_stock')
  const [stored] = await database.query('SELECT status, recovered_at FROM incidents WHERE id = $1', [reported.id])
  t.equal(stored?.status, 'recovered', 'the database holds the recovery')
  t.ok(stored?.recovered_at)

  const period = { from: dateOf(Date.now() - 2 * DAY_MS), to: dateOf(Date.now() + 2 * DAY_MS) }
  const summary = bodyOf(await security.GET('/v1/reports/risk-summary', { params: { query: period } }))
  t.match(summary.totals, { reported: 1, stolen: 1, recovered: 1, outstanding: 0, recoveryRate: 1 })
  t.equal(summary.repeatCustodians?.length, 0, 'the security role sees the repeat custodians (none)')
  const summaryForFoi = bodyOf(await foi.GET('/v1/reports/risk-summary', { params: { query: period } }))
  t.equal(summaryForFoi.repeatCustodians, undefined, 'no one else does')

  const rows = bodyOf(await foi.GET('/v1/exports/foi/lost-stolen', { params: { query: period }, headers: { accept: 'application/json' } }))
  if (!Array.isArray(rows)) throw new Error(`the JSON export is not an array: ${rows}`)
  for (const row of rows) t.ok(z.strictObject(FoiRecordSchema.shape).safeParse(row).success, 'a row is exactly what the document says')
  t.same(
    rows.map((row) => ({ reference: row.reference, lostOrStolen: row.lostOrStolen, recovered: row.recovered, encrypted: row.encrypted })),
    [{ reference: reported.reference, lostOrStolen: 'stolen', recovered: true, encrypted: false }],
  )
  const csv = bodyOf(await foi.GET('/v1/exports/foi/lost-stolen', { params: { query: period }, parseAs: 'text' }))
  t.match(csv, new RegExp(`^reference,date_reported,.*\r\n${reported.reference},`))

  const events = bodyOf(await security.GET('/v1/audit-events', { params: { query: { entityId: reported.id } } }))
  t.same(
    events.items.map((event) => event.action).sort(),
    ['incident.note_added', 'incident.recovered', 'incident.reported', 'incident.updated'],
    'each change of the incident is in the audit trail',
  )
  t.ok(events.items.every((event) => event.actor === 'security-officer'))

  const refused = await anonymous.GET('/v1/devices')
  t.equal(refused.response.status, 401)
  t.equal(refused.error?.status, 401)
  const forbidden = await foi.GET('/v1/incidents/{id}', { params: { path: { id: reported.id } } })
  t.equal(forbidden.error?.status, 403)
})
