/**
 * Bulk import of devices from CSV (`POST /v1/devices/import`, `Content-Type: text/csv`).
 *
 * All rows or none: the whole file is checked first (each row against the same rules as
 * `POST /v1/devices`, duplicates within the file, and asset tags and serials already registered)
 * and every bad row is reported at once as `{ row, column, message }`, `row` being the line
 * number (the header is line 1). A clean file is inserted in one transaction, in batches of
 * 5,000 rows per statement, with one `device.created` audit event per device.
 *
 * The CSV parser and the raised body limit belong to this route alone: the plugin is
 * encapsulated (no fastify-plugin), so the rest of the API keeps JSON and the 1 MiB limit.
 */
import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { parse } from 'csv-parse/sync'
import { sql } from 'drizzle-orm'
import { z } from 'zod'
import type { DbOrTx } from '../../db/client.js'
import { devices } from '../../db/schema.js'
import { type WriteContext, writeContext } from '../../http/context.js'
import { ProblemSchema, problems } from '../../plugins/problems.js'
import { recordAudit } from '../audit/trail.js'
import { CreateDeviceBody, type CreateDeviceInput, ImportResultSchema } from './schemas.js'
import { type DeviceRow, newDeviceValues, toDevice } from './service.js'

export const IMPORT_COLUMNS = [
  'asset_tag', 'kind', 'make', 'model', 'serial_number', 'imei', 'encrypted', 'mdm_enrolled', 'classification',
  'purchased_on', 'cost_pence',
] as const

type Column = (typeof IMPORT_COLUMNS)[number]

const FIELD_COLUMNS: Record<string, Column> = {
  assetTag: 'asset_tag',
  kind: 'kind',
  make: 'make',
  model: 'model',
  serialNumber: 'serial_number',
  imei: 'imei',
  encrypted: 'encrypted',
  mdmEnrolled: 'mdm_enrolled',
  classification: 'classification',
  purchasedOn: 'purchased_on',
  costPence: 'cost_pence',
}

export const IMPORT_BODY_LIMIT = 64 * 1024 * 1024
const INSERT_BATCH = 5_000
const LOOKUP_BATCH = 10_000

export interface ImportError {
  row: number
  column: string
  message: string
}

/** Cells are text; these turn them into what the JSON body would hold. Blank optional cells are null. */
function cellBoolean(value: string): unknown {
  const lower = value.toLowerCase()
  return lower === 'true' ? true : lower === 'false' ? false : value
}

function cellInteger(value: string): unknown {
  return /^-?[0-9]+$/.test(value) ? Number(value) : value
}

function rowToBody(cells: Record<Column, string>): Record<string, unknown> {
  const optional = (value: string) => (value === '' ? null : value)
  return {
    assetTag: cells.asset_tag,
    kind: cells.kind,
    make: cells.make,
    model: cells.model,
    serialNumber: cells.serial_number,
    imei: optional(cells.imei),
    encrypted: cellBoolean(cells.encrypted),
    mdmEnrolled: cellBoolean(cells.mdm_enrolled),
    classification: cells.classification,
    purchasedOn: optional(cells.purchased_on),
    costPence: cells.cost_pence === '' ? null : cellInteger(cells.cost_pence),
  }
}

interface ParsedRow {
  line: number
  device: CreateDeviceInput
}

/** Rows checked between two yields to the event loop: a big file must not stall every other request. */
const ROWS_PER_YIELD = 2_000

/** Parses and checks the file without the database; returns the good rows and every error. */
export async function parseImport(text: string): Promise<{ rows: ParsedRow[]; errors: ImportError[] }> {
  let records: { record: string[]; info: { lines: number } }[]
  try {
    // With `info`, each record comes with its line number (the typings do not follow the option).
    records = parse(text, { bom: true, info: true, skip_empty_lines: true, relax_column_count: true, trim: true }) as unknown as typeof records
  } catch (error) {
    const line = Number((error as { lines?: unknown }).lines) || 1
    return { rows: [], errors: [{ row: line, column: '', message: `is not readable CSV: ${(error as Error).message.slice(0, 200)}` }] }
  }
  const [header, ...body] = records
  if (!header || header.record.join(',') !== IMPORT_COLUMNS.join(',')) {
    return { rows: [], errors: [{ row: 1, column: '', message: `the header must be exactly: ${IMPORT_COLUMNS.join(',')}` }] }
  }
  const rows: ParsedRow[] = []
  const errors: ImportError[] = []
  const firstTag = new Map<string, number>()
  const firstSerial = new Map<string, number>()
  for (const [index, { record, info }] of body.entries()) {
    if (index > 0 && index % ROWS_PER_YIELD === 0) await new Promise((resolve) => setImmediate(resolve))
    const line = info.lines
    if (record.length !== IMPORT_COLUMNS.length) {
      errors.push({ row: line, column: '', message: `has ${record.length} cells; expected ${IMPORT_COLUMNS.length}` })
      continue
    }
    const cells = Object.fromEntries(IMPORT_COLUMNS.map((column, i) => [column, record[i] ?? ''])) as Record<Column, string>
    const parsed = CreateDeviceBody.safeParse(rowToBody(cells))
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        errors.push({ row: line, column: FIELD_COLUMNS[String(issue.path[0])] ?? '', message: issue.message })
      }
      continue
    }
    const device = parsed.data
    let duplicate = false
    const tag = device.assetTag.toLowerCase()
    const serial = device.serialNumber.toLowerCase()
    const tagSeen = firstTag.get(tag)
    if (tagSeen !== undefined) {
      errors.push({ row: line, column: 'asset_tag', message: `repeats the asset tag of line ${tagSeen}` })
      duplicate = true
    } else firstTag.set(tag, line)
    const serialSeen = firstSerial.get(serial)
    if (serialSeen !== undefined) {
      errors.push({ row: line, column: 'serial_number', message: `repeats the serial number of line ${serialSeen}` })
      duplicate = true
    } else firstSerial.set(serial, line)
    if (!duplicate) rows.push({ line, device })
  }
  if (body.length === 0) errors.push({ row: 2, column: '', message: 'the file has no devices after the header' })
  return { rows, errors }
}

