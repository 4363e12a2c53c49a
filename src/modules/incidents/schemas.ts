import { z } from 'zod'
import { incidentKind, incidentStatus, locationCategory, recoveryCondition, remoteWipe, riskLevel } from '../../db/schema.js'
import { PageQuery } from '../../http/pagination.js'
import { DateString, QueryBoolean, Text, Timestamp, Uuid } from '../../http/schemas.js'

export const IncidentKind = z.enum(incidentKind.enumValues)
export const IncidentStatus = z.enum(incidentStatus.enumValues)
export const LocationCategory = z.enum(locationCategory.enumValues)
export const RemoteWipe = z.enum(remoteWipe.enumValues)
export const RecoveryCondition = z.enum(recoveryCondition.enumValues)
export const RiskLevel = z.enum(riskLevel.enumValues)

export const RiskSchema = z
  .object({
    score: z.number().int(),
    level: RiskLevel,
    factors: z.array(z.object({ code: z.string(), points: z.number().int() })),
  })
  .meta({ id: 'Risk' })

/**
 * Free text (`circumstances`, `closeReason`, `recovery.notes`) is null for callers without the
 * `security` role: the key stays so that every role sees the same shape.
 */
export const IncidentSchema = z
  .object({
    id: z.string(),
    reference: z.string(),
    status: IncidentStatus,
    deviceId: z.string(),
    custodianId: z.string().nullable(),
    kind: IncidentKind,
    occurredAt: z.string().nullable(),
    reportedAt: z.string(),
    location: z.object({ category: LocationCategory, description: z.string().nullable() }),
    circumstances: z.string().nullable().meta({ description: 'Null unless the caller has the security role.' }),
    policeReference: z.string().nullable(),
    personalDataAtRisk: z.boolean(),
    remoteWipe: RemoteWipe,
    icoDeadline: z.string().nullable(),
    icoReportedAt: z.string().nullable(),
    recoveredAt: z.string().nullable(),
    recovery: z
      .object({
        condition: RecoveryCondition,
        notes: z.string().nullable().meta({ description: 'Null unless the caller has the security role.' }),
      })
      .nullable(),
    closedAt: z.string().nullable(),
    closeReason: z.string().nullable().meta({ description: 'Null unless the caller has the security role.' }),
    risk: RiskSchema,
    createdAt: z.string(),
    updatedAt: z.string(),
    version: z.number().int(),
  })
  .meta({ id: 'Incident' })

export type Incident = z.infer<typeof IncidentSchema>

const policeReference = Text(100).nullable()
const locationDescription = Text(500).nullable()
const circumstances = Text(5000, { multiline: true })

export const CreateIncidentBody = z
  .strictObject({
    deviceId: Uuid,
    kind: IncidentKind,
    occurredAt: Timestamp.nullable().optional().meta({ description: 'When it happened, if known; not after reportedAt.' }),
    reportedAt: Timestamp.optional().meta({ description: 'When it was reported; defaults to now.' }),
    location: z.strictObject({ category: LocationCategory, description: locationDescription.optional() }),
    circumstances,
    policeReference: policeReference.optional(),
    personalDataAtRisk: z.boolean(),
    remoteWipe: RemoteWipe.optional(),
  })
  .meta({ id: 'CreateIncident' })

export const UpdateIncidentBody = z
  .strictObject({
    policeReference: policeReference.optional(),
    remoteWipe: RemoteWipe.optional(),
    icoReportedAt: Timestamp.nullable().optional(),
    location: z.strictObject({ description: locationDescription }).optional(),
    circumstances: circumstances.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { error: 'name at least one field to change' })
  .meta({ id: 'UpdateIncident' })

export const RecoveryBody = z
  .strictObject({ recoveredAt: Timestamp, condition: RecoveryCondition, notes: Text(5000, { multiline: true }).nullable().optional() })
  .meta({ id: 'IncidentRecovery' })

export const CloseBody = z.strictObject({ reason: Text(2000, { multiline: true }) }).meta({ id: 'IncidentClose' })

export const NoteBody = z.strictObject({ text: Text(5000, { multiline: true }) }).meta({ id: 'CreateIncidentNote' })

export const IncidentNoteSchema = z
  .object({
    id: z.string(),
    incidentId: z.string(),
    text: z.string().nullable().meta({ description: 'Null unless the caller has the security role.' }),
    createdAt: z.string(),
    createdBy: z.string(),
  })
  .meta({ id: 'IncidentNote' })

export type IncidentNote = z.infer<typeof IncidentNoteSchema>

export const IncidentListQuery = z.strictObject({
  status: IncidentStatus.optional(),
  kind: IncidentKind.optional(),
  from: DateString.optional().meta({ description: 'First day reported (UK local), inclusive.' }),
  to: DateString.optional().meta({ description: 'Day reported (UK local) to stop before: exclusive.' }),
  deviceId: Uuid.optional(),
  custodianId: Uuid.optional(),
  riskLevel: RiskLevel.optional(),
  icoOverdue: QueryBoolean.optional().meta({
    description: 'true: personal data at risk, past icoDeadline, not yet reported to the ICO.',
  }),
  ...PageQuery,
})

export const NoteListQuery = z.strictObject({ ...PageQuery })

export type CreateIncidentInput = z.infer<typeof CreateIncidentBody>
export type UpdateIncidentInput = z.infer<typeof UpdateIncidentBody>
export type RecoveryInput = z.infer<typeof RecoveryBody>
export type CloseInput = z.infer<typeof CloseBody>
export type IncidentListFilter = z.infer<typeof IncidentListQuery>

/** Fields of an incident that the server sets: a client that sends one is told so (see the problems plugin). */
export const INCIDENT_SERVER_FIELDS = ['id', 'status', 'version', 'createdAt', 'updatedAt', 'createdBy', 'reference', 'risk', 'icoDeadline']
