/**
 * `npm run retention -- --dry-run | --apply`: what the retention schedule would erase now (ids
 * and incident references, never a name), and with --apply erases it. Takes the same lock as the
 * service's daily run, so it never runs beside one.
 */
import { parseArgs } from 'node:util'
import { loadConfig } from '../config.js'
import { openDatabase } from '../db/client.js'
import { runRetention } from '../modules/retention/service.js'

const { values } = parseArgs({ options: { 'dry-run': { type: 'boolean' }, apply: { type: 'boolean' } } })
if (values['dry-run'] === values.apply) {
  process.stderr.write('usage: npm run retention -- --dry-run | --apply\n')
  process.exit(2)
}

const config = loadConfig()
const database = await openDatabase(config)
try {
  const outcome = await runRetention(database.db, config, { apply: values.apply === true })
  if (!outcome.ran) {
    process.stderr.write('another retention run holds the lock; nothing done\n')
    process.exitCode = 1
  } else {
    const verb = outcome.applied ? 'erased' : 'would erase'
    process.stdout.write(
      `${verb}: ${outcome.custodians.length} custodian(s) who left more than ${config.RETENTION_CUSTODIAN_MONTHS} months ago; ` +
        `the free text of ${outcome.incidents.length} incident(s) ended more than ${config.RETENTION_INCIDENT_YEARS} years ago\n`,
    )
    for (const id of outcome.custodians) process.stdout.write(`custodian ${id}\n`)
    for (const { reference } of outcome.incidents) process.stdout.write(`incident ${reference}\n`)
  }
} finally {
  await database.close()
}
