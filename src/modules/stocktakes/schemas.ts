import { z } from 'zod'
import { scanIdentifierType, stocktakeStatus } from '../../db/schema.js'
import { PageQuery, pageOf } from '../../http/pagination.js'
import { notInFuture, Text, Timestamp, Uuid } from '../../http/schemas.js'
import { DeviceKind, DeviceStatus } from '../devices/schemas.js'
export const StocktakeStatus = z.enum(stocktakeStatus.enumValues)
export const IdentifierType = z.enum(scanIdentifierType.enumValues)

/** A stocktake may be limited to what one custodian holds, or to one kind of device, or both. */
export const StocktakeScope = z
  .object({ custodianId: z.string().nullable(), kind: DeviceKind.nullable() })
  .meta({ id: 'StocktakeScope' })

export const DiscrepancyCounts = z
  .object({
    scans: z.int(),
    missing: z.int(),
    unknown: z.int(),
    reportedMissingButSeen: z.int(),
    retiredButSeen: z.int(),
  })
  .meta({ id: 'StocktakeCounts' })

export const StocktakeSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: StocktakeStatus,
    scope: StocktakeScope,
    counts: DiscrepancyCounts,
    closedAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    createdBy: z.string(),
    version: z.int(),
  })
  .meta({ id: 'Stocktake' })

export type Stocktake = z.infer<typeof StocktakeSchema>
export type Counts = z.infer<typeof DiscrepancyCounts>

export const CreateStocktakeBody = z
  .strictObject({
    name: Text(200),
    scope: z
      .strictObject({ custodianId: Uuid.optional(), kind: DeviceKind.optional() })
      .optional()
      .meta({ description: 'Which devices are expected: those held by a custodian, of a kind, or both. Absent: every device.' }),
  })
  .meta({ id: 'CreateStocktake' })

export type CreateStocktakeInput = z.infer<typeof CreateStocktakeBody>

export const StocktakeListQuery = z.strictObject({
  status: StocktakeStatus.optional(),
  ...PageQuery,
})

/** Closing takes no input; a body, if sent, must be empty rather than silently ignored. */
export const CloseStocktakeBody = z.strictObject({}).nullish()

export const MAX_SCANS_PER_CALL = 5_000

/** What a scanner read: any short text (never an organisation's tag pattern: a scan reports what it saw). */
const Identifier = Text(200)

export const ScanInput = z
  .strictObject({
    assetTag: Identifier.optional(),
    serialNumber: Identifier.optional(),
    seenAt: Timestamp.refine(notInFuture, { error: 'must not be in the future' }),
    location: Text(200).optional(),
  })
  .refine((scan) => (scan.assetTag === undefined) !== (scan.serialNumber === undefined), {
    error: 'give exactly one of assetTag and serialNumber',
  })
  .meta({ id: 'Scan' })

export const AddScansBody = z
  .strictObject({
    scans: z
      .array(ScanInput)
      .min(1, { error: 'must hold at least one scan' })
      .max(MAX_SCANS_PER_CALL, { error: `at most ${MAX_SCANS_PER_CALL} scans per call; send the rest in further calls` }),
  })
  .meta({ id: 'AddScans' })

export type ScanBatch = z.infer<typeof AddScansBody>['scans']

export const ScanReceipt = z
  .object({
    accepted: z.int().meta({ description: 'Scans stored from this call.' }),
    matched: z.int().meta({ description: 'Of those, scans that identified a registered device.' }),
    unknown: z.int().meta({ description: 'Of those, scans that matched no device.' }),
  })
  .meta({ id: 'ScanReceipt' })

export type ScanReceiptBody = z.infer<typeof ScanReceipt>

export const DeviceEntry = z
  .object({
    id: z.string(),
    assetTag: z.string(),
    serialNumber: z.string(),
    kind: DeviceKind,
    status: DeviceStatus,
    currentCustodianId: z.string().nullable(),
    lastSeenAt: z.string().nullable(),
  })
  .meta({ id: 'DeviceSighting' })

export type DeviceEntryBody = z.infer<typeof DeviceEntry>

export const UnknownIdentifier = z
  .object({ identifier: z.string(), identifierType: IdentifierType, scans: z.int() })
  .meta({ id: 'UnknownIdentifier' })

export type UnknownIdentifierBody = z.infer<typeof UnknownIdentifier>

export const LostDeviceSighting = DeviceEntry.extend({ incident: z.object({ id: z.string(), reference: z.string() }).nullable() }).meta({
  id: 'LostDeviceSighting',
})

export const DiscrepanciesSchema = z
  .object({
    missing: z.array(DeviceEntry).meta({ description: 'In scope, in stock or assigned, and not scanned.' }),
    unknown: z
      .array(UnknownIdentifier)
      .meta({ description: 'Scanned identifiers that match no device (case and surrounding spaces ignored).' }),
    reportedMissingButSeen: z
      .array(LostDeviceSighting)
      .meta({ description: 'Lost or stolen devices that were scanned, with their open incident.' }),
    retiredButSeen: z.array(DeviceEntry).meta({ description: 'Retired devices that were scanned.' }),
  })
  .meta({ id: 'StocktakeDiscrepancies' })

export type Discrepancies = z.infer<typeof DiscrepanciesSchema>

/** The classes of discrepancy, each a list of its own (`GET /v1/stocktakes/{id}/discrepancies/{class}`). */
export const DISCREPANCY_CLASSES = ['missing', 'unknown', 'reportedMissingButSeen', 'retiredButSeen'] as const satisfies readonly (keyof Discrepancies)[]
export type DiscrepancyClass = (typeof DISCREPANCY_CLASSES)[number]
export const isDiscrepancyClass = (value: string): value is DiscrepancyClass => (DISCREPANCY_CLASSES as readonly string[]).includes(value)

/**
 * The class is a plain string to the router and checked by the handler: a path parameter that
 * fails validation is a 404 (an id that names no record), but an unknown class is the client's
 * mistake, a 400 naming it. The document still lists the classes.
 */
export const DiscrepancyPageParams = z.strictObject({
  id: Uuid,
  class: z.string().meta({ description: 'Which discrepancies: one of the lists of the whole document.', enum: [...DISCREPANCY_CLASSES] }),
})

export const DiscrepancyPageQuery = z.strictObject({ ...PageQuery })

/** An item of one class: as in the whole document's list of that class. */
export const DiscrepancyItem = z.union([LostDeviceSighting, DeviceEntry, UnknownIdentifier])
export type DiscrepancyItemBody = z.infer<typeof DiscrepancyItem>

export const DiscrepancyPage = pageOf(DiscrepancyItem)

export const OverdueAuditQuery = z.strictObject({
  days: z.coerce
    .number({ error: 'must be an integer from 1 to 3650' })
    .int({ error: 'must be an integer from 1 to 3650' })
    .min(1, { error: 'must be an integer from 1 to 3650' })
    .max(3650, { error: 'must be an integer from 1 to 3650' })
    .default(180),
  ...PageQuery,
})
