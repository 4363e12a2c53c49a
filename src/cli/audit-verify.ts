/**
 * `npm run audit:verify -- FILE --public-key KEY.jwk`: checks an audit export
 * (`GET /v1/audit-events/export`) offline, trusting nothing but the public key
 * (`GET /v1/audit-checkpoints/public-key`): every link, every checkpoint's signature, and that the
 * chain holds each checkpoint's count up to its signed head — the service's own check
 * (modules/audit/verify.ts), over the file. Read line by line: any size of file, flat memory.
 *
 * Prints the verdict (JSON) and exits 0 when the trail holds; exits 1 naming the first bad event
 * when it does not (a file that no checkpoint covers is not ok either: nothing in it is signed);
 * 2 when the file or the key cannot be read.
 */
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { publicKeyFromJwk } from '../modules/audit/signing-key.js'
import { ChainChecker, TrailLineSchema } from '../modules/audit/verify.js'

const usage = 'usage: npm run audit:verify -- FILE --public-key KEY.jwk'

function fail(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`)
  process.exit(2)
}

let parsed: ReturnType<typeof parse>
function parse() {
  return parseArgs({ options: { 'public-key': { type: 'string' } }, allowPositionals: true, strict: true })
}
try {
  parsed = parse()
} catch (error) {
  fail((error as Error).message)
}
const { values, positionals } = parsed
if (positionals.length !== 1) fail('name one export file')
if (!values['public-key']) fail('--public-key is required: the JWK from GET /v1/audit-checkpoints/public-key')
const file = positionals[0]!

let publicKey
try {
  publicKey = publicKeyFromJwk(await readFile(values['public-key'], 'utf8'))
} catch (error) {
  fail(`${values['public-key']}: ${(error as Error).message}`)
}

const checker = new ChainChecker(publicKey)
const input = createReadStream(file, { encoding: 'utf8' })
input.on('error', (error) => fail(`${file}: ${error.message}`))
const lines = createInterface({ input, crlfDelay: Infinity })
let number = 0
for await (const text of lines) {
  number++
  if (text.trim() === '') continue
  let line
  try {
    line = TrailLineSchema.parse(JSON.parse(text))
  } catch {
    checker.fail('broken_link', null, `line ${number} is not an event or a checkpoint of an audit export`)
    break
  }
  const intact = checker.add(line)
  if (!(intact === true || (intact !== false && (await intact)))) break
}
lines.close()
input.destroy()

const verdict = checker.finish({ requireCheckpoint: true })
process.stdout.write(`${JSON.stringify(verdict, null, 2)}\n`)
if (!verdict.ok) {
  process.stderr.write(`${file}: not intact: ${verdict.firstBadId === null ? '' : `first bad event ${verdict.firstBadId}, `}${verdict.problem}: ${verdict.detail}\n`)
  process.exit(1)
}
process.stderr.write(`${file}: intact: ${verdict.detail}\n`)
