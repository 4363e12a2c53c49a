/**
 * Devices as the API shows and accepts them. The identifiers are checked at the edge so that a
 * user gets a message naming the field: asset tags are plain text of a few kinds of character
 * (an organisation's own scheme, ASSET_TAG_PATTERN, is checked by the service: it is
 * configuration), IMEIs carry a Luhn check digit, and dates of purchase cannot lie in the future.
 */
import { z } from 'zod'
import { ukToday } from '../../time/uk.js'
import { classification, deviceKind, deviceStatus } from '../../db/schema.js'
import { PageQuery } from '../../http/pagination.js'
import { DateString, Text, Uuid } from '../../http/schemas.js'
import { ProblemSchema } from '../../plugins/problems.js'

export const DeviceKind = z.enum(deviceKind.enumValues)
export const Classification = z.enum(classification.enumValues)
export const DeviceStatus = z.enum(deviceStatus.enumValues)

/**
 * What any organisation's tags are made of (`HOC-LT-000123`, `12345`, `PA/2019/0042`, `LAPTOP #12`):
 * letters of any script, digits, spaces and `-_./#`. Checked as a refinement, not a `pattern`, so
 * that the OpenAPI document does not claim a rule that ASSET_TAG_PATTERN may narrow.
 */
const ASSET_TAG_CHARACTERS = /^[\p{L}\p{Nd} _./#-]*$/u

/** An asset tag as the organisation writes it: stored as given (trimmed), compared without regard to case. */
export const AssetTag = Text(64)
  .refine((value) => ASSET_TAG_CHARACTERS.test(value), { error: 'may contain only letters, digits, spaces and - _ . / #' })
  .meta({
    description: 'Asset tag: 1-64 letters, digits, spaces and `-_./#` (the register may require its own scheme); unique regardless of case.',
    example: 'HOC-LT-000123',
  })

/** Serial numbers come from many makers: letters, digits and `-._/`, matched without regard to case. */
export const SerialNumber = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$/, { error: 'must be 1-100 letters, digits or - . _ / (starting with a letter or digit)' })

/** True when `digits` ends in the Luhn check digit of the digits before it (as an IMEI does). */
export function luhnValid(digits: string): boolean {
  if (!/^[0-9]+$/.test(digits)) return false
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 48
    if (i % 2 === 1) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
  }
  return sum % 10 === 0
}

/** An IMEI: exactly 15 digits, the last a Luhn check digit. */
export function isValidImei(value: string): boolean {
  return /^[0-9]{15}$/.test(value) && luhnValid(value)
}

export const Imei = z
  .string()
  .trim()
  .refine(isValidImei, { error: 'must be 15 digits with a valid Luhn check digit' })
  .meta({ description: '15 digits, the last a Luhn check digit.', example: '490154203237518' })

export const PurchasedOn = DateString.refine((value) => value <= ukToday(), { error: 'must not be in the future' })

export const CostPence = z
  .int({ error: 'must be a whole number of pence' })
  .min(0, { error: 'must not be negative' })
  .max(Number.MAX_SAFE_INTEGER, { error: 'is too large' })

export const DeviceSchema = z
  .object({
    id: z.string(),
    assetTag: z.string(),
    kind: DeviceKind,
    make: z.string(),
    model: z.string(),
    serialNumber: z.string(),
    imei: z.string().nullable(),
    encrypted: z.boolean(),
    mdmEnrolled: z.boolean(),
    classification: Classification,
    purchasedOn: z.string().nullable(),
    costPence: z.number().int().nullable(),
    status: DeviceStatus,
    currentCustodianId: z.string().nullable(),
    lastSeenAt: z.string().nullable(),
    retiredAt: z.string().nullable(),
    retireReason: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    version: z.number().int(),
  })
  .meta({ id: 'Device' })

export type Device = z.infer<typeof DeviceSchema>

const editable = {
  assetTag: AssetTag,
  kind: DeviceKind,
  make: Text(100),
  model: Text(100),
  serialNumber: SerialNumber,
  imei: Imei,
  encrypted: z.boolean(),
  mdmEnrolled: z.boolean(),
  classification: Classification,
  purchasedOn: PurchasedOn,
  costPence: CostPence,
}

