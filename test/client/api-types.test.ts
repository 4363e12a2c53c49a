import { readFile } from 'node:fs/promises'
import t from 'tap'
import { OPENAPI_FILE } from '../../src/openapi-document.js'
import { API_TYPES_FILE, generateApiTypes } from '../../scripts/openapi-types.js'

t.test('test/client/api.d.ts is what openapi-typescript makes of the committed document (run `npm run openapi`)', async (t) => {
  t.equal(await readFile(API_TYPES_FILE, 'utf8'), await generateApiTypes())
})

t.test('the check fails when the document changes and the types do not', async (t) => {
  const document = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'))
  document.paths['/v1/drift-probe'] = { get: { operationId: 'driftProbe', summary: 'Probe', responses: { 200: { description: 'OK' } } } }
  t.not(await readFile(API_TYPES_FILE, 'utf8'), await generateApiTypes(document))
})
