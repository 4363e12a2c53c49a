/**
 * For the audit-trail tests: a trail with two checkpoints, changes made as a superuser past the
 * append-only triggers, and the export checked offline by `npm run audit:verify` in a child process.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { sql } from 'drizzle-orm'
import type { Database } from '../../src/db/client.js'
import type { TestApp } from '../helpers/app.js'

const run = promisify(execFile)

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Link {
  seq: number
  eventId: number
  hash: string
}

export const linksOf = (database: Database) =>
  database.query<Link>('SELECT seq::int AS seq, event_id::int AS "eventId", hash FROM audit_chain ORDER BY seq')

async function createCustodian(app: TestApp['app'], headers: Record<string, string>, name: string) {
  const response = await app.inject({ method: 'POST', url: '/v1/custodians', headers, payload: { kind: 'staff', name, email: `${name.replace(/\W/g, '.')}@parliament.uk` } })
  if (response.statusCode !== 201) throw new Error(`create failed: ${response.body}`)
}

/**
 * Links 1–4: custodians; checkpoint 1 (count 4); 5: its event; 6–9: custodians; checkpoint 2
 * (count 9); 10: its event. Everything linked. Returns the links, the event id of each seq at
 * `event(seq)`.
 */
export async function trailWithCheckpoints({ app, auth, database }: Pick<TestApp, 'app' | 'auth' | 'database'>) {
  const headers = await auth('asset_manager', 'alice@parliament')
  for (let i = 1; i <= 4; i++) await createCustodian(app, headers, `Person ${i}`)
  const first = await app.auditCheckpoints.checkpoint()
  for (let i = 5; i <= 8; i++) await createCustodian(app, headers, `Person ${i}`)
  const second = await app.auditCheckpoints.checkpoint()
  await app.auditLinker.link()
  const links = await linksOf(database)
  if (first?.count !== 4 || second?.count !== 9 || links.length !== 10) throw new Error(`unexpected trail: ${JSON.stringify({ first, second, links: links.length })}`)
  return { links, event: (seq: number) => links[seq - 1]!.eventId, checkpoints: [first, second] as const }
}

/** Runs `statements` in one transaction with the user triggers of the audit tables off (a superuser can). */
export async function pastTheTriggers(database: Database, statements: string[]) {
  const tables = ['audit_events', 'audit_chain', 'audit_checkpoints', 'audit_personal_values']
  await database.db.transaction(async (tx) => {
    for (const table of tables) await tx.execute(sql.raw(`ALTER TABLE ${table} DISABLE TRIGGER USER`))
    for (const statement of statements) await tx.execute(sql.raw(statement))
    // The kept values' foreign key is deferred: its checks must run before the triggers can change.
    await tx.execute(sql.raw('SET CONSTRAINTS ALL IMMEDIATE'))
    for (const table of tables) await tx.execute(sql.raw(`ALTER TABLE ${table} ENABLE TRIGGER USER`))
  })
}

/** GET /v1/audit-events/verify's verdict. */
export async function verifyOnline({ app, auth }: Pick<TestApp, 'app' | 'auth'>) {
  const response = await app.inject({ method: 'GET', url: '/v1/audit-events/verify', headers: await auth('security') })
  if (response.statusCode !== 200) throw new Error(`verify: ${response.statusCode} ${response.body}`)
  return response.json()
}

export interface CliResult {
  code: number
  verdict: Record<string, unknown> | undefined
  stdout: string
  stderr: string
}

/** `node --import tsx src/cli/audit-verify.ts FILE --public-key KEY` on these files; never rejects. */
export async function auditVerifyCli(file: string, keyFile: string, extra: string[] = []): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/audit-verify.ts', file, '--public-key', keyFile, ...extra], { cwd: process.cwd() })
    return { code: 0, verdict: JSON.parse(stdout), stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    let verdict: Record<string, unknown> | undefined
    try {
      verdict = JSON.parse(failed.stdout ?? '')
    } catch {
      verdict = undefined
    }
    return { code: failed.code ?? -1, verdict, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' }
  }
}

/** A temp folder for this test, removed when it ends. */
export async function tempDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dlr-audit-export-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** The export (GET /v1/audit-events/export) and the public key, written to files in `dir`. */
export async function exportToFiles({ app, auth }: Pick<TestApp, 'app' | 'auth'>, dir: string) {
  const headers = await auth('security')
  const exported = await app.inject({ method: 'GET', url: '/v1/audit-events/export', headers })
  if (exported.statusCode !== 200) throw new Error(`export: ${exported.statusCode} ${exported.body}`)
  const key = await app.inject({ method: 'GET', url: '/v1/audit-checkpoints/public-key', headers })
  const file = path.join(dir, 'trail.ndjson')
  const keyFile = path.join(dir, 'public.jwk')
  await writeFile(file, exported.body)
  await writeFile(keyFile, key.body)
  return { file, keyFile, body: exported.body, headers: exported.headers }
}

/** Through the export and the CLI: the offline verdict. */
export async function verifyOffline(testApp: Pick<TestApp, 'app' | 'auth'>, t: Teardown): Promise<CliResult> {
  const { file, keyFile } = await exportToFiles(testApp, await tempDir(t))
  return auditVerifyCli(file, keyFile)
}
