/**
 * Load generation with wrk (a separate C process, so the load generator does not share the
 * service's event loop), driven by the Lua scripts in bench/wrk/, each ending with report.lua's
 * one-line JSON summary.
 */
import { execFile, execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const LUA_DIR = fileURLToPath(new URL('./wrk', import.meta.url))

export interface WrkResult {
  requests: number
  durationUs: number
  p50Us: number
  p99Us: number
  maxUs: number
  /** Responses with a status of 400 or more. */
  non2xx: number
  socketErrors: number
}

export interface WrkRun {
  url: string
  script: 'get.lua' | 'post-incidents.lua'
  connections: number
  threads: number
  seconds: number
  env: Record<string, string>
}

export function haveWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' })
    return true
  } catch (error) {
    // wrk --version exits 1 after printing its version; only a missing binary is ENOENT.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT'
  }
}

export function runWrk(run: WrkRun): Promise<WrkResult> {
  const args = [
    `-t${run.threads}`,
    `-c${run.connections}`,
    `-d${run.seconds}s`,
    '--latency',
    '--timeout',
    '10s',
    '-s',
    `${LUA_DIR}/${run.script}`,
    run.url,
  ]
  const env = { ...process.env, ...run.env, BENCH_LUA_DIR: LUA_DIR, BENCH_THREADS: String(run.threads) }
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`wrk failed: ${error.message}\n${stderr}`))
      const line = stdout.split('\n').find((text) => text.startsWith('BENCH_RESULT '))
      if (!line) return reject(new Error(`wrk printed no result:\n${stdout}\n${stderr}`))
      resolve(JSON.parse(line.slice('BENCH_RESULT '.length)) as WrkResult)
    })
  })
}

export const requestsPerSecond = (result: WrkResult) => result.requests / (result.durationUs / 1e6)
export const okPerSecond = (result: WrkResult) => (result.requests - result.non2xx) / (result.durationUs / 1e6)
