/**
 * The benchmark is a tool, not a test (`npm test` never measures anything), but this test runs
 * its dry run so that it cannot rot: `bench/run.ts --quick --dry-run` creates and drops its own
 * database, loads a tiny data set, hits every measured endpoint once and prints every figure's
 * name. It needs a PostgreSQL server (the benchmark creates a database on it), so it runs only
 * when TEST_DATABASE_URL is set.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { TEST_DATABASE_URL, withAdmin } from '../helpers/database.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

const FIGURE_NAMES = [
  'load: rows/s',
  'device read: requests/s',
  'device read: p99',
  'device read: ratio to bare route',
  'device list first page: p99',
  'device list deep page: p99',
  'incident create: creates/s',
  'risk summary 1 year: latency',
  'risk summary 1 year: ratio to direct SQL',
  'risk summary 10 years: latency',
  'risk summary 10 years: ratio to direct SQL',
  'FOI export: rows/s',
  'FOI export: ratio to COPY',
  'FOI export: peak RSS',
  'CSV import: rows/s',
  'stocktake discrepancies: latency',
  'start-up embedded: time',
  'start-up PostgreSQL: time',
  'scaling: one instance requests/s',
  'scaling: two instances requests/s',
]

const databaseExists = (name: string) =>
  withAdmin(async (admin) => (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rows.length > 0)

t.test('npm run bench -- --quick --dry-run starts, answers every figure and cleans up', { skip: TEST_DATABASE_URL ? false : 'TEST_DATABASE_URL is not set: the benchmark needs a PostgreSQL server to create its database on' }, async (t) => {
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--dry-run'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
  t.equal(result.code, 0, `exits 0${result.code === 0 ? '' : `: ${result.stderr}`}`)
  for (const name of FIGURE_NAMES) t.ok(result.stdout.includes(`| ${name} `), `the table has a row for "${name}"`)
  t.match(result.stdout, /DRY RUN/, 'says the values are not measurements')
  t.notMatch(result.stdout, /wrote bench\/results\.json/, 'a dry run leaves bench/results.json alone')
  const created = /database (dlr_bench_[0-9a-f]+) created/.exec(result.stdout)?.[1]
  t.ok(created, 'it says which database it created')
  t.match(result.stdout, `database ${created} dropped`, 'and that it dropped it')
  t.equal(await databaseExists(created!), false, 'the database it created is gone')
})
