import { z } from 'zod'
import { DeviceKind } from '../devices/schemas.js'
import { IncidentKind, IncidentStatus, LocationCategory, RemoteWipe } from '../incidents/schemas.js'

/** A row of the JSON export, as `jsonRecord` (foi.ts) writes it: the CSV's columns, in camelCase. */
export const FoiRecordSchema = z
  .object({
    reference: z.string(),
    dateReported: z.string().meta({ description: 'The UK date it was reported, YYYY-MM-DD.' }),
    itemType: DeviceKind,
    lostOrStolen: IncidentKind,
    locationCategory: LocationCategory,
    encrypted: z.boolean(),
    personalDataAtRisk: z.boolean(),
    remoteWipe: RemoteWipe,
    recovered: z.boolean(),
    dateRecovered: z.string().nullable().meta({ description: 'The UK date it was recovered, YYYY-MM-DD; null if not.' }),
    status: IncidentStatus,
  })
  .meta({ id: 'FoiLostStolenRecord' })

export type FoiRecord = z.infer<typeof FoiRecordSchema>
