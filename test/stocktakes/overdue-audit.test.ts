import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { insertCustodian, insertDevice } from '../helpers/fixtures.js'
import { assertProblem } from '../helpers/problem.js'
import { walkPages } from '../helpers/pages.js'

const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000)

t.test('overdue audit: in-service devices never seen first, then the longest unseen; keyset pages', async (t) => {
  const { app, auth, database } = await buildTestApp(t)
  const headers = await auth('asset_manager')
  const holder = await insertCustodian(database)
  const neverA = await insertDevice(database, { assetTag: 'NEVER-A' })
  const neverB = await insertDevice(database, { assetTag: 'NEVER-B', status: 'assigned', currentCustodianId: holder.id })
  const old = await insertDevice(database, { assetTag: 'OLD', lastSeenAt: daysAgo(400) })
  const older = await insertDevice(database, { assetTag: 'OLDER', lastSeenAt: daysAgo(500) })
  const longAgo = daysAgo(1000)
  const sameTimeA = await insertDevice(database, { assetTag: 'SAME-A', lastSeenAt: longAgo })
  const sameTimeB = await insertDevice(database, { assetTag: 'SAME-B', lastSeenAt: longAgo })
  const borderline = await insertDevice(database, { assetTag: 'BORDER', lastSeenAt: daysAgo(179) })
  await insertDevice(database, { assetTag: 'RECENT', lastSeenAt: daysAgo(1) })
  await insertDevice(database, { assetTag: 'RETIRED', status: 'retired' })
  await insertDevice(database, { assetTag: 'LOST', status: 'lost' })

  const all = (await app.inject({ method: 'GET', url: '/v1/reports/overdue-audit', headers })).json()
  const expected = [neverA, neverB, sameTimeA, sameTimeB, older, old]
  t.same(all.items.map((d: { assetTag: string }) => d.assetTag), expected.map((d) => d.assetTag), 'default 180 days; retired and lost left out')
  t.same(all.items[1], {
    id: neverB.id, assetTag: 'NEVER-B', serialNumber: neverB.serialNumber, kind: 'laptop', status: 'assigned',
    currentCustodianId: holder.id, lastSeenAt: null,
  })
  t.equal(all.items.find((d: { id: string }) => d.id === old.id).lastSeenAt, old.lastSeenAt!.toISOString())
  t.equal(all.nextCursor, null)

  const wider = (await app.inject({ method: 'GET', url: '/v1/reports/overdue-audit?days=30', headers })).json()
  t.ok(wider.items.some((d: { id: string }) => d.id === borderline.id), 'seen 179 days ago is overdue at 30 days')
  t.notOk(all.items.some((d: { id: string }) => d.id === borderline.id), 'but not at 180')

  // One item a page: the cursor crosses from the never-seen part to the seen part, and through equal times.
  const walked = await walkPages<{ assetTag: string }>(app, '/v1/reports/overdue-audit?limit=1', headers, 20)
  t.same(walked.items.map((d) => d.assetTag), expected.map((d) => d.assetTag))

  for (const bad of ['days=0', 'days=3651', 'days=abc', 'colour=red', 'cursor=garbage']) {
    assertProblem(t, await app.inject({ method: 'GET', url: `/v1/reports/overdue-audit?${bad}`, headers }), 400)
  }
  t.equal((await app.inject({ method: 'GET', url: '/v1/reports/overdue-audit?days=3650', headers: await auth('security') })).statusCode, 200)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/reports/overdue-audit', headers: await auth('foi_officer') }), 403)
  assertProblem(t, await app.inject({ method: 'GET', url: '/v1/reports/overdue-audit' }), 401)
})
