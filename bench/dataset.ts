/**
 * The benchmark's data set, generated inside PostgreSQL by `INSERT … SELECT … generate_series`
 * statements (no rows pass through Node), so a million devices load in seconds.
 *
 * Shape (full size; `--quick` is a tenth, `--dry-run` a thousandth):
 * - custodians: 100,000, one in twenty inactive;
 * - devices: 1,000,000; the first 200,000 are the ones that were lost or stolen (one incident each);
 *   of the rest one in twenty retired, 6/20 in stock, 13/20 assigned (with an open assignment row);
 *   one device in twenty (n % 20 = 3) is a security token: the stocktake's scope;
 * - incidents: 200,000 over the last ten years, gap-free references per year, a quarter recovered,
 *   the most recent 4% still open, the rest closed (frozen risk filled with a fixed score);
 * - stocktake scans: 2,000,000 in 40 stocktakes of 50,000; the first stocktake is open, scoped to
 *   security tokens, with 95% of its scans matching one and 5% unknown identifiers.
 *
 * Ids are UUIDv7-shaped (time prefix from the row's creation time), as the service makes them, so
 * keyset order is creation order. Audit events are not generated: the trail starts empty.
 */
import type pg from 'pg'

export interface DatasetSize {
  custodians: number
  devices: number
  incidents: number
  stocktakes: number
  scansPerStocktake: number
}

export function datasetSize(scale: number): DatasetSize {
  const devices = Math.round(1_000_000 * scale)
  return {
    custodians: Math.round(100_000 * scale),
    devices,
    incidents: Math.round(200_000 * scale),
    stocktakes: 40,
    // One scan per security token in the open stocktake (a twentieth of the devices).
    scansPerStocktake: Math.floor(devices / 20),
  }
}

const TEN_YEARS_S = 10 * 365 * 24 * 3600

/** UUIDv7 layout: 48-bit ms time, version 7, 12 bits of table tag, variant 8, 60 bits of sequence. */
const CREATE_UUID_FN = `CREATE OR REPLACE FUNCTION bench_uuid(tag int, n bigint, at timestamptz) RETURNS uuid
  LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7' || lpad(to_hex(tag), 3, '0')
    || '8' || lpad(to_hex(n), 15, '0'))::uuid $$`

/** SQL expressions of a device's attributes from its number `n`, shared by the device and incident inserts. */
function deviceSql(size: DatasetSize) {
  const at = (n: string) => `(now() - interval '10 years' + (${n} * ${TEN_YEARS_S / size.devices}) * interval '1 second')`
  return {
    at,
    id: (n: string) => `bench_uuid(2, ${n}, ${at(n)})`,
    kind: (n: string) =>
      `(CASE WHEN ${n} % 20 = 3 THEN 'security_token' ELSE (ARRAY['laptop','phone','tablet','desktop','removable_media','other'])[1 + (${n} / 20) % 6] END)::device_kind`,
    encrypted: (n: string) => `(${n} % 10 <> 0)`,
    mdm: (n: string) => `(${n} % 7 <> 0)`,
    classification: (n: string) =>
      `(CASE ${n} % 10 WHEN 0 THEN 'secret' WHEN 1 THEN 'official_sensitive' WHEN 2 THEN 'official_sensitive' ELSE 'official' END)::classification`,
  }
}

const custodianId = (n: string) => `bench_uuid(1, ${n}, now() - interval '10 years' + ${n} * interval '1 millisecond')`

/** Incident i's status: the last 4% (by time) still open unless recovered; a quarter recovered. */
const incidentStatus = (i: string, size: DatasetSize) =>
  `(CASE WHEN ${i} % 4 = 0 THEN 'recovered' WHEN ${i} > ${Math.floor(size.incidents * 0.96)} THEN 'open' ELSE 'closed' END)`

export interface LoadStep {
  table: string
  rows: number
  ms: number
}

