import t from 'tap'
import { deviceListQuery } from '../../src/modules/devices/service.js'
import { buildTestApp } from '../helpers/app.js'

interface PlanNode {
  'Node Type': string
  'Index Name'?: string
  'Rows Removed by Filter'?: number
  Plans?: PlanNode[]
}
const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)]

// A real estate's status follows its age: ids (UUIDv7) follow registration, and the newest devices
// are the ones still in stock (or, here, retired). A status filter must walk the (status, id)
// index, not the primary key filtering row by row until a page matches.
t.test('a status page walks the status index even when status follows the id order', async (t) => {
  const { app, database } = await buildTestApp(t)
  await database.query(`
    INSERT INTO devices (id, asset_tag, kind, make, model, serial_number, encrypted, mdm_enrolled, classification, status, created_by)
    SELECT lpad(to_hex(n), 32, '0')::uuid, 'PL-' || n, 'laptop', 'Dell', 'Latitude', 'PLAN-' || n, true, true, 'official',
           (CASE WHEN n > 10000 THEN 'retired' ELSE 'in_stock' END)::device_status, 'fixture'
    FROM generate_series(1, 20000) AS n`)
  await database.query('ANALYZE devices')

  const filter = { status: 'retired' as const, limit: 50 }
  const query = deviceListQuery(app.db, filter).toSQL()
  const [explained] = await database.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${query.sql}`, query.params)
  const nodes = nodesOf(explained!['QUERY PLAN'][0].Plan)
  t.ok(nodes.some((node) => node['Index Name'] === 'devices_status_idx'), 'the status index is used')
  t.equal(nodes.reduce((sum, node) => sum + (node['Rows Removed by Filter'] ?? 0), 0), 0, 'no row is read only to be thrown away')

  const rows = await deviceListQuery(app.db, filter)
  t.equal(rows.length, 51, 'a page and one row to tell that more follow')
  t.same(
    rows.map((row) => row.assetTag),
    Array.from({ length: 51 }, (_, i) => `PL-${10001 + i}`),
    'the first retired devices, in id order',
  )
})
