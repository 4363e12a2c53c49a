/**
 * Row ids are UUIDv7: unique without coordination, and time-ordered, so `ORDER BY id` is creation
 * order and a keyset cursor over `id` alone is stable.
 */
import { v7 } from 'uuid'

export const newId = (): string => v7()
