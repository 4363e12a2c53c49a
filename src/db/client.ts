/**
 * The database layer: one Drizzle schema, two drivers.
 *
 * - `DATABASE_URL` set: a node-postgres Pool with connect, statement and idle-in-transaction
 *   timeouts, and pool errors logged (a dropped idle connection must never crash the process);
 *   and a second, small pool with the same limits for the heavy routes (`heavy`), so that however
 *   many exports, imports and reports run, and however slowly their clients read, the main pool
 *   keeps its connections for everything else.
 * - unset: embedded PostgreSQL (PGlite) persisted under `DATA_DIR`, so the service runs on a fresh
 *   machine with nothing installed.
 *
 * Everything above this file sees a `Database`: the Drizzle handle plus `ping` and `close`.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import type { ExtractTablesWithRelations, SQL } from 'drizzle-orm'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import pg from 'pg'
import * as schema from './schema.js'

export type Schema = typeof schema
/** The Drizzle handle, whichever driver is underneath. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>
/** Either a plain handle or an open transaction: what domain functions take. */
export type DbOrTx = Db | Tx

interface DatabaseBase {
  readonly db: Db
  /** Resolves when the database answers a trivial query; rejects otherwise. */
  ping(): Promise<void>
  /** Plain SQL with positional parameters ($1, $2, ...), for tests, tools and hand-tuned reports. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>
  close(): Promise<void>
}

/**
 * The database, typed by its driver: only code in `src/db/` looks past `db`, `query` and `ping`
 * to the pool or the embedded client (streaming, migrations, dumps, dedicated sessions).
 * `heavy` is what the heavy routes run on: on PostgreSQL a Database of its own pool (whose
 * `heavy` is itself), closed with this one; on PGlite this same database (one embedded connection).
 */
export type Database =
  | (DatabaseBase & { readonly driver: 'postgres'; readonly pool: pg.Pool; readonly heavy: PostgresDatabase })
  | (DatabaseBase & { readonly driver: 'pglite'; readonly client: PGlite; readonly heavy: PgliteDatabase })
export type PostgresDatabase = Extract<Database, { driver: 'postgres' }>
export type PgliteDatabase = Extract<Database, { driver: 'pglite' }>

export interface PostgresOptions {
  url: string
  poolMax: number
  /**
   * The heavy routes' own pool, of this size. Absent: one pool serves everything (`heavy` is the
   * database itself), for tools and benchmarks that serve no requests.
   */
  heavyPoolMax?: number
  connectTimeoutMs: number
  statementTimeoutMs: number
  idleInTransactionTimeoutMs: number
  /** Where a lost idle connection is reported (the app's logger, once there is one). */
  logger?: { warn(details: object, message: string): void }
}

/**
 * Every new connection: the pool listens for errors only on idle clients, so a client checked
 * out for a transaction whose connection drops would emit 'error' with nobody listening and crash
 * the process. Its queries fail anyway (the request gets a 503). And a query that hit the
 * client-side `query_timeout` leaves the connection waiting for an answer that will never come,
 * with every later query queued behind it: such a connection is closed, never reused.
 */
function guardConnection(client: pg.PoolClient): void {
  client.on('error', () => {})
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  ;(client as unknown as { query: typeof query }).query = (...args: unknown[]) => {
    const result = query(...args)
    if (result instanceof Promise) {
      result.catch((error: unknown) => {
        if (error instanceof Error && error.message === 'Query read timeout') {
          const internals = client as unknown as { connection?: { stream?: { destroy(): void } } }
          if (internals.connection?.stream) internals.connection.stream.destroy()
          else void client.end().catch(() => {})
        }
      })
    }
    return result
  }
}

/**
 * Drizzle sends BEGIN before its try/finally, so a transaction whose BEGIN fails (the connection
 * just dropped or went silent) never releases its client: each such failure would shrink the pool
 * by one until no request could get a connection. A checked-out client whose connection ends is
 * therefore released (and discarded) here; the later release by its user, if any, is a no-op.
 */
function guardCheckouts(pool: pg.Pool): void {
  const connect = pool.connect.bind(pool) as (callback?: unknown) => Promise<pg.PoolClient> | undefined
  const guarded = (callback?: unknown) => {
    // The callback form is the pool's own (pool.query), which releases on error itself.
    if (callback) return connect(callback)
    return connect()!.then((client) => {
      const release = client.release.bind(client)
      let released = false
      const releaseOnce = (error?: Error | boolean) => {
        if (released) return
        released = true
        client.removeListener('end', onEnd)
        release(error)
      }
      const onEnd = () => releaseOnce(new Error('the connection ended while checked out'))
      client.once('end', onEnd)
      client.release = releaseOnce
      return client
    })
  }
  pool.connect = guarded as typeof pool.connect
}

const APPLICATION_NAME = 'device-loss-register'

/** One pool with the service's limits and guards; `name` tells its connections apart in pg_stat_activity. */
function createPool(options: PostgresOptions, max: number, name: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max,
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    // Server-side limits: a runaway query or a transaction left open by a bug ends on its own.
    statement_timeout: options.statementTimeoutMs,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs,
    // Client-side limit, a little longer, for when the server stops answering altogether.
    query_timeout: options.statementTimeoutMs + 5_000,
    application_name: name,
  })
  // An idle client whose connection drops (database restart, pg_terminate_backend) emits 'error'
  // on the pool; unhandled, that would crash the process. The pool discards the client itself.
  pool.on('error', (error) => {
    options.logger?.warn({ err: error }, 'database connection lost; the pool will reconnect')
  })
  pool.on('connect', guardConnection)
  guardCheckouts(pool)
  return pool
}

