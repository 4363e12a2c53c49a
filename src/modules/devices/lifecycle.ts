/**
 * The device lifecycle, in one place. Every action that changes a device's status asks this table
 * first; a move it does not list is a 409 that says from which state to which.
 *
 *   in_stock ──assign──▶ assigned ──return──▶ in_stock
 *   in_stock | assigned ──report lost/stolen──▶ lost | stolen ──recover──▶ in_stock
 *   in_stock ──retire──▶ retired
 */
import { problems } from '../../plugins/problems.js'

export type DeviceStatus = 'in_stock' | 'assigned' | 'lost' | 'stolen' | 'retired'
export type DeviceAction = 'assign' | 'return' | 'report_lost' | 'report_stolen' | 'recover' | 'retire'

const TRANSITIONS: Record<DeviceAction, { from: readonly DeviceStatus[]; to: DeviceStatus }> = {
  assign: { from: ['in_stock'], to: 'assigned' },
  return: { from: ['assigned'], to: 'in_stock' },
  report_lost: { from: ['in_stock', 'assigned'], to: 'lost' },
  report_stolen: { from: ['in_stock', 'assigned'], to: 'stolen' },
  recover: { from: ['lost', 'stolen'], to: 'in_stock' },
  retire: { from: ['in_stock'], to: 'retired' },
}

const VERBS: Record<DeviceAction, string> = {
  assign: 'assigned',
  return: 'returned',
  report_lost: 'reported lost',
  report_stolen: 'reported stolen',
  recover: 'recovered',
  retire: 'retired',
}

/** The status after `action`, or undefined when the lifecycle does not allow it from `from`. */
export function nextStatus(from: DeviceStatus, action: DeviceAction): DeviceStatus | undefined {
  const transition = TRANSITIONS[action]
  return transition.from.includes(from) ? transition.to : undefined
}

/** The status after `action`; a 409 naming both states when the move is not allowed. */
export function transition(from: DeviceStatus, action: DeviceAction): DeviceStatus {
  const to = nextStatus(from, action)
  if (to === undefined) {
    const allowed = TRANSITIONS[action].from.join(' or ')
    throw problems.conflict(
      `A device that is ${from} cannot be ${VERBS[action]} (${from} → ${TRANSITIONS[action].to} is not a move of the lifecycle; it must be ${allowed}).`,
    )
  }
  return to
}
