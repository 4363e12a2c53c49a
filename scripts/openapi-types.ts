/** Second half of `npm run openapi`: test/client/api.d.ts, the API's types, from the document just written. */
import { writeFile } from 'node:fs/promises'
import { API_TYPES_FILE, generateApiTypes } from '../test/client/api-types.js'

await writeFile(API_TYPES_FILE, await generateApiTypes())
process.stdout.write(`wrote ${API_TYPES_FILE}\n`)
