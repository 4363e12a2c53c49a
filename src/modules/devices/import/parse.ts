/**
 * Reading and checking a device import file (`POST /v1/devices/import`), without the database:
 * what a file says is judged here alone, so it can be tested without an app, and the writer can
 * start on the good rows while the rest of the file is still being read (its CSV by `csv.ts`).
 *
 * The rules are those of `POST /v1/devices` (`CreateDeviceBody` and the register's asset-tag
 * scheme), plus no asset tag or serial number twice in one file. Every bad row is reported as
 * `{ row, column, message }`, `row` being the line number (the header is line 1; empty lines are
 * skipped but counted). Errors are counted without end but only the first MAX_LISTED_ERRORS (in
 * file order) are kept: a file of a million bad lines holds no more of them in memory, and gets no
 * longer an answer, than a file of a hundred.
 *
 * Each cell is checked with its own field's schema, the verdict remembered for cells that repeat
 * (kinds, makes, dates, and bad cells of any column); a row with a bad cell is checked again as a
 * whole, so its messages (and their order) are exactly the schema's, while errors are still being
 * listed, and past that only counted: as many as its cells' verdicts hold.
 */
import { isUtf8 } from 'node:buffer'
import type { z } from 'zod'
import { CreateDeviceBody, type CreateDeviceInput } from '../schemas.js'
import type { AssetTagRule } from '../service.js'
import { csvRecords } from './csv.js'

export const IMPORT_COLUMNS = [
  'asset_tag', 'kind', 'make', 'model', 'serial_number', 'imei', 'encrypted', 'mdm_enrolled', 'classification',
  'purchased_on', 'cost_pence',
] as const

type Field = keyof CreateDeviceInput

export interface ImportError {
  row: number
  column: string
  message: string
}

/** Errors listed in a refusal; the rest are counted. */
export const MAX_LISTED_ERRORS = 100

/** A file's errors: the first MAX_LISTED_ERRORS in file order, how many there are, and on how many lines. */
export interface ImportErrorList {
  errors: ImportError[]
  errorCount: number
  errorLines: number
}

/** Takes errors in file order; keeps the first MAX_LISTED_ERRORS and counts them all. */
export class ImportErrors {
  private readonly errors: ImportError[] = []
  private errorCount = 0
  private errorLines = 0
  private lastRow = 0

  get count(): number {
    return this.errorCount
  }

  /** True once MAX_LISTED_ERRORS are listed: later errors are only counted. */
  get full(): boolean {
    return this.errors.length >= MAX_LISTED_ERRORS
  }

  add(error: ImportError): void {
    this.errorCount++
    if (error.row !== this.lastRow) this.errorLines++
    this.lastRow = error.row
    if (!this.full) this.errors.push(error)
  }

  /** Counts `count` errors of line `row` without listing them (the list being full). */
  addUnlisted(row: number, count: number): void {
    this.errorCount += count
    if (row !== this.lastRow) this.errorLines++
    this.lastRow = row
  }

  list(): ImportErrorList {
    return { errors: this.errors, errorCount: this.errorCount, errorLines: this.errorLines }
  }

  /** The list of this one error. */
  static of(error: ImportError): ImportErrorList {
    const one = new ImportErrors()
    one.add(error)
    return one.list()
  }
}

/** The good rows of a file as columns (one array per field), with their line numbers. */
export type ImportRows = { line: number[] } & { [F in Field]-?: Exclude<CreateDeviceInput[F], undefined>[] }

export function emptyRows(): ImportRows {
  return {
    line: [], assetTag: [], kind: [], make: [], model: [], serialNumber: [], imei: [], encrypted: [], mdmEnrolled: [],
    classification: [], purchasedOn: [], costPence: [],
  }
}

/** Cells are text; these turn them into what the JSON body would hold. Blank optional cells are null. */
function cellBoolean(value: string): unknown {
  const lower = value.toLowerCase()
  return lower === 'true' ? true : lower === 'false' ? false : value
}

function cellInteger(value: string): unknown {
  return /^-?[0-9]+$/.test(value) ? Number(value) : value
}

const cellText = (value: string) => value
const cellOptional = (value: string) => (value === '' ? null : value)
const cellOptionalInteger = (value: string) => (value === '' ? null : cellInteger(value))