/** The Database on one pool; closing it closes `heavy` too when that is another pool's. */
function databaseOn(pool: pg.Pool, heavy?: PostgresDatabase): PostgresDatabase {
  const db = drizzlePg(pool, { schema }) as unknown as Db
  let closed = false
  const database: PostgresDatabase = {
    driver: 'postgres',
    pool,
    db,
    get heavy() {
      return heavy ?? database
    },
    async ping() {
      await pool.query('SELECT 1')
    },
    async query<T>(text: string, params: unknown[] = []) {
      return (await pool.query(text, params)).rows as T[]
    },
    async close() {
      if (closed) return
      closed = true
      await Promise.all([pool.end(), heavy?.close()])
    },
  }
  return database
}

export function connectPostgres(options: PostgresOptions): PostgresDatabase {
  const heavy =
    options.heavyPoolMax === undefined ? undefined : databaseOn(createPool(options, options.heavyPoolMax, `${APPLICATION_NAME} (heavy)`))
  return databaseOn(createPool(options, options.poolMax, APPLICATION_NAME), heavy)
}

export interface PgliteOptions {
  /** A directory to persist into; `undefined` keeps the database in memory (tests). */
  dataDir?: string
  /** A dump from `PGlite.dumpDataDir()` to start from (tests clone a migrated database this way). */
  loadDataDir?: Blob | File
}

export async function connectPglite(options: PgliteOptions): Promise<PgliteDatabase> {
  if (options.dataDir) await mkdir(options.dataDir, { recursive: true })
  const client = await PGlite.create({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
    extensions: { pg_trgm },
  })
  const db = drizzlePglite(client, { schema }) as unknown as Db
  const database: PgliteDatabase = {
    driver: 'pglite',
    client,
    db,
    // One embedded connection: there is no second pool to give the heavy routes.
    get heavy() {
      return database
    },
    async ping() {
      await client.query('SELECT 1')
    },
    async query<T>(text: string, params: unknown[] = []) {
      return (await client.query<T>(text, params)).rows
    },
    async close() {
      if (!client.closed) await client.close()
    },
  }
  return database
}

export interface DatabaseConfig {
  DATABASE_URL?: string | undefined
  DATA_DIR: string
  DB_POOL_MAX: number
  DB_HEAVY_POOL_MAX: number
  DB_CONNECT_TIMEOUT_MS: number
  DB_STATEMENT_TIMEOUT_MS: number
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: number
}

/** Opens the database the configuration names. */
export async function openDatabase(config: DatabaseConfig, logger?: PostgresOptions['logger']): Promise<Database> {
  if (config.DATABASE_URL) {
    return connectPostgres({
      url: config.DATABASE_URL,
      poolMax: config.DB_POOL_MAX,
      heavyPoolMax: config.DB_HEAVY_POOL_MAX,
      connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
      idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
      ...(logger ? { logger } : {}),
    })
  }
  return connectPglite({ dataDir: path.join(config.DATA_DIR, 'pgdata') })
}

/** Runs a hand-written SQL query through Drizzle and returns its rows: `{ rows }` on both drivers. */
export async function rowsOf<T>(db: DbOrTx, query: SQL): Promise<T[]> {
  return ((await db.execute(query)) as unknown as { rows: T[] }).rows
}
