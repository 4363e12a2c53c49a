/**
 * The OpenAPI document as the code generates it, serialised the way it is committed in
 * `openapi/openapi.json`. Used by `npm run openapi` and by the drift test.
 */
import { fileURLToPath } from 'node:url'
import { buildApp } from './app.js'
import type { Authenticator } from './auth/authenticator.js'
import { configWith } from './config.js'
import { connectPglite } from './db/client.js'

export const OPENAPI_FILE = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url))

/** Building the document runs no query and verifies no token. */
const noTokens: Authenticator = {
  mode: 'development-secret',
  remembered: () => undefined,
  verify: () => Promise.reject(new Error('not used')),
}

export function serialiseOpenApi(document: unknown): string {
  return `${JSON.stringify(document, null, 2)}\n`
}

export async function generateOpenApiDocument(): Promise<string> {
  const database = await connectPglite({})
  const app = await buildApp(configWith(), { database, authenticator: noTokens })
  try {
    await app.ready()
    return serialiseOpenApi(app.swagger())
  } finally {
    await app.close()
  }
}