/**
 * The body field behind each column (in IMPORT_COLUMNS order), how a cell becomes that field's
 * value, and whether the field's good verdicts are remembered per distinct cell: worth it where
 * values repeat from row to row (kinds, makes, dates), not for identifiers. (Bad verdicts are
 * remembered in every column: a file of bad rows repeats its mistakes. A date's verdict is taken
 * once per import, so "not in the future" is judged as at the start of it.)
 */
const FIELDS: readonly { column: (typeof IMPORT_COLUMNS)[number]; field: Field; value: (cell: string) => unknown; repeats: boolean }[] = [
  { column: 'asset_tag', field: 'assetTag', value: cellText, repeats: false },
  { column: 'kind', field: 'kind', value: cellText, repeats: true },
  { column: 'make', field: 'make', value: cellText, repeats: true },
  { column: 'model', field: 'model', value: cellText, repeats: true },
  { column: 'serial_number', field: 'serialNumber', value: cellText, repeats: false },
  { column: 'imei', field: 'imei', value: cellOptional, repeats: false },
  { column: 'encrypted', field: 'encrypted', value: cellBoolean, repeats: true },
  { column: 'mdm_enrolled', field: 'mdmEnrolled', value: cellBoolean, repeats: true },
  { column: 'classification', field: 'classification', value: cellText, repeats: true },
  { column: 'purchased_on', field: 'purchasedOn', value: cellOptional, repeats: true },
  { column: 'cost_pence', field: 'costPence', value: cellOptionalInteger, repeats: true },
]

if (FIELDS.some(({ column }, i) => column !== IMPORT_COLUMNS[i])) throw new Error('FIELDS must follow IMPORT_COLUMNS')
const COLUMN_OF_FIELD = new Map<string, string>(FIELDS.map(({ field, column }) => [field, column]))

/** The JSON body a row stands for, as `POST /v1/devices` would receive it. */
function rowToBody(record: string[]): Record<string, unknown> {
  return Object.fromEntries(FIELDS.map(({ field, value }, i) => [field, value(record[i] ?? '')]))
}

/** Distinct cells remembered per field; past this a field's cells are checked one by one. */
const MAX_REMEMBERED = 10_000

/** A bad cell's verdict: how many issues its field's schema finds in it. */
class Invalid {
  constructor(readonly issues: number) {}
}

/**
 * Checks cells against their fields' schemas. `CreateDeviceBody` is a strict object of these
 * fields and nothing else, so a row passes exactly when each of its cells passes its field, with
 * each field's value as output, and the row's issues are its cells' issues.
 */
class CellChecker {
  private readonly schemas = FIELDS.map(({ field }) => CreateDeviceBody.shape[field] as z.ZodType)
  private readonly remembered = FIELDS.map(() => new Map<string, unknown>())

  /** The field's value for this cell, or its Invalid verdict. */
  check(index: number, cell: string): unknown {
    const remembered = this.remembered[index]!
    const known = remembered.get(cell)
    if (known !== undefined || remembered.has(cell)) return known
    const result = this.schemas[index]!.safeParse(FIELDS[index]!.value(cell))
    const value = result.success ? result.data : new Invalid(result.error.issues.length)
    if ((FIELDS[index]!.repeats || !result.success) && remembered.size < MAX_REMEMBERED) remembered.set(cell, value)
    return value
  }
}

/**
 * The file's text, or its refusal when it is not UTF-8: named by the first line that is not, rather
 * than read with U+FFFD in place of what it held. A line end (0x0A, 0x0D) is never part of a longer UTF-8
 * sequence, so lines can be checked apart, and one of them is the culprit.
 */
export function readImportFile(bytes: Buffer): { text: string } | { refused: ImportErrorList } {
  if (isUtf8(bytes)) return { text: bytes.toString('utf8') }
  // Lines end where the CSV reader ends them (CRLF, LF or a lone CR), so the line named is the one it would name.
  let line = 1
  for (let start = 0; ; line++) {
    const lf = bytes.indexOf(0x0a, start)
    const cr = bytes.indexOf(0x0d, start)
    const end = cr !== -1 && (lf === -1 || cr < lf) ? cr : lf
    if (end === -1 || !isUtf8(bytes.subarray(start, end))) break
    start = end + (bytes[end] === 0x0d && bytes[end + 1] === 0x0a ? 2 : 1)
  }
  return { refused: ImportErrors.of({ row: line, column: '', message: 'is not valid UTF-8 text (save the file as UTF-8)' }) }
}

/** Rows checked between two yields to the event loop (the reader also pauses in long stretches without rows): a big file must not stall every other request. */
const ROWS_PER_YIELD = 2_000

