/**
 * The risk summary as an SVG chart, rendered as a string on the server (no browser, no library):
 * grouped bars of losses, thefts and recoveries per UK-local month, with the outstanding total.
 *
 * Each series has its own fill pattern (diagonal hatching, cross-hatching, dots) as well as its
 * own colour, so the chart reads when printed in black and white. Every bar is drawn, a zero-height
 * one for an empty month, so there is exactly one mark per month per series.
 */
import type { Period } from './periods.js'
import type { RiskSummary } from './risk-summary.js'

const SERIES = [
  { key: 'lost', label: 'Lost', colour: '#1f4e79', pattern: 'hatch-lost' },
  { key: 'stolen', label: 'Stolen', colour: '#b03a2e', pattern: 'hatch-stolen' },
  { key: 'recovered', label: 'Recovered', colour: '#1e7b34', pattern: 'dots-recovered' },
] as const

const WIDTH = 960
const HEIGHT = 480
const MARGIN = { top: 70, right: 24, bottom: 90, left: 64 }
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom
/** Month labels closer than this would overlap; only every n-th month is labelled then. */
const MIN_LABEL_GAP = 44

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`)
}

const num = (value: number) => String(Math.round(value * 100) / 100)

/** Round numbers for the axis: the smallest of 1, 2, 5 × 10^k that gives at most 5 steps. */
function axisStep(max: number): number {
  if (max <= 5) return 1
  for (let magnitude = 1; ; magnitude *= 10) {
    for (const base of [1, 2, 5]) if (max / (base * magnitude) <= 5) return base * magnitude
  }
}

const PATTERNS = `<defs>
<pattern id="hatch-lost" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">
<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="${SERIES[0].colour}" stroke-width="3"/>
</pattern>
<pattern id="hatch-stolen" patternUnits="userSpaceOnUse" width="6" height="6">
<rect width="6" height="6" fill="#ffffff"/><path d="M0 0L6 6M6 0L0 6" stroke="${SERIES[1].colour}" stroke-width="1.5"/>
</pattern>
<pattern id="dots-recovered" patternUnits="userSpaceOnUse" width="5" height="5">
<rect width="5" height="5" fill="#ffffff"/><circle cx="2.5" cy="2.5" r="1.4" fill="${SERIES[2].colour}"/>
</pattern>
</defs>`

export function renderRiskChart(summary: RiskSummary, period: Period): string {
  const title = `Losses, thefts and recoveries by month, ${period.description}`
  const months = summary.byMonth
  const max = Math.max(0, ...months.flatMap((m) => [m.lost, m.stolen, m.recovered]))
  const step = axisStep(max)
  const top = Math.max(step, Math.ceil(max / step) * step)
  const y = (value: number) => MARGIN.top + PLOT_H - (value / top) * PLOT_H
  const group = PLOT_W / Math.max(1, months.length)
  const bar = (group * 0.8) / SERIES.length
  const labelEvery = Math.max(1, Math.ceil(MIN_LABEL_GAP / group))

  const out: string[] = []
  // The <title> follows the opening tag with nothing between, so it is the root's first child node.
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" font-family="sans-serif" font-size="12">` +
      `<title id="chart-title">${escapeXml(title)}</title>`,
  )
  out.push(
    `<desc id="chart-desc">${escapeXml(
      `Incidents reported from ${summary.period.from} to ${summary.period.to} (exclusive), by UK-local month: ` +
        `${summary.totals.lost} lost, ${summary.totals.stolen} stolen, ${summary.totals.recovered} recovered; ` +
        `${summary.totals.outstanding} outstanding.`,
    )}</desc>`,
  )
  out.push(PATTERNS)
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`)
  out.push(`<text x="${MARGIN.left}" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>`)
  out.push(
    `<text class="outstanding" x="${MARGIN.left}" y="44">${escapeXml(`Outstanding (still open): ${summary.totals.outstanding}`)}</text>`,
  )

  // Y axis: gridlines and counts.
  out.push(`<g class="y-axis">`)
  for (let value = 0; value <= top; value += step) {
    out.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${num(y(value))}" y2="${num(y(value))}" stroke="#cccccc"/>` +
        `<text x="${MARGIN.left - 6}" y="${num(y(value) + 4)}" text-anchor="end">${value}</text>`,
    )
  }
  const midY = MARGIN.top + PLOT_H / 2
  out.push(`<text x="16" y="${num(midY)}" transform="rotate(-90 16 ${num(midY)})" text-anchor="middle">Incidents</text>`)
  out.push(`</g>`)

  // Bars: one per month per series, zero-height when the month had none.
  out.push(`<g class="bars">`)
  months.forEach((month, index) => {
    const x0 = MARGIN.left + index * group + group * 0.1
    SERIES.forEach((series, s) => {
      const value = month[series.key]
      out.push(
        `<rect class="bar" data-series="${series.key}" data-month="${escapeXml(month.month)}" data-value="${value}" ` +
          `x="${num(x0 + s * bar)}" y="${num(y(value))}" width="${num(bar)}" height="${num(MARGIN.top + PLOT_H - y(value))}" ` +
          `fill="url(#${series.pattern})" stroke="${series.colour}" stroke-width="1">` +
          `<title>${escapeXml(`${series.label}, ${month.month}: ${value}`)}</title></rect>`,
      )
    })
  })
  out.push(`</g>`)

  // X axis: the baseline and month labels.
  out.push(`<g class="x-axis">`)
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${MARGIN.top + PLOT_H}" y2="${MARGIN.top + PLOT_H}" stroke="#000000"/>`)
  months.forEach((month, index) => {
    if (index % labelEvery !== 0) return
    const x = MARGIN.left + index * group + group / 2
    const labelY = MARGIN.top + PLOT_H + 16
    out.push(
      `<text x="${num(x)}" y="${labelY}" text-anchor="end" transform="rotate(-45 ${num(x)} ${labelY})">${escapeXml(month.month)}</text>`,
    )
  })
  out.push(`<text x="${num(MARGIN.left + PLOT_W / 2)}" y="${HEIGHT - 8}" text-anchor="middle">Month reported (UK local time)</text>`)
  out.push(`</g>`)

  // Legend: a swatch of each pattern with its name.
  out.push(`<g class="legend">`)
  SERIES.forEach((series, s) => {
    const x = WIDTH - MARGIN.right - (SERIES.length - s) * 110
    out.push(
      `<rect x="${x}" y="34" width="16" height="12" fill="url(#${series.pattern})" stroke="${series.colour}"/>` +
        `<text x="${x + 22}" y="44">${escapeXml(series.label)}</text>`,
    )
  })
  out.push(`</g>`)
  out.push(`</svg>`)
  return out.join('\n') + '\n'
}
