/**
 * `npm run retention`: a dry run prints what is due (ids and references, never a name) and erases
 * nothing; --apply erases it; without one of the two it says how to call it.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { configWith } from '../../src/config.js'
import { openDatabase } from '../../src/db/client.js'
import { runMigrations } from '../../src/db/migrate.js'
import { createMigratedPostgresDatabase, driverUnderTest } from '../helpers/database.js'
import { insertCustodian } from '../helpers/fixtures.js'

function retention(env: Record<string, string>, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/retention.ts', ...args], { env: { PATH: process.env.PATH ?? '', ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('dry run, then apply', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dlr-retention-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const env: Record<string, string> =
    driverUnderTest === 'postgres' ? { DATABASE_URL: (await createMigratedPostgresDatabase(t)).url, DATA_DIR: dataDir } : { DATA_DIR: dataDir }
  // PGlite allows one process at a time: set up, close, then let the CLI open it.
  const setUp = async () => {
    const database = await openDatabase(configWith(env))
    await runMigrations(database)
    const gone = await insertCustodian(database, { name: 'Formerly Here', active: false, leftOn: '2020-01-31' })
    await insertCustodian(database, { name: 'Still Here' })
    await database.close()
    return gone
  }
  const gone = await setUp()

  t.match(await retention(env), { code: 2, stderr: /usage: npm run retention -- --dry-run \| --apply/ })
  const dry = await retention(env, '--dry-run')
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.stdout, /^would erase: 1 custodian\(s\) who left more than 24 months ago; the free text of 0 incident\(s\)/)
  t.match(dry.stdout, new RegExp(`custodian ${gone.id}`))
  t.notMatch(dry.stdout, /Formerly|Still/, 'no names')
  const applied = await retention(env, '--apply')
  t.equal(applied.code, 0, applied.stderr)
  t.match(applied.stdout, /^erased: 1 custodian/)
  t.match((await retention(env, '--dry-run')).stdout, /^would erase: 0 custodian/, 'nothing left to do')

  const database = await openDatabase(configWith(env))
  t.teardown(() => database.close())
  t.same(await database.query('SELECT name FROM custodians ORDER BY name NULLS FIRST'), [{ name: null }, { name: 'Still Here' }])
})