export interface ParseOptions {
  /** Where the good rows go (appended, in file order); a new set of columns if not given. */
  rows?: ImportRows
  /** Called before each yield to the event loop, with the number of errors so far. */
  progress?: (errors: number) => void
  /** The register's asset-tag scheme (ASSET_TAG_PATTERN), if it has one. */
  assetTagRule?: AssetTagRule
}

export type ParsedImport = { rows: ImportRows } & ImportErrorList

/** The index of the asset tag in FIELDS. */
const TAG = 0

/** Parses and checks the file; returns the good rows, in file order, and its errors. */
export async function parseImport(text: string, { rows = emptyRows(), progress, assetTagRule }: ParseOptions = {}): Promise<ParsedImport> {
  const errors = new ImportErrors()
  const firstTag = new Map<string, number>()
  const firstSerial = new Map<string, number>()
  const checker = new CellChecker()
  const values: unknown[] = new Array(FIELDS.length)
  const header = IMPORT_COLUMNS.join(',')
  let headerSeen = false
  let index = 0
  // Past one cell too many a record's cells are counted, not kept.
  for (const next of csvRecords(text, { maxCells: IMPORT_COLUMNS.length + 1 })) {
    if ('pause' in next) {
      progress?.(errors.count)
      await new Promise((resolve) => setImmediate(resolve))
      continue
    }
    // An unreadable file gets that one error: what was read of it before says little.
    if ('unreadable' in next) {
      const { line, message } = next.unreadable
      return { rows, ...ImportErrors.of({ row: line, column: '', message: `is not readable CSV: ${message}` }) }
    }
    const { record, width, line } = next
    if (!headerSeen) {
      if (width !== IMPORT_COLUMNS.length || record.join(',') !== header) break
      headerSeen = true
      continue
    }
    if (index > 0 && index % ROWS_PER_YIELD === 0) {
      progress?.(errors.count)
      await new Promise((resolve) => setImmediate(resolve))
    }
    index++
    if (width !== IMPORT_COLUMNS.length) {
      errors.add({ row: line, column: '', message: `has ${width} cells; expected ${IMPORT_COLUMNS.length}` })
      continue
    }
    let issues = 0
    let tagMismatch: string | undefined
    for (let i = 0; i < FIELDS.length; i++) {
      const value = checker.check(i, record[i]!)
      if (value instanceof Invalid) {
        issues += value.issues
        continue
      }
      values[i] = value
      if (i === TAG && assetTagRule) {
        tagMismatch = assetTagRule(value as string)
        if (tagMismatch) issues++
      }
    }
    if (issues > 0) {
      if (errors.full) {
        errors.addUnlisted(line, issues)
        continue
      }
      // The whole row through the schema, for its messages (and their order) exactly as `POST /v1/devices` gives them.
      const parsed = CreateDeviceBody.safeParse(rowToBody(record))
      if (tagMismatch) errors.add({ row: line, column: 'asset_tag', message: tagMismatch })
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          errors.add({ row: line, column: COLUMN_OF_FIELD.get(String(issue.path[0])) ?? '', message: issue.message })
        }
      }
      if (tagMismatch || !parsed.success) continue
      FIELDS.forEach(({ field }, i) => (values[i] = parsed.data[field] ?? null))
    }
    let duplicate = false
    const tag = (values[TAG] as string).toLowerCase()
    const serial = (values[4] as string).toLowerCase()
    const tagSeen = firstTag.get(tag)
    if (tagSeen !== undefined) {
      errors.add({ row: line, column: 'asset_tag', message: `repeats the asset tag of line ${tagSeen}` })
      duplicate = true
    } else firstTag.set(tag, line)
    const serialSeen = firstSerial.get(serial)
    if (serialSeen !== undefined) {
      errors.add({ row: line, column: 'serial_number', message: `repeats the serial number of line ${serialSeen}` })
      duplicate = true
    } else firstSerial.set(serial, line)
    if (duplicate) continue
    rows.line.push(line)
    for (let i = 0; i < FIELDS.length; i++) (rows[FIELDS[i]!.field] as unknown[]).push(values[i])
  }
  if (!headerSeen) return { rows, ...ImportErrors.of({ row: 1, column: '', message: `the header must be exactly: ${header}` }) }
  if (index === 0) errors.add({ row: 2, column: '', message: 'the file has no devices after the header' })
  return { rows, ...errors.list() }
}
