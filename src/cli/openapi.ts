/** `npm run openapi`: writes the OpenAPI document the code generates to openapi/openapi.json. */
import { writeFile } from 'node:fs/promises'
import { generateOpenApiDocument, OPENAPI_FILE } from '../openapi-document.js'

const document = await generateOpenApiDocument()
await writeFile(OPENAPI_FILE, document)
process.stdout.write(`wrote ${OPENAPI_FILE}\n`)
