import { z } from 'zod'
import { PageQuery } from '../../http/pagination.js'
import { notInFuture, Timestamp, Uuid } from '../../http/schemas.js'
import { CustodianKind } from '../custodians/schemas.js'
import { Classification, DeviceKind } from '../devices/schemas.js'

const PastTime = Timestamp.refine(notInFuture, { error: 'must not be in the future' })

export const AssignmentSchema = z
  .object({
    id: z.string(),
    deviceId: z.string(),
    custodianId: z.string(),
    assignedAt: z.string(),
    returnedAt: z.string().nullable(),
    endedBy: z.string().nullable().meta({ description: 'Why it ended when not by a return (`incident`); null otherwise.' }),
    createdAt: z.string(),
    createdBy: z.string(),
  })
  .meta({ id: 'Assignment' })

export type Assignment = z.infer<typeof AssignmentSchema>

export const AssignBody = z
  .strictObject({
    custodianId: Uuid,
    assignedAt: PastTime.optional().meta({ description: 'When the custodian took the device; defaults to now.' }),
  })
  .meta({ id: 'AssignDevice' })

/** The body may be left out altogether (no body, or `null`): returned now. */
export const ReturnBody = z
  .strictObject({
    returnedAt: PastTime.optional().meta({ description: 'When the device came back; defaults to now.' }),
  })
  .meta({ id: 'ReturnDevice' })

export type AssignInput = z.infer<typeof AssignBody>
export type ReturnInput = z.infer<typeof ReturnBody>

export const AssignmentListQuery = z.strictObject({ ...PageQuery })

export const UnreturnedItemSchema = z
  .object({
    device: z.object({
      id: z.string(),
      assetTag: z.string(),
      kind: DeviceKind,
      make: z.string(),
      model: z.string(),
      serialNumber: z.string(),
      classification: Classification,
    }),
    custodian: z.object({
      id: z.string(),
      kind: CustodianKind,
      name: z.string().nullable(),
      active: z.boolean(),
      leftOn: z.string().nullable(),
    }),
    assignmentId: z.string(),
    since: z.string().meta({ description: 'When the open assignment began.' }),
    daysSinceLeaving: z.int().nullable().meta({ description: 'Whole days from leftOn to today (UK); null when no leftOn.' }),
  })
  .meta({ id: 'UnreturnedDevice' })

export type UnreturnedItem = z.infer<typeof UnreturnedItemSchema>

export const UnreturnedQuery = z.strictObject({ ...PageQuery })
