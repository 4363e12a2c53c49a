/**
 * The import's checks against the register, and its refusal. Registered identifiers are looked up
 * only once the import has failed (the file had errors, or a unique index refused a row), after
 * the rollback, so a clean import costs no lookups and a refused one names such lines too.
 */
import { sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../../db/client.js'
import { problems } from '../../../plugins/problems.js'
import { type ImportErrorList, ImportErrors, type ImportRows, MAX_LISTED_ERRORS } from './parse.js'

/** Rows sent per lookup statement. */
const LOOKUP_BATCH = 10_000

/**
 * Rows whose asset tag or serial number is already registered (any case), in file order. Each
 * statement answers with the positions of such rows in its batch, so that neither the rows'
 * identifiers nor those found are held a second time, however many there are.
 */
export async function existingIdentifiers(db: DbOrTx, rows: ImportRows): Promise<ImportErrorList> {
  const errors = new ImportErrors()
  for (let start = 0; start < rows.line.length; start += LOOKUP_BATCH) {
    const end = Math.min(start + LOOKUP_BATCH, rows.line.length)
    const found = await rowsOf<{ n: number; tag: boolean; serial: boolean }>(
      db,
      sql`SELECT n, tag, serial FROM (
            SELECT k.n::int AS n,
                   EXISTS (SELECT 1 FROM devices d WHERE lower(d.asset_tag) = lower(k.tag)) AS tag,
                   EXISTS (SELECT 1 FROM devices d WHERE lower(d.serial_number) = lower(k.serial)) AS serial
            FROM unnest(${sql.param(rows.assetTag.slice(start, end))}::text[], ${sql.param(rows.serialNumber.slice(start, end))}::text[])
                 WITH ORDINALITY AS k(tag, serial, n)) AS checked
          WHERE tag OR serial
          ORDER BY n`,
    )
    for (const { n, tag, serial } of found) {
      const row = rows.line[start + n - 1]!
      if (tag) errors.add({ row, column: 'asset_tag', message: 'a device with this asset tag is already registered' })
      if (serial) errors.add({ row, column: 'serial_number', message: 'a device with this serial number is already registered' })
    }
  }
  return errors.list()
}

/**
 * The 422 for a file that cannot be imported: its first errors in file order, with how many there
 * are in all. The lists come from checks of different lines (the file's bad lines; its good lines
 * that are registered already), so their first errors together hold the first of all.
 */
export function importProblem(...lists: ImportErrorList[]) {
  const first = lists
    .flatMap((list) => list.errors)
    .sort((a, b) => a.row - b.row)
    .slice(0, MAX_LISTED_ERRORS)
  const errorCount = lists.reduce((sum, list) => sum + list.errorCount, 0)
  const lines = lists.reduce((sum, list) => sum + list.errorLines, 0)
  const listed = errorCount > first.length ? ` The first ${first.length} of its ${errorCount} errors are listed.` : ''
  return problems.unprocessable(
    `${lines} line(s) of the file cannot be imported; nothing was imported.${listed}`,
    first.map((error) => ({ path: `body.line[${error.row}]${error.column ? `.${error.column}` : ''}`, ...error })),
    { errorCount },
  )
}
