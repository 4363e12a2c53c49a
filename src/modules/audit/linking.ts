/**
 * Links audit events into the hash chain soon after they commit (see trail.ts): after each
 * successful write's response, once the app is ready, and when it closes; reading or verifying
 * the trail links first. A run links everything waiting, whoever wrote it, so events an instance
 * had not linked when it stopped are linked by the next write, read or start-up anywhere.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { AuditLinker } from './trail.js'

declare module 'fastify' {
  interface FastifyInstance {
    auditLinker: AuditLinker
  }
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS'])

export default fp(
  async function auditLinking(app: FastifyInstance) {
    const linker = new AuditLinker(app.db)
    app.decorate('auditLinker', linker)
    // A failure here loses nothing: the events wait in audit_unlinked for the next run.
    const linkSoon = () => {
      linker.linkSoon().catch((error: unknown) => app.log.warn({ err: error }, 'audit events not linked yet; the next run will'))
    }
    // A callback hook, not an async one: it runs on every response, and a promise each is not free.
    app.addHook('onResponse', (request, reply, done) => {
      if (!READS.has(request.method) && reply.statusCode < 400) linkSoon()
      done()
    })
    app.addHook('onReady', async () => linkSoon())
    // Registered after the database plugin, so this runs before the pool closes.
    app.addHook('onClose', async () => {
      await linker.link().catch(() => {})
    })
  },
  { name: 'audit-linking', dependencies: ['database'] },
)
