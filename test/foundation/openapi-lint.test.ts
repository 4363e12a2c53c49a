/**
 * The committed OpenAPI document under Redocly CLI's lint with the recommended rules (redocly.yaml):
 * no error and no warning. The recommended set includes `struct`, which validates the document
 * against the OpenAPI 3.1 schema (and its Schema Objects as JSON Schema 2020-12); the second test
 * shows that it and the other rules this one relies on are on, by linting a broken copy.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { OPENAPI_FILE } from '../../src/openapi-document.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const REDOCLY = path.join(ROOT, 'node_modules/@redocly/cli/bin/cli.js')
const CONFIG = path.join(ROOT, 'redocly.yaml')

interface LintProblem {
  ruleId: string
  severity: string
  message: string
  location: { pointer?: string }[]
}
interface LintReport {
  totals: { errors: number; warnings: number; ignored: number }
  problems: LintProblem[]
}

/** `redocly lint --format=json` on a file; it exits 1 when it finds errors, which is an answer here, not a failure. */
function lint(file: string): Promise<LintReport> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [REDOCLY, 'lint', file, '--format=json', `--config=${CONFIG}`],
      // No usage report sent, no update check: the test runs offline.
      { cwd: ROOT, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }, timeout: 120_000 },
      (error, stdout, stderr) => {
        try {
          resolve(JSON.parse(stdout))
        } catch {
          reject(new Error(`redocly lint gave no report (${error?.message ?? 'no error'}): ${stderr}`))
        }
      },
    )
  })
}

const summary = (report: LintReport) =>
  report.problems.map((problem) => `${problem.severity} ${problem.ruleId} at ${problem.location[0]?.pointer ?? '?'}: ${problem.message}`)

t.test('openapi/openapi.json: no error and no warning under the recommended rules, struct (the OpenAPI 3.1 schema) included', async (t) => {
  const report = await lint(path.relative(ROOT, OPENAPI_FILE))
  t.same(summary(report), [])
  t.same(report.totals, { errors: 0, warnings: 0, ignored: 0 }, 'nothing excused')
})

t.test('the lint finds what the rules are there for, in a broken copy of the document', async (t) => {
  const directory = await mkdtemp(path.join(tmpdir(), 'dlr-openapi-lint-'))
  t.teardown(() => rm(directory, { recursive: true, force: true }))
  const document = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'))
  document.servers = []
  delete document.paths['/v1/devices'].get.operationId
  delete document.paths['/v1/devices'].get.security
  delete document.info.title
  document.paths['/v1/devices/{id}'].get.parameters[0].in = 'body'
  document.paths['/v1/custodians'].post.requestBody.content['application/json'].example = { kind: 'alien', name: 'Zed', wings: 2 }
  document.components.schemas.Orphan = { type: 'object' }
  const file = path.join(directory, 'broken.json')
  await writeFile(file, JSON.stringify(document, null, 2))

  const report = await lint(file)
  const rules = new Set(report.problems.map((problem) => problem.ruleId))
  for (const rule of ['struct', 'no-empty-servers', 'operation-operationId', 'security-defined', 'no-invalid-media-type-examples', 'no-unused-components']) {
    t.ok(rules.has(rule), `${rule} reported`)
  }
  const structural = report.problems.filter((problem) => problem.ruleId === 'struct').map((problem) => problem.location[0]?.pointer)
  t.same(structural.sort(), ['#/info', '#/paths/~1v1~1devices~1{id}/get/parameters/0/in'], 'struct names the missing title and the parameter in no place')
  t.ok(report.totals.errors > 0)
})