/** The statements, in order; each is timed and its row count reported. */
function statements(size: DatasetSize): { table: string; sql: string }[] {
  const d = deviceSql(size)
  const { custodians: C, devices: D, incidents: I, stocktakes: S, scansPerStocktake: K } = size
  const incidentAt = (i: string) =>
    `(now() - interval '10 years' + (${i} * ${TEN_YEARS_S / Math.max(I, 1)}) * interval '1 second' - interval '1 hour')`
  return [
    {
      table: 'custodians',
      sql: `INSERT INTO custodians (id, kind, name, house, constituency, email, active, left_on, created_at, updated_at, created_by)
        SELECT ${custodianId('n')}, k.kind, 'Custodian ' || n,
          CASE k.kind WHEN 'mp' THEN 'commons'::house WHEN 'peer' THEN 'lords'::house END,
          CASE WHEN k.kind = 'mp' THEN 'Constituency ' || (n % 650) END,
          'custodian' || n || '@example.org', n % 20 <> 0, CASE WHEN n % 20 = 0 THEN DATE '2024-01-01' END,
          now() - interval '10 years', now() - interval '10 years', 'bench'
        FROM generate_series(1, ${C}) AS n,
          LATERAL (SELECT ((ARRAY['mp','peer','staff','office'])[1 + n % 4])::custodian_kind AS kind) AS k`,
    },
    {
      table: 'devices',
      sql: `INSERT INTO devices (id, asset_tag, kind, make, model, serial_number, encrypted, mdm_enrolled, classification,
          purchased_on, cost_pence, status, current_custodian_id, retired_at, retire_reason, created_at, updated_at, created_by)
        SELECT ${d.id('n')}, 'BA-' || lpad(n::text, 7, '0'), ${d.kind('n')},
          (ARRAY['Dell','Apple','Lenovo','Samsung','Yubico'])[1 + n % 5], 'Model ' || (n % 37),
          'SN-' || lpad(n::text, 8, '0'), ${d.encrypted('n')}, ${d.mdm('n')}, ${d.classification('n')},
          (${d.at('n')})::date, 50000 + n % 100000, s.status::device_status,
          CASE WHEN s.status = 'assigned' THEN ${custodianId(`(1 + n % ${C})`)} END,
          CASE WHEN s.status = 'retired' THEN ${d.at('n')} + interval '3 years' END,
          CASE WHEN s.status = 'retired' THEN 'end of life' END,
          ${d.at('n')}, ${d.at('n')}, 'bench'
        FROM generate_series(1, ${D}) AS n,
          LATERAL (SELECT CASE
            WHEN n <= ${I} THEN CASE WHEN ${incidentStatus('n', size)} = 'recovered' THEN 'in_stock'
              WHEN n % 3 = 0 THEN 'stolen' ELSE 'lost' END
            WHEN n % 20 = 0 THEN 'retired'
            WHEN n % 20 BETWEEN 1 AND 6 THEN 'in_stock'
            ELSE 'assigned' END AS status) AS s`,
    },
    {
      table: 'assignments',
      sql: `INSERT INTO assignments (id, device_id, custodian_id, assigned_at, created_at, created_by)
        SELECT bench_uuid(3, row_number() OVER (ORDER BY id), created_at), id, current_custodian_id, created_at, created_at, 'bench'
        FROM devices WHERE status = 'assigned'`,
    },
    {
      table: 'incidents',
      sql: `INSERT INTO incidents (id, reference, status, device_id, kind, occurred_at, reported_at, location_category,
          location_description, circumstances, personal_data_at_risk, remote_wipe, ico_deadline, ico_reported_at,
          recovered_at, recovery_condition, closed_at, close_reason, custodian_id, device_kind, device_encrypted,
          device_mdm_enrolled, device_classification, frozen_risk_score, frozen_risk_level, frozen_risk_factors,
          created_at, updated_at, created_by)
        SELECT bench_uuid(4, i, at), 'INC-' || yr || '-' || lpad((row_number() OVER w)::text, greatest(4, length((row_number() OVER w)::text)), '0'),
          st::incident_status, ${d.id('i')}, (CASE WHEN i % 3 = 0 THEN 'stolen' ELSE 'lost' END)::incident_kind,
          CASE WHEN i % 5 <> 0 THEN at - ((i % 48) + 1) * interval '1 hour' END, at,
          (ARRAY['parliamentary_estate','constituency_office','home','transit','abroad','other'])[1 + i % 6]::location_category,
          'Generated location ' || i, 'Generated incident ' || i, i % 3 = 0,
          (ARRAY['not_requested','requested','confirmed','not_possible'])[1 + i % 4]::remote_wipe,
          CASE WHEN i % 3 = 0 THEN at + interval '72 hours' END,
          CASE WHEN i % 3 = 0 AND i % 2 = 0 THEN at + interval '24 hours' END,
          CASE WHEN st = 'recovered' THEN at + interval '5 days' END,
          CASE WHEN st = 'recovered' THEN 'intact'::recovery_condition END,
          CASE WHEN st = 'closed' THEN at + interval '30 days' END,
          CASE WHEN st = 'closed' THEN 'written off' END,
          CASE WHEN i % 2 = 0 THEN ${custodianId(`(1 + i % ${C})`)} END,
          ${d.kind('i')}, ${d.encrypted('i')}, ${d.mdm('i')}, ${d.classification('i')},
          CASE WHEN st <> 'open' THEN 50 END, CASE WHEN st <> 'open' THEN 'high'::risk_level END,
          CASE WHEN st <> 'open' THEN '[]'::jsonb END,
          at, at, 'bench'
        FROM (SELECT i, ${incidentAt('i')} AS at, extract(year FROM ${incidentAt('i')} AT TIME ZONE 'UTC')::int AS yr,
          ${incidentStatus('i', size)} AS st FROM generate_series(1, ${I}) AS i) AS g
        WINDOW w AS (PARTITION BY yr ORDER BY i)`,
    },
    {
      table: 'incident_counters',
      sql: `INSERT INTO incident_counters (year, last_number)
        SELECT split_part(reference, '-', 2)::int, max(split_part(reference, '-', 3)::int) FROM incidents GROUP BY 1`,
    },
    {
      table: 'stocktakes',
      // Closed ones with no findings stored (an empty list of each class).
      sql: `INSERT INTO stocktakes (id, name, status, scope_kind, closed_at, created_at, updated_at, created_by)
        SELECT bench_uuid(5, s, now() - (${S} - s) * interval '1 month'), 'Stocktake ' || s,
          (CASE WHEN s = 1 THEN 'open' ELSE 'closed' END)::stocktake_status,
          CASE WHEN s = 1 THEN 'security_token'::device_kind END,
          CASE WHEN s > 1 THEN now() - (${S} - s) * interval '1 month' + interval '1 day' END,
          now() - (${S} - s) * interval '1 month', now(), 'bench'
        FROM generate_series(1, ${S}) AS s`,
    },
    {
      table: 'stocktake_scans',
      // Stocktake 1: security token j is device 20j + 3 (j from 0); one scan in twenty names nothing.
      // The others: consecutive runs of devices, wrapping round the estate.
      sql: `INSERT INTO stocktake_scans (id, stocktake_id, identifier_type, identifier, device_id, seen_at, created_at, created_by)
        SELECT bench_uuid(6, (s - 1) * ${K} + j, now()), bench_uuid(5, s, now() - (${S} - s) * interval '1 month'),
          'asset_tag', CASE WHEN unknown THEN 'UNKNOWN-' || j ELSE 'BA-' || lpad(dn::text, 7, '0') END,
          CASE WHEN NOT unknown THEN ${d.id('dn')} END,
          now() - (${S} - s) * interval '1 month', now(), 'bench'
        FROM generate_series(1, ${S}) AS s, generate_series(0, ${K - 1}) AS j,
          LATERAL (SELECT s = 1 AND j % 20 = 19 AS unknown,
            CASE WHEN s = 1 THEN 20 * j + 3 ELSE 1 + ((s - 2) * ${K} + j) % ${D} END AS dn) AS x`,
    },
  ]
}

/** Loads the data set into an empty, migrated database; returns each step's rows and time. */
export async function loadDataset(
  client: pg.Client | pg.PoolClient,
  size: DatasetSize,
): Promise<{ steps: LoadStep[]; foreignKeysChecked: boolean }> {
  await client.query(CREATE_UUID_FN)
  const steps: LoadStep[] = []
  // One transaction: now() is the same instant in every statement, so generated ids agree across tables.
  await client.query('BEGIN')
  let foreignKeysChecked = true
  try {
    // The rows are consistent by construction, so the per-row foreign-key triggers are skipped, as
    // a pg_dump restore does (needs a superuser; otherwise they run and the load is slower).
    await client.query('SAVEPOINT replica')
    try {
      await client.query(`SET LOCAL session_replication_role = replica`)
      foreignKeysChecked = false
    } catch {
      await client.query('ROLLBACK TO SAVEPOINT replica')
    }
    for (const statement of statements(size)) {
      const started = performance.now()
      const result = await client.query(statement.sql)
      steps.push({ table: statement.table, rows: result.rowCount ?? 0, ms: performance.now() - started })
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK')
    throw error
  }
  return { steps, foreignKeysChecked }
}
