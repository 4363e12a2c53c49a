/**
 * A made-up parliament for the demo: about 650 MPs and 800 peers with invented names, their
 * kit, and a year (2025) in which 27 items were lost or stolen and only 2 were found — the story
 * the register was built to answer. Deterministic: the same options give the same data.
 */

/** A small seeded PRNG (mulberry32), so the demo is the same on every machine. */
function random(seed: number) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const FIRST = ['Alex', 'Bea', 'Cal', 'Dana', 'Eli', 'Fern', 'Gus', 'Hana', 'Ira', 'Jude', 'Kit', 'Lena', 'Milo', 'Nia', 'Owen', 'Pia', 'Quin', 'Rhys', 'Sian', 'Tom', 'Una', 'Vic', 'Wren', 'Yara', 'Zac', 'Ada', 'Bryn', 'Cora', 'Dev', 'Esme']
const LAST = ['Ashdown', 'Brackley', 'Corran', 'Dunmore', 'Elsworth', 'Farrow', 'Gatley', 'Hollins', 'Ingram', 'Jessop', 'Kettering', 'Lowther', 'Marsden', 'Norbury', 'Oakes', 'Pennock', 'Quarry', 'Ridley', 'Stanway', 'Thursby', 'Upton', 'Varley', 'Whitlow', 'Yarwood', 'Aldous', 'Beecroft', 'Calloway', 'Derwent', 'Eskdale', 'Fenwick']
const PLACE = ['Ashford', 'Bramley', 'Calder', 'Dunham', 'Easton', 'Fulbeck', 'Glenmoor', 'Harwood', 'Ilsley', 'Kelby', 'Langtoft', 'Marden', 'Netherby', 'Oxley', 'Pelham', 'Ravensby', 'Saltmarsh', 'Thornby', 'Upwell', 'Westbury', 'Yeldon', 'Alnmouth']
const AREA = ['North', 'South', 'East', 'West', 'Central', 'and the Vale', 'Rural', 'and District', 'Moor', 'Coast']
const TITLE = ['Lord', 'Baroness', 'Lord', 'Baroness', 'The Earl of', 'Viscount']

export interface DemoCustodian {
  key: string
  kind: 'mp' | 'peer' | 'staff' | 'office'
  name: string
  constituency?: string
  email?: string
  /** Left at the general election but still holds kit (the unreturned report). */
  leftOn?: string
}

export interface DemoDevice {
  key: string
  assetTag: string
  kind: 'laptop' | 'phone' | 'tablet' | 'desktop' | 'removable_media' | 'security_token'
  make: string
  model: string
  serialNumber: string
  imei?: string
  encrypted: boolean
  mdmEnrolled: boolean
  classification: 'official' | 'official_sensitive' | 'secret'
  purchasedOn: string
  costPence: number
  holder?: string
  assignedAt?: string
}

export interface DemoIncident {
  device: string
  kind: 'lost' | 'stolen'
  occurredAt?: string
  reportedAt: string
  location: { category: 'parliamentary_estate' | 'constituency_office' | 'home' | 'transit' | 'abroad' | 'other'; description?: string }
  circumstances: string
  policeReference?: string
  personalDataAtRisk: boolean
  remoteWipe: 'not_requested' | 'requested' | 'confirmed' | 'not_possible'
  icoReportedAt?: string
  notes?: string[]
  recovery?: { recoveredAt: string; condition: 'intact' | 'damaged' | 'tampered'; notes?: string }
  close?: string
}

export interface DemoDataSet {
  custodians: DemoCustodian[]
  devices: DemoDevice[]
  incidents: DemoIncident[]
}

export interface DemoOptions {
  mps?: number
  peers?: number
  staff?: number
  offices?: number
}

/** The check digit that makes a 14-digit body a valid 15-digit IMEI (Luhn). */
export function luhnCheckDigit(body: string): number {
  let sum = 0
  for (let i = 0; i < body.length; i++) {
    let digit = Number(body[body.length - 1 - i])
    if (i % 2 === 0) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
  }
  return (10 - (sum % 10)) % 10
}

const pad = (n: number, width: number) => String(n).padStart(width, '0')

