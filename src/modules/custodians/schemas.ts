import { z } from 'zod'
import { custodianKind, house } from '../../db/schema.js'
import { DateString, QueryBoolean, Text } from '../../http/schemas.js'
import { PageQuery } from '../../http/pagination.js'

export const CustodianKind = z.enum(custodianKind.enumValues)
export const House = z.enum(house.enumValues)

export const CustodianSchema = z
  .object({
    id: z.string(),
    kind: CustodianKind,
    name: z.string().nullable().meta({ description: 'Null once the custodian is erased (with email and constituency).' }),
    house: House.nullable(),
    constituency: z.string().nullable(),
    email: z.string().nullable(),
    active: z.boolean(),
    leftOn: z.string().nullable(),
    erasedAt: z.string().nullable().meta({ description: 'When their personal data was erased (retention or a request); null while kept.' }),
    createdAt: z.string(),
    updatedAt: z.string(),
    version: z.number().int(),
  })
  .meta({ id: 'Custodian' })

export type Custodian = z.infer<typeof CustodianSchema>

const editable = {
  name: Text(200),
  house: House.nullable(),
  constituency: Text(200).nullable(),
  email: z.email({ error: 'must be an email address' }).max(320).nullable(),
  active: z.boolean(),
  leftOn: DateString.nullable(),
}

export const CreateCustodianBody = z
  .strictObject({
    kind: CustodianKind,
    name: editable.name,
    house: editable.house.optional(),
    constituency: editable.constituency.optional(),
    email: editable.email.optional(),
    active: editable.active.optional(),
    leftOn: editable.leftOn.optional(),
  })
  .meta({ id: 'CreateCustodian' })

export const UpdateCustodianBody = z
  .strictObject({
    kind: CustodianKind.optional(),
    name: editable.name.optional(),
    house: editable.house.optional(),
    constituency: editable.constituency.optional(),
    email: editable.email.optional(),
    active: editable.active.optional(),
    leftOn: editable.leftOn.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { error: 'name at least one field to change' })
  .meta({ id: 'UpdateCustodian' })

export type CreateCustodianInput = z.infer<typeof CreateCustodianBody>
export type UpdateCustodianInput = z.infer<typeof UpdateCustodianBody>

export const CustodianListQuery = z.strictObject({
  active: QueryBoolean.optional(),
  kind: CustodianKind.optional(),
  q: Text(100).optional().meta({ description: 'Part of the name, any case.' }),
  ...PageQuery,
})

export const EraseCustodianBody = z.strictObject({
  reason: Text(500).meta({ description: 'Why (a data subject\'s request and its reference, say): kept in the erasure\'s audit event.' }),
})
