/** `npm start`: the service, configured from the environment. */
import { loadConfig } from './config.js'
import { failedToStart, startService } from './process-runner.js'

try {
  await startService(loadConfig())
} catch (error) {
  failedToStart(error)
}
