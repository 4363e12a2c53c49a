import type { Test } from 'tap'

interface InjectedResponse {
  statusCode: number
  headers: Record<string, unknown>
  body: string
}

/** Asserts an RFC 9457 problem with this status, free of stack traces and SQL; returns its body. */
export function assertProblem(t: Test, response: InjectedResponse, status: number) {
  t.equal(response.statusCode, status, `status ${status}`)
  t.match(String(response.headers['content-type']), /^application\/problem\+json/, 'problem+json')
  const body = JSON.parse(response.body)
  t.equal(body.status, status, 'status in the body matches')
  t.type(body.type, 'string')
  t.type(body.title, 'string')
  t.type(body.detail, 'string')
  t.notMatch(response.body, /at .*\.ts:\d+|SELECT |INSERT |stack/i, 'no stack trace or SQL')
  return body
}
