/** Whether the Redis of this machine (127.0.0.1:6379) answers: tests of shared limits skip without it. */
import { Socket } from 'node:net'

export async function redisAnswers(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket()
    socket.setTimeout(500)
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => (socket.destroy(), resolve(false)))
    socket.connect(6379, '127.0.0.1')
  })
}
