/**
 * Secrets the service makes for itself outside production (the development token secret, the
 * audit signing key), kept in `DATA_DIR` so that every process on that directory (the server,
 * `npm run token`, a second instance) uses the same one.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import path from 'node:path'

/**
 * The contents of `name` in `dataDir`, created (mode 0600) from `create()` on first use. Two
 * processes starting at once agree: the file is created exclusively (`wx`), and the one that loses
 * the race reads the winner's (waiting a moment for it should it still be empty).
 */
export async function createdOnce(dataDir: string, name: string, create: () => string): Promise<string> {
  const file = path.join(dataDir, name)
  for (let attempt = 0; ; attempt++) {
    try {
      const kept = (await readFile(file, 'utf8')).trim()
      if (kept !== '') return kept
      // Created by another process a moment ago, not written yet.
      if (attempt >= 20) throw new Error(`${file} is empty: delete it and start again`)
      await sleep(50)
      continue
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    await mkdir(dataDir, { recursive: true })
    const value = create()
    try {
      await writeFile(file, `${value}\n`, { mode: 0o600, flag: 'wx' })
      return value
    } catch (error) {
      // Another process created it first: use theirs, so both agree.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
}
