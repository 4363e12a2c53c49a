/**
 * Signs the audit chain's head every AUDIT_CHECKPOINT_SECONDS while events arrive (checkpoints.ts
 * writes one only when the chain has grown by more than checkpoint events), and once more as the
 * app closes. `app.auditCheckpoints.checkpoint()` writes one now (the export does, so that it ends
 * signed). A failure is logged, never thrown: the next run signs whatever the last one missed.
 *
 * The key is loaded on first use (a checkpoint due, the public key asked for), so an app that
 * never checkpoints never needs one; in development it is logged at start, public half included.
 */
import type { KeyObject } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { type Checkpoint, writeCheckpoint } from './checkpoints.js'
import { type AuditSigningKey, loadSigningKey } from './signing-key.js'

export interface AuditCheckpoints {
  /** Writes a checkpoint now if the chain has grown (after any run under way); null when there was nothing to sign or it failed (logged). */
  checkpoint(): Promise<Checkpoint | null>
  signingKey(): Promise<AuditSigningKey>
  /** The key checkpoints are verified with: the signing key's public half. */
  publicKey(): Promise<KeyObject>
}

declare module 'fastify' {
  interface FastifyInstance {
    auditCheckpoints: AuditCheckpoints
  }
}

export default fp(
  async function auditCheckpointing(app: FastifyInstance, { config }: { config: Config }) {
    let key: Promise<AuditSigningKey> | undefined
    const signingKey = () => {
      key ??= loadSigningKey(config).catch((error: unknown) => {
        key = undefined // a later call tries again (DATA_DIR made writable, say)
        throw error
      })
      return key
    }
    // One run at a time in this app; the chain lock orders them across instances.
    let last: Promise<unknown> = Promise.resolve()
    const checkpoint = (): Promise<Checkpoint | null> => {
      const run = last.then(async () => {
        try {
          const written = await writeCheckpoint(app.db, signingKey)
          if (written) app.log.info({ checkpoint: { id: written.id, count: written.count, lastEventId: written.lastEventId } }, 'audit checkpoint signed')
          return written
        } catch (error) {
          app.log.warn({ err: error }, 'audit checkpoint not written; the next run will try again')
          return null
        }
      })
      last = run
      return run
    }
    app.decorate<AuditCheckpoints>('auditCheckpoints', {
      checkpoint,
      signingKey,
      publicKey: async () => (await signingKey()).publicKey,
    })

    let timer: NodeJS.Timeout | undefined
    app.addHook('onReady', async () => {
      timer = setInterval(() => void checkpoint(), config.AUDIT_CHECKPOINT_SECONDS * 1000).unref()
      if (config.NODE_ENV !== 'development') return
      try {
        const { source, publicJwk } = await signingKey()
        app.log.info(`audit checkpoints are signed with ${source}; public key ${JSON.stringify(publicJwk)}`)
      } catch (error) {
        app.log.warn({ err: error }, 'the audit signing key could not be loaded; checkpoints will try again')
      }
    })
    // Registered after the database and audit-linking plugins: this runs before either closes.
    app.addHook('onClose', async () => {
      clearInterval(timer)
      await checkpoint()
    })
  },
  { name: 'audit-checkpointing', dependencies: ['database', 'audit-linking'] },
)
