import type { App } from '../../src/app.js'

/** The one walk through a paged list (following nextCursor to null); a non-200 page or an endless walk throws, failing the test. */
export async function walkPages<T = Record<string, unknown>>(app: App, url: string, headers: Record<string, string>, maxPages = 100) {
  const pages: T[][] = []
  let cursor: string | null = null
  do {
    if (pages.length === maxPages) throw new Error(`GET ${url}: still a nextCursor after ${maxPages} pages`)
    const pageUrl: string = cursor === null ? url : `${url}${url.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}`
    const response = await app.inject({ method: 'GET', url: pageUrl, headers })
    if (response.statusCode !== 200) throw new Error(`GET ${pageUrl}: ${response.statusCode} ${response.body}`)
    const page: { items: T[]; nextCursor: string | null } = response.json()
    pages.push(page.items)
    cursor = page.nextCursor
  } while (cursor !== null)
  return { pages, items: pages.flat() }
}