export const GENERAL_ELECTION = '2024-07-04'
export const STORY_YEAR = 2025

export function demoDataSet(options: DemoOptions = {}): DemoDataSet {
  const { mps = 650, peers = 800, staff = 200, offices = 30 } = options
  const rand = random(2025)
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)]!
  const personName = (i: number) => `${FIRST[i % FIRST.length]} ${LAST[Math.floor(i / FIRST.length) % LAST.length]}${i >= FIRST.length * LAST.length ? `-${pick(LAST)}` : ''}`

  const custodians: DemoCustodian[] = []
  for (let i = 0; i < mps; i++) {
    const constituency = `${PLACE[i % PLACE.length]} ${AREA[Math.floor(i / PLACE.length) % AREA.length]}${i >= PLACE.length * AREA.length ? ` ${Math.floor(i / (PLACE.length * AREA.length)) + 1}` : ''}`
    custodians.push({
      key: `mp${i}`,
      kind: 'mp',
      name: personName(i),
      constituency,
      email: `mp${pad(i, 3)}@members.example.org`,
      // One in twenty left at the election and has not handed back their kit.
      ...(i % 20 === 7 ? { leftOn: GENERAL_ELECTION } : {}),
    })
  }
  for (let i = 0; i < peers; i++) {
    custodians.push({ key: `peer${i}`, kind: 'peer', name: `${TITLE[i % TITLE.length]} ${PLACE[(i * 7) % PLACE.length]} ${i + 1}`, email: `peer${pad(i, 3)}@lords.example.org` })
  }
  for (let i = 0; i < staff; i++) {
    custodians.push({ key: `staff${i}`, kind: 'staff', name: personName(i * 3 + 11), email: `staff${pad(i, 3)}@staff.example.org` })
  }
  for (let i = 0; i < offices; i++) {
    custodians.push({ key: `office${i}`, kind: 'office', name: `${PLACE[i % PLACE.length]} constituency office ${i + 1}` })
  }

  const devices: DemoDevice[] = []
  const counters: Record<string, number> = {}
  const device = (kind: DemoDevice['kind'], holder: string | undefined, assignedAt: string | undefined): DemoDevice => {
    counters[kind] = (counters[kind] ?? 0) + 1
    const n = counters[kind]!
    const prefix = { laptop: 'L', phone: 'P', tablet: 'T', desktop: 'D', removable_media: 'R', security_token: 'K' }[kind]
    const spec = {
      laptop: { make: 'Dell', model: pick(['Latitude 7440', 'Latitude 5540']), cost: 112_000 },
      phone: { make: 'Apple', model: pick(['iPhone 14', 'iPhone 15']), cost: 69_900 },
      tablet: { make: 'Apple', model: 'iPad Air', cost: 59_900 },
      desktop: { make: 'HP', model: 'EliteDesk 800', cost: 89_000 },
      removable_media: { make: 'Kingston', model: 'IronKey D300', cost: 9_000 },
      security_token: { make: 'Yubico', model: 'YubiKey 5 NFC', cost: 4_500 },
    }[kind]
    // Older laptops and USB sticks are where the unencrypted, unmanaged kit hides.
    const legacy = (kind === 'laptop' || kind === 'removable_media') && rand() < 0.08
    const managed = kind === 'laptop' || kind === 'phone' || kind === 'tablet' || kind === 'desktop'
    const imeiBody = `35${pad(Math.floor(rand() * 1e12), 12)}`
    return {
      key: `${kind}${n}`,
      assetTag: `PA-${prefix}${pad(n, 5)}`,
      kind,
      make: spec.make,
      model: spec.model,
      serialNumber: `${prefix}${pad(Math.floor(rand() * 1e9), 9)}${pad(n, 5)}`,
      ...(kind === 'phone' ? { imei: `${imeiBody}${luhnCheckDigit(imeiBody)}` } : {}),
      encrypted: !legacy,
      mdmEnrolled: managed && !legacy && rand() > 0.03,
      classification: rand() < 0.05 ? 'secret' : rand() < 0.3 ? 'official_sensitive' : 'official',
      purchasedOn: `202${Math.floor(rand() * 4) + 1}-${pad(Math.floor(rand() * 12) + 1, 2)}-15`,
      costPence: spec.cost,
      ...(holder ? { holder } : {}),
      ...(assignedAt ? { assignedAt } : {}),
    }
  }

  for (const custodian of custodians) {
    const since = custodian.leftOn ? '2022-03-01T09:00:00Z' : '2024-07-15T09:00:00Z'
    if (custodian.kind === 'mp') {
      devices.push(device('laptop', custodian.key, since), device('phone', custodian.key, since), device('security_token', custodian.key, since))
    } else if (custodian.kind === 'peer') {
      devices.push(device('tablet', custodian.key, since))
    } else if (custodian.kind === 'staff') {
      devices.push(device('laptop', custodian.key, since))
      if (rand() < 0.2) devices.push(device('removable_media', custodian.key, since))
    } else {
      devices.push(device('desktop', custodian.key, since))
    }
  }
  const spares = Math.max(10, Math.round(devices.length * 0.04))
  for (let i = 0; i < spares; i++) devices.push(device(pick(['laptop', 'phone', 'tablet'] as const), undefined, undefined))

  return { custodians, devices, incidents: storyIncidents(devices, custodians) }
}

