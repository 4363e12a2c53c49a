/** Test data and clients for the export tests: many incidents at once, and a client that reads slowly. */
import net from 'node:net'
import { getTableColumns } from 'drizzle-orm'
import type { Database } from '../../src/db/client.js'
import { incidents } from '../../src/db/schema.js'
import { insertIncident } from '../helpers/fixtures.js'

/**
 * `rows` closed incidents of one device (a device may have many), spread over 2023 at 150 s
 * intervals: the first from the shared fixture, the others copies of it with their own id,
 * reference (`INC-2023-000001` on), kind and times.
 */
export async function bulkInsertIncidents(database: Database, rows: number) {
  const first = await insertIncident(database, {
    reference: 'INC-2023-000001', reportedAt: '2023-01-01T00:02:30Z', kind: 'stolen', status: 'closed', remoteWipe: 'requested',
    circumstances: 'Bulk circumstances', closeReason: 'Bulk write-off',
  })
  const copied: Record<string, string> = {
    id: 'gen_random_uuid()',
    reference: "'INC-2023-' || lpad(g::text, 6, '0')",
    kind: "(CASE WHEN g % 2 = 0 THEN 'lost' ELSE 'stolen' END)::incident_kind",
    reported_at: "i.reported_at + (g - 1) * interval '150 seconds'",
    closed_at: "i.closed_at + (g - 1) * interval '150 seconds'",
  }
  const columns = Object.values(getTableColumns(incidents)).map((column) => column.name)
  await database.query(
    `INSERT INTO incidents (${columns.join(', ')})
     SELECT ${columns.map((column) => copied[column] ?? `i.${column}`).join(', ')}
     FROM incidents AS i, generate_series(2, $2::int) AS g WHERE i.id = $1`,
    [first.id, rows],
  )
}

/**
 * An HTTP/1.1 GET on a raw socket whose response is read `bytes` at a time every `everyMs` (the
 * socket paused in between, so the server meets the back-pressure of a slow client, not a buffer
 * in this process). `drain()` then reads the rest as fast as it comes.
 */
export class SlowReader {
  readonly socket: net.Socket
  readonly startedAt = performance.now()
  /** When the status line arrived (ms after the start), once it has. */
  answeredAfterMs: number | undefined
  /** When the server ended the connection (ms after the start), once it has. */
  closedAfterMs: number | undefined
  readonly closed: Promise<void>
  private received: Buffer[] = []
  private bytes = 0
  private readonly timer: NodeJS.Timeout

  constructor(port: number, path: string, headers: Record<string, string>, { bytes, everyMs }: { bytes: number; everyMs: number }) {
    this.socket = net.connect({ port, host: '127.0.0.1' })
    // The server may reset a connection it ends: that is the outcome under test, not a failure.
    this.socket.on('error', () => {})
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.closedAfterMs = performance.now() - this.startedAt
        resolve()
      }),
    )
    this.socket.pause()
    const lines = Object.entries({ host: '127.0.0.1', ...headers }).map(([name, value]) => `${name}: ${value}\r\n`)
    this.socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('')}\r\n`)
    this.timer = setInterval(() => this.take(bytes), everyMs)
  }

  private take(limit: number) {
    const available = this.socket.readableLength
    // Nothing buffered: ask for more (a paused socket reads from the kernel only when asked).
    if (available === 0) {
      this.socket.read(0)
      return
    }
    const chunk = this.socket.read(Math.min(limit, available)) as Buffer | null
    if (chunk) this.keep(chunk)
  }

  private keep(chunk: Buffer) {
    if (this.bytes === 0) this.answeredAfterMs = performance.now() - this.startedAt
    this.received.push(chunk)
    this.bytes += chunk.length
  }

  get receivedBytes(): number {
    return this.bytes
  }

  /** What has been read so far, as text (headers, then the chunked body). */
  get text(): string {
    return Buffer.concat(this.received).toString('latin1')
  }

  /** The response's status code, once its status line has been read. */
  get status(): number | undefined {
    const match = /^HTTP\/1\.1 (\d{3}) /.exec(this.text)
    return match ? Number(match[1]) : undefined
  }

  /** A response header, once the headers have been read. */
  header(name: string): string | undefined {
    const head = this.text.split('\r\n\r\n')[0] ?? ''
    const line = head.split('\r\n').find((entry) => entry.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    return line?.slice(name.length + 1).trim()
  }

  /** Reads the rest as fast as it comes, until the server ends the connection. */
  async drain(): Promise<void> {
    clearInterval(this.timer)
    this.socket.on('data', (chunk: Buffer) => this.keep(chunk))
    this.socket.resume()
    await this.closed
  }

  destroy() {
    clearInterval(this.timer)
    this.socket.destroy()
  }
}
