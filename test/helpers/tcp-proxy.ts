/**
 * A TCP proxy between the app's pool and PostgreSQL, so a test can make the database "go away"
 * without touching the real server that other tests share:
 *
 * - `down()`: every open connection is cut and the port stops listening (new connects are refused);
 * - `up()`: listens again on the same port;
 * - `stall()`: connections stay open but nothing is forwarded any more (a database that hangs).
 */
import { createServer, type Server, type Socket, connect } from 'node:net'

export interface TcpProxy {
  readonly port: number
  /** `target` with its host and port replaced by the proxy's. */
  urlFor(target: string): string
  /** Connections currently open through the proxy. */
  readonly open: number
  down(): Promise<void>
  up(): Promise<void>
  stall(): void
  /** Chunks from the service dropped while stalled: a statement has reached the silent database. */
  readonly dropped: number
  close(): Promise<void>
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let stalled = false
  let dropped = 0
  let server: Server | undefined
  let port = 0

  function onConnection(client: Socket, owner: Server) {
    if (owner !== server) {
      // Accepted in the same tick as down(): refuse it as if the port were closed.
      client.destroy()
      return
    }
    const upstream = connect(targetPort, targetHost)
    sockets.add(client).add(upstream)
    const forget = () => {
      sockets.delete(client)
      sockets.delete(upstream)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', forget).on('close', forget)
    upstream.on('error', forget).on('close', forget)
    // Forwarded by hand (not pipe) so that `stall()` can drop bytes on the floor.
    client.on('data', (chunk) => {
      if (!stalled) upstream.write(chunk)
      else dropped++
    })
    upstream.on('data', (chunk) => {
      if (!stalled) client.write(chunk)
    })
  }

  async function listen(): Promise<void> {
    const next: Server = createServer((client) => onConnection(client, next))
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject)
      next.listen(port, '127.0.0.1', () => resolve())
    })
    const address = next.address()
    port = typeof address === 'object' && address ? address.port : port
    server = next
  }

  async function down(): Promise<void> {
    const current = server
    server = undefined
    // Stop listening first, so no connection slips in after the cut; close() resolves once the
    // connections destroyed below are gone.
    const closed = current ? new Promise<void>((resolve) => current.close(() => resolve())) : Promise.resolve()
    for (const socket of sockets) socket.destroy()
    sockets.clear()
    await closed
  }

  await listen()
  return {
    get port() {
      return port
    },
    get dropped() {
      return dropped
    },
    get open() {
      return sockets.size / 2
    },
    urlFor(target: string) {
      const url = new URL(target)
      url.hostname = '127.0.0.1'
      url.port = String(port)
      return url.toString()
    },
    down,
    async up() {
      stalled = false
      if (!server) await listen()
    },
    stall() {
      stalled = true
      dropped = 0
    },
    close: down,
  }
}