/**
 * The year's losses, written out by hand for variety: 27 in 2025, of which 2 were found; and a few
 * from 2024 (found or written off) so that a multi-year view has something to compare.
 */
function storyIncidents(devices: DemoDevice[], custodians: DemoCustodian[]): DemoIncident[] {
  const current = new Set(custodians.filter((c) => !c.leftOn).map((c) => c.key))
  const used = new Set<string>()
  const held = (kind: DemoDevice['kind'], nth: number, holder?: string): string => {
    const candidates = devices.filter(
      (d) => d.kind === kind && d.holder && current.has(d.holder) && !used.has(d.key) && (!holder || d.holder === holder),
    )
    const chosen = candidates[(nth * 37) % candidates.length]
    if (!chosen) throw new Error(`the demo data set has no ${kind} to lose`)
    used.add(chosen.key)
    return chosen.key
  }
  const mpWithTwo = devices.find((d) => d.kind === 'phone' && d.holder && current.has(d.holder))!.holder!
  const staffWithTwo = devices.find((d) => d.kind === 'removable_media' && d.holder && current.has(d.holder))!.holder!

  type Row = [DemoDevice['kind'], 'lost' | 'stolen', string, DemoIncident['location']['category'], boolean, DemoIncident['remoteWipe'], Partial<DemoIncident>?]
  const rows2025: Row[] = [
    ['phone', 'lost', '2025-01-08T10:12:00Z', 'transit', true, 'confirmed', { notes: ['Member called back: last used on the train to Euston.'] }],
    ['laptop', 'stolen', '2025-01-21T08:40:00Z', 'home', true, 'confirmed', { policeReference: 'MET-2501-4471', icoReportedAt: '2025-01-22T15:00:00Z' }],
    ['security_token', 'lost', '2025-02-03T14:05:00Z', 'parliamentary_estate', false, 'not_possible'],
    ['tablet', 'lost', '2025-02-17T09:30:00Z', 'transit', false, 'confirmed'],
    ['phone', 'stolen', '2025-03-04T19:55:00Z', 'abroad', true, 'requested', { policeReference: 'BRU-2025-118', location: { category: 'abroad', description: 'Brussels, during a delegation visit' } }],
    ['laptop', 'lost', '2025-03-26T11:00:00Z', 'constituency_office', false, 'confirmed', { recovery: { recoveredAt: '2025-04-02T10:00:00Z', condition: 'intact', notes: 'Found in a locked cabinet at the office.' } }],
    ['removable_media', 'lost', '2025-04-09T16:20:00Z', 'parliamentary_estate', true, 'not_possible'],
    ['phone', 'lost', '2025-04-28T07:45:00Z', 'transit', false, 'confirmed', { recovery: { recoveredAt: '2025-05-06T12:30:00Z', condition: 'damaged', notes: 'Handed in at a railway lost-property office.' } }],
    ['tablet', 'stolen', '2025-05-13T22:10:00Z', 'home', false, 'confirmed', { policeReference: 'GMP-25-30917' }],
    ['laptop', 'lost', '2025-05-30T13:15:00Z', 'other', true, 'requested'],
    ['security_token', 'lost', '2025-06-11T09:05:00Z', 'transit', false, 'not_possible'],
    ['phone', 'stolen', '2025-06-24T18:30:00Z', 'transit', true, 'confirmed', { policeReference: 'BTP-2506-2231' }],
    ['laptop', 'stolen', '2025-07-07T12:00:00Z', 'abroad', true, 'not_requested', { location: { category: 'abroad', description: 'Hotel room, party conference abroad' } }],
    ['tablet', 'lost', '2025-07-22T15:40:00Z', 'home', false, 'confirmed'],
    ['phone', 'lost', '2025-08-05T10:25:00Z', 'constituency_office', false, 'confirmed'],
    ['desktop', 'stolen', '2025-08-19T06:50:00Z', 'constituency_office', true, 'not_possible', { policeReference: 'WMP-25-88102', icoReportedAt: '2025-08-20T11:00:00Z' }],
    ['security_token', 'lost', '2025-09-02T17:35:00Z', 'home', false, 'not_possible'],
    ['laptop', 'lost', '2025-09-16T08:10:00Z', 'transit', false, 'confirmed'],
    ['phone', 'lost', '2025-09-30T20:45:00Z', 'other', true, 'requested'],
    ['tablet', 'stolen', '2025-10-14T13:00:00Z', 'transit', false, 'confirmed', { policeReference: 'BTP-2510-0077' }],
    ['removable_media', 'lost', '2025-10-28T10:00:00Z', 'constituency_office', true, 'not_possible'],
    ['laptop', 'stolen', '2025-11-11T19:20:00Z', 'home', true, 'confirmed', { policeReference: 'TVP-25-55120' }],
    ['phone', 'lost', '2025-11-25T09:15:00Z', 'parliamentary_estate', false, 'confirmed'],
    ['tablet', 'lost', '2025-12-03T16:45:00Z', 'transit', false, 'requested'],
    ['security_token', 'stolen', '2025-12-10T21:30:00Z', 'transit', false, 'not_possible'],
    ['laptop', 'lost', '2025-12-17T11:50:00Z', 'other', false, 'confirmed'],
    ['phone', 'lost', '2025-12-30T23:30:00Z', 'home', true, 'requested'],
  ]
  const rows2024: Row[] = [
    ['laptop', 'lost', '2024-02-12T10:00:00Z', 'transit', false, 'confirmed', { close: 'Not found after a search of the train company lost property; written off.' }],
    ['phone', 'stolen', '2024-05-20T18:00:00Z', 'home', true, 'confirmed', { policeReference: 'MET-2405-1212', icoReportedAt: '2024-05-21T09:00:00Z', close: 'Police closed the case; device wiped; written off.' }],
    ['tablet', 'lost', '2024-09-09T09:00:00Z', 'parliamentary_estate', false, 'confirmed', { recovery: { recoveredAt: '2024-09-10T12:00:00Z', condition: 'intact' } }],
  ]

  const build = (rows: Row[], offset: number): DemoIncident[] =>
    rows.map(([kind, incidentKind, reportedAt, category, personal, wipe, extra = {}], i) => {
      // Two custodians lose twice in the year (an MP's phone and token, a clerk's USB stick and
      // laptop): the repeat-custodian list has someone in it.
      const repeat = offset === 0 ? { 0: mpWithTwo, 2: mpWithTwo, 6: staffWithTwo, 9: staffWithTwo }[i] : undefined
      const holder = repeat
      const occurred = new Date(Date.parse(reportedAt) - (2 + ((i * 7) % 40)) * 3600_000).toISOString()
      return {
        device: held(kind, i + offset, holder),
        kind: incidentKind,
        ...(i % 5 === 4 ? {} : { occurredAt: occurred }),
        reportedAt,
        location: { category },
        circumstances: `${incidentKind === 'stolen' ? 'Reported stolen' : 'Reported lost'} by the custodian; see notes for follow-up.`,
        personalDataAtRisk: personal,
        remoteWipe: wipe,
        ...extra,
      }
    })
  return [...build(rows2024, 100), ...build(rows2025, 0)]
}
