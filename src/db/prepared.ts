/**
 * Prepared queries and statements for the hot paths: reads by id (`preparedQuery`, from Drizzle's
 * query builder) and the hand-written writes (`preparedStatement`).
 *
 * Drizzle builds a query's SQL text and its column mapping on every call; for a one-row read that
 * building cost more CPU than everything else in the request (see bench/README.md). A query
 * prepared here is built once per database handle and, on node-postgres, sent as a named
 * statement, so PostgreSQL parses it once per connection too.
 *
 * A prepared query belongs to the handle it was built on, so it is only used on the root handle:
 * inside a transaction the query is built as usual and runs on the transaction's connection.
 */
import type { SQL } from 'drizzle-orm'
import { PgTransaction } from 'drizzle-orm/pg-core'
import type { Db, DbOrTx } from './client.js'

export interface Prepared<Params, Row> {
  execute(params: Params): Promise<Row[]>
}

/**
 * `build(db)` is called once per root handle with `prepare(name)` at its end; on a transaction
 * it is called each time without preparing. Names must be unique across the service.
 */
export function preparedQuery<Params extends Record<string, unknown>, Row>(
  name: string,
  build: (db: DbOrTx) => { prepare(name: string): Prepared<Params, Row>; execute(params: Params): Promise<Row[]> },
): (db: DbOrTx, params: Params) => Promise<Row[]> {
  const byHandle = new WeakMap<Db, Prepared<Params, Row>>()
  return (db, params) => {
    if (db instanceof PgTransaction) return build(db).execute(params)
    let prepared = byHandle.get(db)
    if (!prepared) {
      prepared = build(db).prepare(name)
      byHandle.set(db, prepared)
    }
    return prepared.execute(params)
  }
}

interface Session {
  prepareQuery(query: unknown, fields: undefined, name: string | undefined, arrayMode: boolean): { execute(values: Record<string, unknown>): Promise<unknown> }
}
interface Internals {
  dialect: { sqlToQuery(query: SQL): unknown }
  session: Session
}

/**
 * A hand-written statement (CTEs and all), with `sql.placeholder`s for its values, turned into SQL
 * text once per process and sent as a named statement on every handle, transactions included
 * (node-postgres parses a name once per connection). For the hot writes, where building the text
 * and PostgreSQL's parse and plan cost more than the statement's own work.
 *
 * It uses the session API that Drizzle's own `db.execute` goes through (prepareQuery on the
 * handle's session); the statement's text does not depend on the handle, only the session does.
 */
export function preparedStatement<Row>(name: string, build: () => SQL): (db: DbOrTx, values: Record<string, unknown>) => Promise<Row[]> {
  let query: unknown
  return async (db, values) => {
    const { dialect, session } = db as unknown as Internals
    query ??= dialect.sqlToQuery(build())
    const result = (await session.prepareQuery(query, undefined, name, false).execute(values)) as { rows: Row[] }
    return result.rows
  }
}
