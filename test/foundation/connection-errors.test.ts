/**
 * What Node and Fastify refuse before a route can answer — a request that does not arrive in time,
 * headers too large, a body over the limit, HTTP that cannot be parsed — is problem+json too, on a
 * real listening server over raw sockets (inject never sees these).
 */
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { waitUntil } from '../helpers/wait.js'

// Not a multiple of 10 ms: the server checks its connections at a tenth of it, which Node needs whole.
const TIMEOUT_MS = 1_234

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  /** From the first byte sent to the server closing the connection. */
  closedAfterMs: number
}

/** The first response on a connection, read until the server closes it. */
function parse(text: string, closedAfterMs: number): RawResponse {
  const end = text.indexOf('\r\n\r\n')
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
  const length = Number(headers['content-length'] ?? 0)
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4, end + 4 + length), closedAfterMs }
}

/** Opens a connection, lets `send` write to it (and keep writing), and waits until the server closes it. */
async function exchange(port: number, send: (socket: net.Socket) => void): Promise<RawResponse> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.on('error', () => {}) // a reset once the answer is in changes nothing here
  const closed = once(socket, 'close')
  const started = performance.now()
  send(socket)
  await closed
  return parse(Buffer.concat(chunks).toString('latin1'), performance.now() - started)
}

/** Writes `text` a byte a second until the connection closes. */
function drip(socket: net.Socket, text: string) {
  let sent = 0
  const next = () => {
    if (socket.destroyed || sent >= text.length) return
    socket.write(text[sent++]!)
    timer = setTimeout(next, 1_000)
  }
  let timer = setTimeout(next, 0)
  socket.once('close', () => clearTimeout(timer))
}

function assertRawProblem(t: Test, response: RawResponse, status: number) {
  t.equal(response.status, status, `status ${status}`)
  t.match(response.headers['content-type'], /^application\/problem\+json/, 'problem+json')
  t.equal(response.headers.connection, 'close', 'says the connection is closed')
  const body = JSON.parse(response.body)
  t.match(body, { status, type: String, title: String, detail: String })
  return body
}

