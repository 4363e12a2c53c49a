/**
 * Many rows in one parameter: rows keyed by their columns' database names, as the JSON that
 * `jsonb_populate_recordset(NULL::<table>, $1)` turns back into rows of that table. A statement
 * over a batch of rows then has one parameter whatever their number, so its text is the same for
 * every batch and can be prepared.
 */
import { getTableColumns, type Table } from 'drizzle-orm'

const namesByTable = new WeakMap<Table, [key: string, name: string][]>()

export function rowsAsJson<T extends Table>(table: T, rows: readonly Partial<T['$inferSelect']>[]): string {
  let names = namesByTable.get(table)
  if (!names) namesByTable.set(table, (names = Object.entries(getTableColumns(table)).map(([key, column]) => [key, column.name])))
  return JSON.stringify(
    rows.map((row) => {
      const record: Record<string, unknown> = {}
      for (const [key, name] of names) {
        const value = (row as Record<string, unknown>)[key]
        if (value !== undefined) record[name] = value
      }
      return record
    }),
  )
}
