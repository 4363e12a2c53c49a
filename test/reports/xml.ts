/**
 * A small strict XML reader for tests: no XML parser is installed, and an SVG served by us must
 * be well-formed. It refuses what a real parser refuses that we could plausibly produce: mismatched
 * or unclosed tags, a raw `<` or a bad `&` in text or attributes, duplicate or unquoted attributes,
 * more than one root, text outside the root. It returns the element tree.
 */
export interface XmlElement {
  name: string
  attributes: Record<string, string>
  children: XmlElement[]
  /** The element's own text, entities decoded (children's text not included). */
  text: string
}

const NAME = /^[A-Za-z_:][A-Za-z0-9_:.-]*/
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decode(raw: string, where: string): string {
  if (raw.includes('<')) throw new Error(`raw '<' in ${where}`)
  return raw.replace(/&([^;]*);|&/g, (whole, entity: string | undefined) => {
    if (entity === undefined) throw new Error(`bare '&' in ${where}`)
    if (entity in ENTITIES) return ENTITIES[entity]!
    const numeric = /^#(?:x([0-9a-fA-F]+)|([0-9]+))$/.exec(entity)
    if (numeric) return String.fromCodePoint(numeric[1] ? parseInt(numeric[1], 16) : Number(numeric[2]))
    throw new Error(`unknown entity &${entity}; in ${where}`)
  })
}

export function parseXml(source: string): XmlElement {
  let at = 0
  const stack: XmlElement[] = []
  let root: XmlElement | undefined
  const fail = (message: string): never => {
    throw new Error(`${message} at offset ${at}`)
  }
  if (source.startsWith('<?xml')) at = source.indexOf('?>') + 2
  while (at < source.length) {
    const next = source.indexOf('<', at)
    const text = source.slice(at, next === -1 ? source.length : next)
    if (text.length) {
      const current = stack.at(-1)
      if (!current) {
        if (text.trim()) fail('text outside the root element')
      } else current.text += decode(text, `<${current.name}>`)
    }
    if (next === -1) break
    at = next
    if (source.startsWith('<!--', at)) {
      const end = source.indexOf('-->', at)
      if (end === -1) fail('unclosed comment')
      at = end + 3
      continue
    }
    if (source.startsWith('</', at)) {
      const match = /^<\/([A-Za-z_:][A-Za-z0-9_:.-]*)\s*>/.exec(source.slice(at))
      if (!match) fail('bad closing tag')
      const open = stack.pop()
      if (!open || open.name !== match![1]) fail(`</${match![1]}> does not close <${open?.name}>`)
      at += match![0].length
      continue
    }
    at += 1
    const name = NAME.exec(source.slice(at))?.[0] ?? fail('bad element name')
    at += name.length
    const element: XmlElement = { name, attributes: {}, children: [], text: '' }
    for (;;) {
      const space = /^\s*/.exec(source.slice(at))![0]
      at += space.length
      if (source.startsWith('/>', at) || source.startsWith('>', at)) break
      if (!space) fail(`attributes of <${name}> need spaces between them`)
      const attribute = /^([A-Za-z_:][A-Za-z0-9_:.-]*)\s*=\s*("([^"]*)"|'([^']*)')/.exec(source.slice(at))
      if (!attribute) fail(`bad attribute in <${name}>`)
      const [whole, key, , double, single] = attribute!
      if (key! in element.attributes) fail(`duplicate attribute ${key} in <${name}>`)
      element.attributes[key!] = decode(double ?? single ?? '', `attribute ${key}`)
      at += whole.length
    }
    const parent = stack.at(-1)
    if (parent) parent.children.push(element)
    else if (root) fail('a second root element')
    else root = element
    if (source.startsWith('/>', at)) at += 2
    else {
      at += 1
      stack.push(element)
    }
  }
  if (stack.length) fail(`<${stack.at(-1)!.name}> is not closed`)
  return root ?? fail('no root element')
}

/** Every element below (and including) this one, depth first. */
export function allElements(element: XmlElement): XmlElement[] {
  return [element, ...element.children.flatMap(allElements)]
}
