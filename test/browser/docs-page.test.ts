/**
 * The interactive docs page in a real browser: `npm start`'s server, Debian's chromium driven by
 * playwright-core. `fetch` can only say the HTML arrives; this says the page actually renders the
 * API (its scripts load under the security headers, the document parses, every operation shows).
 */
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { startServer } from '../helpers/server-process.js'

const CHROMIUM = '/usr/bin/chromium'
const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'])
/** Paths a reader of the docs must be able to find; a sample, not the whole contract. */
const KNOWN_PATHS = ['/v1/incidents', '/v1/devices', '/v1/custodians', '/v1/exports/foi/lost-stolen']

const skip = existsSync(CHROMIUM) ? false : `chromium not installed: apt-get install -y chromium (no ${CHROMIUM})`

t.test(
  'GET /docs renders every operation of /openapi.json, with no console errors or failed requests',
  { skip },
  async (t) => {
    const { chromium } = await import('playwright-core')
    const started = Date.now()
    const dataDir = await mkdtemp(path.join(tmpdir(), 'dlr-browser-'))
    t.teardown(() => rm(dataDir, { recursive: true, force: true }))
    // Load shedding off: just after start on a busy CI machine the event-loop delay of start-up
    // trips it, and this test is about the page, not about shedding.
    const server = await startServer({ DATA_DIR: dataDir, LOG_LEVEL: 'warn', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' })
    t.teardown(() => server.stop('SIGKILL'))
    const serverStarted = Date.now()

    const answer = await fetch(`${server.url}/openapi.json`)
    t.equal(answer.status, 200, 'GET /openapi.json answers 200')
    const openapi = (await answer.json()) as {
      paths: Record<string, Record<string, unknown>>
    }
    const operations = Object.entries(openapi.paths ?? {}).flatMap(([route, item]) =>
      Object.keys(item)
        .filter((method) => METHODS.has(method))
        .map((method) => `${method.toUpperCase()} ${route}`),
    )
    t.ok(operations.length > 10, `the document lists the API's operations (${operations.length})`)

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    t.teardown(() => browser.close())
    const browserStarted = Date.now()
    const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } })
    const problems: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`)
    })
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    page.on('requestfailed', (request) =>
      problems.push(`request failed: ${request.url()} (${request.failure()?.errorText ?? 'unknown'})`),
    )
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`)
    })

    const response = await page.goto(`${server.url}/docs`, { waitUntil: 'load', timeout: 15_000 })
    t.equal(response?.status(), 200, 'the page itself answers 200')
    // swagger-ui fetches the document and then renders one .opblock per operation (per tag).
    // (A string: the test is type-checked without the DOM library.)
    await page
      .waitForFunction(`document.querySelectorAll('.opblock').length >= ${operations.length}`, undefined, { timeout: 15_000 })
      .catch(() => undefined)
    const rendered = await page.locator('.opblock').count()
    t.ok(rendered >= operations.length, `${rendered} operation blocks rendered for ${operations.length} operations`)

    // swagger-ui breaks long paths with zero-width spaces.
    const shownPaths = new Set(
      (await page.locator('.opblock-summary-path').allTextContents()).map((text) => text.replace(/[\u200b\s]/g, '')),
    )
    for (const known of KNOWN_PATHS) t.ok(openapi.paths?.[known], `${known} is in /openapi.json`)
    for (const known of KNOWN_PATHS) t.ok(shownPaths.has(known), `${known} is shown on the page`)
    const missing = operations.map((operation) => operation.split(' ')[1]).filter((route) => !shownPaths.has(route ?? ''))
    t.same(missing, [], 'every path of the document is shown on the page')

    await page.waitForLoadState('networkidle', { timeout: 5_000 }).catch(() => undefined)
    t.same(problems, [], 'no console errors, page errors or failed requests')

    const checked = Date.now()
    const shot = path.join(await mkdtemp(path.join(tmpdir(), 'dlr-docs-shot-')), 'api-docs.png')
    await page.screenshot({ path: shot })
    t.comment(`screenshot: ${shot}`)
    // The README's picture: written once, or again on request, and only from a page that passed.
    const readmeShot = path.join('docs', 'api-docs.png')
    if (t.passing() && (!existsSync(readmeShot) || process.env.UPDATE_DOCS_SCREENSHOT === '1')) {
      await mkdir('docs', { recursive: true })
      await copyFile(shot, readmeShot)
      t.comment(`copied to ${readmeShot}`)
    }
    t.comment(
      `server start ${serverStarted - started} ms, browser launch ${browserStarted - serverStarted} ms, ` +
        `page rendered and checked ${checked - browserStarted} ms, total ${Date.now() - started} ms`,
    )
  },
)
