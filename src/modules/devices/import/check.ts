/**
 * The import's checks against the register, and its refusal. Registered identifiers are looked up
 * only once the import has failed (the file had errors, or a unique index refused a row), after
 * the rollback, so a clean import costs no lookups and a refused one names every such line.
 */
import { sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../../db/client.js'
import { problems } from '../../../plugins/problems.js'
import type { ImportError, ImportRows } from './parse.js'

/** Identifiers sent per lookup statement. */
const LOOKUP_BATCH = 10_000

/** Rows whose asset tag or serial number is already registered (any case). */
export async function existingIdentifiers(db: DbOrTx, rows: ImportRows): Promise<ImportError[]> {
  const errors: ImportError[] = []
  for (const [field, column, label] of [
    ['assetTag', 'asset_tag', 'asset tag'],
    ['serialNumber', 'serial_number', 'serial number'],
  ] as const) {
    const keys = rows[field].map((value) => value.toLowerCase())
    const taken = new Set<string>()
    for (let start = 0; start < keys.length; start += LOOKUP_BATCH) {
      const found = await rowsOf<{ value: string }>(
        db,
        sql`SELECT lower(${sql.identifier(column)}) AS value FROM devices
            WHERE lower(${sql.identifier(column)}) = ANY(${sql.param(keys.slice(start, start + LOOKUP_BATCH))}::text[])`,
      )
      for (const { value } of found) taken.add(value)
    }
    keys.forEach((key, i) => {
      if (taken.has(key)) errors.push({ row: rows.line[i]!, column, message: `a device with this ${label} is already registered` })
    })
  }
  return errors
}

/** The 422 for a file that cannot be imported: every error, by line (sorts `errors` in place). */
export function importProblem(errors: ImportError[]) {
  errors.sort((a, b) => a.row - b.row)
  const lines = new Set(errors.map((error) => error.row)).size
  return problems.unprocessable(
    `${lines} line(s) of the file cannot be imported; nothing was imported.`,
    errors.map((error) => ({ path: `body.line[${error.row}]${error.column ? `.${error.column}` : ''}`, ...error })),
  )
}
