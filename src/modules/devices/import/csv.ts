/**
 * The import's CSV reader: the records of a text, one at a time, each with the line it starts on.
 *
 * The import used csv-parse, and its tests still hold this reader to it. But for every record
 * whose number of cells differs from the first record's, csv-parse builds an Error (a stack trace
 * and JSON copies of its state), even when told to accept such records, and keeps it with the
 * record: a file of short lines of the wrong width cost many times its size in time and memory.
 * The import must answer a file of bad lines in time that follows its size, so it reads its one
 * dialect itself, in a single pass over the text.
 *
 * The dialect is csv-parse's with `bom`, `trim` and `skip_empty_lines`: cells are separated by
 * commas; a cell may be quoted (a quote inside it doubled) and then hold commas and line breaks;
 * blanks (JavaScript's whitespace, as csv-parse trims) around a cell are dropped, inside quotes
 * kept; records end at the file's line break (the first met outside quotes: CRLF, LF or CR);
 * lines of nothing but blanks are skipped, and counted; a byte order mark at the start is dropped.
 * A quote inside an unquoted cell, anything but blanks after a closing quote, or a quote never
 * closed makes the file unreadable, at that line.
 */

const COMMA = 0x2c
const QUOTE = 0x22
const LF = 0x0a
const CR = 0x0d

/** JavaScript's whitespace (`\s`): the blanks that `trim` drops around cells. */
function isBlank(code: number): boolean {
  return (
    code === 0x20 || (code >= 0x09 && code <= 0x0d) || code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000 || code === 0xfeff
  )
}

/**
 * A record (its first `maxCells` cells, and how many it has), the reason the text cannot be read
 * (the last item then), or a pause: another PAUSE_EVERY characters went by, and the caller should
 * let others run before asking for more (a stretch of blank lines, or one huge record, yields no
 * record for a long while).
 */
export type CsvItem =
  | { record: string[]; width: number; line: number }
  | { unreadable: { line: number; message: string } }
  | { pause: true }

/** Characters read between two pauses at most. */
const PAUSE_EVERY = 1024 * 1024

/**
 * The records of `text`. (The reader keeps its state in an object rather than in closures over the
 * text: V8 may build a closure's text into the closure's optimised code, which would then keep the
 * whole file alive after the import.)
 */
export function csvRecords(text: string, { maxCells = Infinity }: { maxCells?: number } = {}): Generator<CsvItem, void, undefined> {
  return new CsvReader(text, maxCells).records()
}

class CsvReader {
  private readonly end: number
  private at: number
  private line = 1
  private eol: 'unknown' | 'lf' | 'crlf' | 'cr' = 'unknown'
  private pausedAt = 0

  constructor(
    private readonly text: string,
    private readonly maxCells: number,
  ) {
    this.end = text.length
    this.at = text.charCodeAt(0) === 0xfeff ? 1 : 0
  }

  /** The length of the record break at `i`, 0 if there is none; the first line break outside quotes is the file's. */
  private recordBreak(i: number): number {
    const c = this.text.charCodeAt(i)
    if (c !== CR && c !== LF) return 0
    if (this.eol === 'unknown') this.eol = c === LF ? 'lf' : this.text.charCodeAt(i + 1) === LF ? 'crlf' : 'cr'
    if (this.eol === 'lf') return c === LF ? 1 : 0
    if (this.eol === 'cr') return c === CR ? 1 : 0
    return c === CR && this.text.charCodeAt(i + 1) === LF ? 2 : 0
  }

  /** Moves on to `to`, counting the lines passed (a line ends at CRLF, LF or a lone CR, in a cell or not). */
  private advance(to: number): void {
    for (let i = this.at; i < to; i++) {
      const c = this.text.charCodeAt(i)
      if (c === LF || (c === CR && this.text.charCodeAt(i + 1) !== LF)) this.line++
    }
    this.at = to
  }

  /** Moves past blanks that are not a record break; returns the length of the break reached, if one was. */
  private skipBlanks(): number {
    let i = this.at
    let found = 0
    while (i < this.end && (found = this.recordBreak(i)) === 0 && isBlank(this.text.charCodeAt(i))) i++
    this.advance(i)
    return found
  }

  *records(): Generator<CsvItem, void, undefined> {
    const { text, end } = this
    let cells: string[] = []
    let width = 0
    const add = (value: string) => {
      if (width++ < this.maxCells) cells.push(value)
    }
    let recordLine = 0
    for (;;) {
      if (this.at - this.pausedAt >= PAUSE_EVERY) {
        this.pausedAt = this.at
        yield { pause: true }
      }
      // A cell starts here, or the record ends (after a comma: with an empty cell; else a blank line).
      const blankEnd = this.skipBlanks()
      if (this.at === end || blankEnd > 0) {
        if (width > 0) {
          add('')
          yield { record: cells, width, line: recordLine }
        }
        if (this.at === end) return
        this.advance(this.at + blankEnd)
        cells = []
        width = 0
        recordLine = 0
        continue
      }
      if (recordLine === 0) recordLine = this.line

      if (text.charCodeAt(this.at) === QUOTE) {
        const quoteLine = this.line
        let value = ''
        let from = this.at + 1
        for (;;) {
          const close = text.indexOf('"', from)
          if (close === -1) {
            yield { unreadable: { line: quoteLine, message: 'Quote Not Closed: the quote that opens a cell on this line is never closed' } }
            return
          }
          if (text.charCodeAt(close + 1) === QUOTE) {
            value += text.slice(from, close + 1)
            from = close + 2
            continue
          }
          value += text.slice(from, close)
          this.advance(close + 1)
          break
        }
        // Blanks after it are dropped. (csv-parse reads an empty quoted cell followed by blanks and
        // quotes holding nothing but blanks, `"" " "`, as that one empty cell: so does the reader.)
        let afterEnd = this.skipBlanks()
        while (value === '' && afterEnd === 0 && text.charCodeAt(this.at) === QUOTE) {
          let j = this.at + 1
          while (j < end && isBlank(text.charCodeAt(j))) j++
          if (text.charCodeAt(j) !== QUOTE || text.charCodeAt(j + 1) === QUOTE) break
          this.advance(j + 1)
          afterEnd = this.skipBlanks()
        }
        add(value)
      } else {
        let i = this.at
        for (; i < end; i++) {
          const c = text.charCodeAt(i)
          if (c === COMMA || ((c === CR || c === LF) && this.recordBreak(i) > 0)) break
          if (c === QUOTE) {
            this.advance(i)
            yield {
              unreadable: {
                line: this.line,
                message: 'Invalid Opening Quote: a quote inside a cell that does not start with one (quote the whole cell and double the quotes in it)',
              },
            }
            return
          }
        }
        add(width < this.maxCells ? text.slice(this.at, i).trimEnd() : '')
        this.advance(i)
      }

      // After a cell: a comma and another cell, the end of the record, or the end of the text.
      if (this.at === end) {
        yield { record: cells, width, line: recordLine }
        return
      }
      if (text.charCodeAt(this.at) === COMMA) {
        this.advance(this.at + 1)
        continue
      }
      const recordEnd = this.recordBreak(this.at)
      if (recordEnd === 0) {
        yield { unreadable: { line: this.line, message: 'Invalid Closing Quote: a closing quote must be followed by a comma or the end of the line' } }
        return
      }
      yield { record: cells, width, line: recordLine }
      this.advance(this.at + recordEnd)
      cells = []
      width = 0
      recordLine = 0
    }
  }
}
