/** The tests' advisory-lock keys (test/helpers/locks.ts) are each used once and never one of the service's. */
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as testLocks from '../helpers/locks.js'

const SRC = fileURLToPath(new URL('../../src', import.meta.url))

t.test("the tests' advisory-lock keys collide neither with each other nor with the service's", async (t) => {
  const serviceKeys = new Set<number>()
  for (const file of await readdir(SRC, { recursive: true })) {
    if (!file.endsWith('.ts')) continue
    for (const [key] of (await readFile(path.join(SRC, file), 'utf8')).matchAll(/\b727_?274_?\d{3}\b/g)) serviceKeys.add(Number(key.replaceAll('_', '')))
  }
  t.ok(serviceKeys.has(727_274_101) && serviceKeys.has(727_274_201), 'the migration and audit chain keys are found in src')
  const keys = Object.values(testLocks)
  t.equal(new Set(keys).size, keys.length, 'each test key is used for one thing')
  for (const key of keys) t.notOk(serviceKeys.has(key), `${key} is not one of the service's keys`)
})
