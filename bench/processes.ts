/** What the benchmarks (bench/run.ts, bench/read.ts) share: the server they use, the service's environment, child processes. */
import { spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'

/** Runs a command to its end: its exit code and everything it wrote. */
export function runProcess(command: string, argv: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, output }))
  })
}

/** A loopback port nobody is listening on. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}

/** The URL of `database` on the server that `serverUrl` names. */
export function urlOn(serverUrl: string, database: string): string {
  const url = new URL(serverUrl)
  url.pathname = `/${database}`
  return url.toString()
}

/** A fixed key is enough to measure signing; a deployment's key is its own secret. */
const BENCH_AUDIT_SIGNING_KEY = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', d: 'ODRGwFiRkrqQgT-q4XnVMirm3HhCZxqdfktFp9mWZFc', x: 'Hg1IvB2cOm9ATPquXoUdXo2rhHGMT1QW9VZmFlYi86g' })

/** The PostgreSQL server the benchmarks create their databases on. */
export const BENCH_SERVER_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'

/**
 * The service as deployed, except that the per-caller rate limits are raised out of reach: a
 * benchmark is one caller asking as fast as it can, which is what they exist to refuse. The
 * limiter still runs (in memory), so its cost is measured. Load shedding keeps its defaults.
 */
export function serviceEnv(secret: string) {
  return {
    NODE_ENV: 'production',
    AUTH_JWT_SECRET: secret,
    AUDIT_SIGNING_KEY: BENCH_AUDIT_SIGNING_KEY,
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_HEAVY_PER_MINUTE: '1000000',
  }
}
