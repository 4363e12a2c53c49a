/**
 * The first thing a new user does: `npm start` with nothing configured, on the embedded database.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { startServer } from '../helpers/server-process.js'

t.test('starts with no variables set, answers the operational routes, and stops cleanly on SIGTERM', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dlr-smoke-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))

  const server = await startServer({ DATA_DIR: dataDir })
  t.teardown(() => server.stop('SIGKILL'))
  t.equal((await fetch(`${server.url}/healthz`)).status, 200)
  t.equal((await fetch(`${server.url}/readyz`)).status, 200)
  const document = (await (await fetch(`${server.url}/openapi.json`)).json()) as { openapi: string }
  t.equal(document.openapi, '3.1.0')
  const docs = await fetch(`${server.url}/docs/`)
  t.equal(docs.status, 200)
  t.match(await docs.text(), /swagger-ui/i)
  t.match(server.output(), /npm run token -- --role security/, 'the start-up log says how to mint a token')
  t.equal(await server.stop('SIGTERM'), 0, 'exit 0 on SIGTERM')

  const again = await startServer({ DATA_DIR: dataDir })
  t.teardown(() => again.stop('SIGKILL'))
  t.equal((await fetch(`${again.url}/readyz`)).status, 200, 'a second start on the same DATA_DIR works')
  t.equal(await again.stop('SIGINT'), 0, 'exit 0 on SIGINT')
})