t.test('on a listening server', async (t) => {
  const { app, auth, database, logs } = await buildTestApp(t, { config: { REQUEST_BODY_TIMEOUT_MS: String(TIMEOUT_MS) }, ready: false })
  // The client ids of requests whose body the server has begun to read.
  const bodiesBeingRead = new Set<string>()
  app.addHook('preParsing', (request, _reply, payload, done) => {
    bodiesBeingRead.add(String(request.headers['x-request-id']))
    done(null, payload)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const { authorization } = await auth('asset_manager')
  const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`

  t.test('a body sent a byte a second is a 408 problem soon after the deadline, the connection closed and nothing written', async (t) => {
    const response = await exchange(port, (socket) => {
      socket.write(head(['POST /v1/custodians HTTP/1.1', 'Host: register', `Authorization: ${authorization}`, 'Content-Type: application/json', 'Content-Length: 60', 'x-request-id: slow-body-1']))
      drip(socket, '{"kind":"staff","name":"Never Arrives"}'.padEnd(60, ' '))
    })
    const body = assertRawProblem(t, response, 408)
    t.match(body.detail, /1\.234 s/, 'the detail says how long a request may take')
    t.equal(response.headers['x-request-id'], 'slow-body-1', 'the answer names the request')
    t.ok(response.closedAfterMs >= TIMEOUT_MS - 100, `not before the deadline (${Math.round(response.closedAfterMs)} ms)`)
    t.ok(response.closedAfterMs < TIMEOUT_MS + 3_000, `within a few seconds of it (${Math.round(response.closedAfterMs)} ms)`)
    t.same(await database.query('SELECT count(*)::int AS n FROM custodians'), [{ n: 0 }], 'nothing was written')
    // The body parser sees the connection close after the answer: that is no error of ours.
    await exchange(port, (socket) => socket.write(head(['GET /healthz HTTP/1.1', 'Host: register', 'Connection: close'])))
    const lines = logs.filter((line) => line.clientRequestId === 'slow-body-1')
    t.equal(lines.length, 1, 'one line for the request')
    t.match(lines[0], { route: '/v1/custodians', method: 'POST', statusCode: 408, level: 30 }, 'by its route, at info')
  })

  t.test('a client that hangs up halfway through its body gets one line at info (Node calls the early end a parse error), and no error is blamed on the database', async (t) => {
    const socket = net.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write(head(['POST /v1/custodians HTTP/1.1', 'Host: register', `Authorization: ${authorization}`, 'Content-Type: application/json', 'Content-Length: 60', 'x-request-id: hang-up-1']))
    socket.write('{"kind":')
    await waitUntil('the server to read the body', () => bodiesBeingRead.has('hang-up-1'))
    socket.destroy()
    await waitUntil('the line of the request the client abandoned', () => logs.some((line) => line.clientRequestId === 'hang-up-1'))
    await exchange(port, (socket) => socket.write(head(['GET /healthz HTTP/1.1', 'Host: register', 'Connection: close'])))
    const lines = logs.filter((line) => line.clientRequestId === 'hang-up-1')
    t.equal(lines.length, 1, 'one line')
    t.match(lines[0], { route: '/v1/custodians', statusCode: 400, level: 30 })
  })

  t.test('headers sent a byte a second are a 408 problem', async (t) => {
    const response = await exchange(port, (socket) => {
      socket.write('GET /healthz HTTP/1.1\r\nHost: register\r\n')
      drip(socket, 'X-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n')
    })
    assertRawProblem(t, response, 408)
    t.ok(response.closedAfterMs < TIMEOUT_MS + 3_000, `within a few seconds of the deadline (${Math.round(response.closedAfterMs)} ms)`)
  })

  t.test('a request on a kept-alive connection that stayed idle past the timeout is answered as usual', async (t) => {
    const socket = net.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    let received = ''
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
    const request = head(['GET /healthz HTTP/1.1', 'Host: register'])
    socket.write(request)
    while (!received.includes('\r\n\r\n')) await once(socket, 'data')
    t.match(received, /^HTTP\/1\.1 200/)
    received = ''
    await sleep(TIMEOUT_MS + 500)
    socket.write(request)
    while (!received.includes('\r\n\r\n')) await once(socket, 'data')
    t.match(received, /^HTTP\/1\.1 200/, 'the idle time did not count against the next request')
    socket.destroy()
  })

  t.test('a header over 16 KiB is a 431 problem', async (t) => {
    const response = await exchange(port, (socket) => socket.write(head(['GET /healthz HTTP/1.1', 'Host: register', `X-Big: ${'a'.repeat(20_000)}`])))
    assertRawProblem(t, response, 431)
  })

  t.test('a URL over 16 KiB is a 431 problem too (Node counts the request line with the headers)', async (t) => {
    const response = await exchange(port, (socket) => socket.write(head([`GET /v1/custodians?q=${'a'.repeat(20_000)} HTTP/1.1`, 'Host: register'])))
    assertRawProblem(t, response, 431)
  })

  t.test('a path segment longer than any id is a 414 problem', async (t) => {
    const response = await exchange(port, (socket) => socket.write(head([`GET /v1/custodians/${'a'.repeat(300)} HTTP/1.1`, 'Host: register', 'Connection: close'])))
    assertRawProblem(t, response, 414)
  })

  t.test('a body declared over the limit is a 413 problem at once, the connection closed', async (t) => {
    const response = await exchange(port, (socket) =>
      socket.write(head(['POST /v1/custodians HTTP/1.1', 'Host: register', `Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Length: ${2 * 1024 * 1024}`])),
    )
    assertRawProblem(t, response, 413)
    t.ok(response.closedAfterMs < TIMEOUT_MS, 'without waiting for the body')
  })

  t.test('a request that is not HTTP is a 400 problem', async (t) => {
    const response = await exchange(port, (socket) => socket.write('HELLO THERE\r\n\r\n'))
    assertRawProblem(t, response, 400)
  })
})

t.test('a request that arrives on an open connection while the app closes is a 503 problem, and the connection is closed', async (t) => {
  const { app } = await buildTestApp(t, { ready: false })
  const seen: string[] = []
  app.addHook('onRequest', (request, _reply, done) => {
    seen.push(request.url)
    done()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
  const closed = once(socket, 'close')
  // A request under way keeps the connection open through the close (only idle ones are closed).
  socket.write('POST /nothing-here HTTP/1.1\r\nHost: register\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{')
  await waitUntil('the server to take the request', () => seen.includes('/nothing-here'))
  const closing = app.close()
  await waitUntil('the server to stop listening', () => !app.server.listening)
  socket.write('}GET /v1/custodians HTTP/1.1\r\nHost: register\r\n\r\n')
  await closed
  await closing
  const second = received.indexOf('HTTP/1.1', 1)
  t.match(received.slice(0, second), /^HTTP\/1\.1 404/, 'the request under way is answered as usual')
  const response = parse(received.slice(second), 0)
  assertRawProblem(t, response, 503)
  t.equal(response.headers['retry-after'], '1')
  t.equal(response.headers['cache-control'], 'no-store', 'with the headers every answer carries')
  t.equal(response.headers['x-content-type-options'], 'nosniff')
})