/** Rows whose asset tag or serial number is already registered (any case). */
async function existingIdentifiers(db: DbOrTx, rows: ParsedRow[]): Promise<ImportError[]> {
  const errors: ImportError[] = []
  for (const [field, column, label] of [
    ['assetTag', 'asset_tag', 'asset tag'],
    ['serialNumber', 'serial_number', 'serial number'],
  ] as const) {
    const taken = new Set<string>()
    for (let start = 0; start < rows.length; start += LOOKUP_BATCH) {
      const values = rows.slice(start, start + LOOKUP_BATCH).map((row) => row.device[field].toLowerCase())
      const target = field === 'assetTag' ? devices.assetTag : devices.serialNumber
      const found = await db
        .select({ value: sql<string>`lower(${target})` })
        .from(devices)
        .where(sql`lower(${target}) = ANY(${sql.param(values)}::text[])`)
      for (const { value } of found) taken.add(value)
    }
    for (const row of rows) {
      if (taken.has(row.device[field].toLowerCase())) {
        errors.push({ row: row.line, column, message: `a device with this ${label} is already registered` })
      }
    }
  }
  return errors
}

function importProblem(errors: ImportError[]) {
  errors.sort((a, b) => a.row - b.row)
  const lines = new Set(errors.map((error) => error.row)).size
  return problems.unprocessable(
    `${lines} line(s) of the file cannot be imported; nothing was imported.`,
    errors.map((error) => ({ path: `body.line[${error.row}]${error.column ? `.${error.column}` : ''}`, ...error })),
  )
}

/**
 * Inserts one batch with a single statement over column arrays (`unnest`): a dozen parameters
 * whatever the batch size, where a VALUES list would bind (and Drizzle would build) one per cell.
 */
async function insertBatch(tx: DbOrTx, rows: DeviceRow[]): Promise<void> {
  const column = <K extends keyof DeviceRow>(key: K) => sql.param(rows.map((row) => row[key]))
  const at = rows[0]!.createdAt.toISOString()
  await tx.execute(sql`
    INSERT INTO devices (id, asset_tag, kind, make, model, serial_number, imei, encrypted, mdm_enrolled,
                         classification, purchased_on, cost_pence, created_by, created_at, updated_at)
    SELECT u.*, ${at}::timestamptz, ${at}::timestamptz
    FROM unnest(${column('id')}::uuid[], ${column('assetTag')}::text[], ${column('kind')}::device_kind[],
                ${column('make')}::text[], ${column('model')}::text[], ${column('serialNumber')}::text[],
                ${column('imei')}::text[], ${column('encrypted')}::boolean[], ${column('mdmEnrolled')}::boolean[],
                ${column('classification')}::classification[], ${column('purchasedOn')}::date[],
                ${column('costPence')}::bigint[], ${column('createdBy')}::text[]) AS u`)
}

export async function importDevices(db: DbOrTx, context: WriteContext, text: string): Promise<{ created: number }> {
  const { rows, errors } = await parseImport(text)
  return db.transaction(async (tx) => {
    errors.push(...(await existingIdentifiers(tx, rows)))
    if (errors.length > 0) throw importProblem(errors)
    const now = new Date()
    // The whole row is known before the insert (defaults included), so no RETURNING is needed.
    const full: DeviceRow[] = rows.map(({ device }) => ({
      ...(newDeviceValues(device, context.actor) as DeviceRow),
      status: 'in_stock',
      currentCustodianId: null,
      lastSeenAt: null,
      retiredAt: null,
      retireReason: null,
      createdAt: now,
      updatedAt: now,
      version: 1,
    }))
    for (let start = 0; start < full.length; start += INSERT_BATCH) {
      const batch = full.slice(start, start + INSERT_BATCH)
      await insertBatch(tx, batch)
      await recordAudit(
        tx,
        context,
        batch.map((row) => ({ action: 'device.created', entityType: 'device' as const, entityId: row.id, after: toDevice(row) })),
      )
    }
    return { created: full.length }
  })
}

const CsvBody = z.string().meta({
  description: `CSV with the header row \`${IMPORT_COLUMNS.join(',')}\`; booleans \`true\`/\`false\`; blank optional cells.`,
})

export const deviceImportRoutes: FastifyPluginAsyncZod = async (app) => {
  // Only CSV is read here; any other type is 415.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: IMPORT_BODY_LIMIT }, (_request, body, done) => {
    done(null, body)
  })

  app.post(
    '/v1/devices/import',
    {
      bodyLimit: IMPORT_BODY_LIMIT,
      config: { access: ['security', 'asset_manager'], idempotent: true },
      schema: {
        tags: ['devices'],
        summary: 'Import devices from CSV: all rows or none',
        consumes: ['text/csv'],
        body: CsvBody,
        response: { 201: ImportResultSchema, 413: ProblemSchema, 415: ProblemSchema, 422: ProblemSchema },
      },
    },
    async (request, reply) => {
      const result = await importDevices(app.db, writeContext(request), request.body)
      return reply.code(201).send(result)
    },
  )
}