export const CreateDeviceBody = z
  .strictObject({
    ...editable,
    imei: editable.imei.nullable().optional(),
    purchasedOn: editable.purchasedOn.nullable().optional(),
    costPence: editable.costPence.nullable().optional(),
  })
  .meta({ id: 'CreateDevice' })

export const UpdateDeviceBody = z
  .strictObject({
    assetTag: editable.assetTag.optional(),
    kind: editable.kind.optional(),
    make: editable.make.optional(),
    model: editable.model.optional(),
    serialNumber: editable.serialNumber.optional(),
    imei: editable.imei.nullable().optional(),
    encrypted: editable.encrypted.optional(),
    mdmEnrolled: editable.mdmEnrolled.optional(),
    classification: editable.classification.optional(),
    purchasedOn: editable.purchasedOn.nullable().optional(),
    costPence: editable.costPence.nullable().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { error: 'name at least one field to change' })
  .meta({ id: 'UpdateDevice' })

export type CreateDeviceInput = z.infer<typeof CreateDeviceBody>
export type UpdateDeviceInput = z.infer<typeof UpdateDeviceBody>

export const DeviceListQuery = z.strictObject({
  status: DeviceStatus.optional(),
  kind: DeviceKind.optional(),
  custodianId: Uuid.optional().meta({ description: 'Devices currently held by this custodian.' }),
  q: Text(100).optional().meta({ description: 'The start of the asset tag or serial number, any case.' }),
  ...PageQuery,
})

export const RetireBody = z.strictObject({ reason: Text(500, { multiline: true }) }).meta({ id: 'RetireDevice' })

export const ImportResultSchema = z.object({ created: z.int() }).meta({ id: 'DeviceImportResult' })

/** The import's 422: the problem, its errors by line and column, and how many there are in all. */
export const ImportProblemSchema = ProblemSchema.extend({
  errors: z
    .array(
      z
        .object({
          path: z.string(),
          message: z.string(),
          row: z.int().optional().meta({ description: 'The line of the file (the header is line 1).' }),
          column: z.string().optional().meta({ description: 'The column of the bad cell; empty for the line as a whole.' }),
        })
        .catchall(z.unknown()),
    )
    .optional()
    .meta({ description: 'The first errors of the file, in file order (at most 100).' }),
  errorCount: z.int().optional().meta({ description: 'How many errors the file has in all.' }),
}).meta({ id: 'DeviceImportProblem', description: 'An RFC 9457 problem details object; a refused file adds its errors by line.' })

export const TimelineItemSchema = z
  .object({
    id: z.string().meta({ description: 'Unique within the timeline: `audit:<event id>` or `scan:<scan id>`.' }),
    at: z.string().meta({ description: 'When it happened (audit: when recorded; sighting: when scanned).' }),
    type: z
      .enum([
        'created', 'updated', 'assigned', 'returned', 'reported_lost', 'reported_stolen', 'incident_reported',
        'incident_updated', 'note_added', 'recovered', 'closed', 'retired', 'seen_in_stocktake', 'other',
      ])
      .meta({ description: 'What happened, in one word.' }),
    action: z.string().meta({ description: 'The audit action (`device.assigned`, `incident.note_added`, …) or `stocktake.device_seen`.' }),
    actor: z.string().meta({ description: 'Who did it (the token subject; for a sighting, who recorded the scan).' }),
    summary: z.string().meta({ description: 'One line for people. Never contains free text (circumstances, notes, reasons).' }),
    entityType: z.enum(['device', 'incident', 'stocktake', 'assignment', 'custodian']).meta({ description: 'What the event belongs to.' }),
    entityId: z.string().meta({ description: 'The id of that entity: the device, its incident, or the stocktake.' }),
    custodianId: z.string().nullable().meta({ description: 'The custodian the event concerns (assigned to, returned by), if any.' }),
  })
  .meta({ id: 'DeviceTimelineItem' })

export type TimelineItem = z.infer<typeof TimelineItemSchema>

export const TimelineQuery = z.strictObject({ ...PageQuery })

/** Fields of a device that the server sets: a client that sends one is told so (see the problems plugin). */
export const DEVICE_SERVER_FIELDS = ['id', 'status', 'version', 'createdAt', 'updatedAt', 'createdBy', 'currentCustodianId', 'lastSeenAt']
