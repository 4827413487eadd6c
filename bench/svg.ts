/**
 * Plain SVG charts, written by hand: a line chart (linear or log x) and a
 * horizontal bar chart. No fonts beyond the generic family, no scripts, no
 * external references, so a browser, GitHub and rsvg-convert render the same
 * picture.
 */

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Logarithmic x axis (latency CDFs, concurrency sweeps). @default false */
  xLog?: boolean;
  /** Fix the y range (a CDF is 0..1). */
  yMax?: number;
  /** Draw a marker at each point (sweeps), not only lines (CDFs). @default true */
  markers?: boolean;
  /** Where the legend goes: rising curves leave the top left empty, CDFs the bottom right. @default "top-left" */
  legend?: "top-left" | "bottom-right";
  /** Format of y tick labels. */
  yFormat?: (v: number) => string;
}

export interface Bar {
  label: string;
  value: number;
  /** A second text after the value, e.g. a share of the total. */
  note?: string;
}

export interface BarChartOptions {
  title: string;
  unit: string;
  bars: readonly Bar[];
}

/** Colour-blind-safe palette (Okabe–Ito). */
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

const W = 720;
const H = 420;
const M = { top: 48, right: 24, bottom: 64, left: 72 };
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

/** Escapes text for SVG content and attributes. */
export function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 1-2-5 ticks covering [min, max]. */
export function niceTicks(min: number, max: number, target = 6): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step)
    ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Powers of ten (and 2, 5 between when the span is short) covering [min, max]. */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) {
    for (const m of hi - lo <= 2 ? [1, 2, 5] : [1]) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(Number(v.toPrecision(12)));
    }
  }
  return ticks;
}

/** Short number labels: 1500 → "1.5k", 0.25 → "0.25". */
function fmt(v: number): string {
  if (Math.abs(v) >= 1000) return `${Number((v / 1000).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

function frame(title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT}>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold" fill="#222">${esc(title)}</text>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

/**
 * @example
 * lineChart({ title: "Throughput", xLabel: "concurrency", yLabel: "req/s", xLog: true,
 *   series: [{ name: "direct", points: [[1, 2], [16, 30]] }] });
 */
export function lineChart(options: LineChartOptions): string {
  const all = options.series
    .flatMap((s) => s.points)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xLog = options.xLog ?? false;
  const markers = options.markers ?? true;
  const yFormat = options.yFormat ?? fmt;
  const xs = all.map(([x]) => x).filter((x) => !xLog || x > 0);
  let xMin = xs.length ? Math.min(...xs) : 0;
  let xMax = xs.length ? Math.max(...xs) : 1;
  if (xMax === xMin) {
    xMin = xLog ? xMin / 2 : xMin - 1;
    xMax = xLog ? xMax * 2 : xMax + 1;
  }
  if (!xLog) xMin = Math.min(0, xMin);
  const yMax = options.yMax ?? Math.max(1e-9, ...all.map(([, y]) => y)) * 1.08;
  const yTicks = niceTicks(0, yMax);
  const yTop = Math.max(yMax, yTicks.at(-1)!);
  const xTicks = xLog ? logTicks(xMin, xMax) : niceTicks(xMin, xMax);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x: number) =>
    M.left +
    (xLog
      ? ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * pw
      : ((x - xMin) / (xMax - xMin)) * pw);
  const sy = (y: number) => M.top + ph - (y / yTop) * ph;
  const body: string[] = [];
  for (const t of yTicks) {
    body.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 8}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" font-size="12" fill="#444">${esc(yFormat(t))}</text>`,
    );
  }
  for (const t of xTicks) {
    body.push(
      `<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${M.top}" y2="${M.top + ph}" stroke="#f0f0f0"/>`,
      `<text x="${sx(t).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle" font-size="12" fill="#444">${esc(fmt(t))}</text>`,
    );
  }
  body.push(
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 16}" text-anchor="middle" font-size="13" fill="#222">${esc(options.xLabel)}${xLog ? " (log scale)" : ""}</text>`,
    `<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">${esc(options.yLabel)}</text>`,
  );
  options.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!xLog || x > 0));
    if (pts.length > 0) {
      const d = pts
        .map(([x, y], j) => `${j === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
        .join(" ");
      body.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2.5" stroke-linejoin="round"/>`);
      if (markers) {
        for (const [x, y] of pts) {
          body.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="4" fill="${colour}"/>`);
        }
      }
    }
    const bottom = options.legend === "bottom-right";
    const ly = bottom ? M.top + ph - 10 - (options.series.length - 1 - i) * 18 : M.top + 14 + i * 18;
    const lx = bottom ? M.left + pw - 300 : M.left + 12;
    body.push(
      `<rect x="${lx}" y="${ly - 9}" width="14" height="4" fill="${colour}"/>`,
      `<text x="${lx + 20}" y="${ly - 3}" font-size="12" fill="#222">${esc(s.name)}${pts.length ? "" : " (no data)"}</text>`,
    );
  });
  return frame(options.title, body);
}

/**
 * Horizontal bars, one per row, value printed at the end of each.
 *
 * @example barChart({ title: "Stages", unit: "ms", bars: [{ label: "model", value: 950 }] });
 */
export function barChart(options: BarChartOptions): string {
  const labelWidth = 250;
  const rowH = 30;
  const height = M.top + options.bars.length * rowH + 40;
  const pw = W - labelWidth - 140;
  const max = Math.max(1e-9, ...options.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const body: string[] = [];
  options.bars.forEach((bar, i) => {
    const y = M.top + i * rowH;
    const value = Number.isFinite(bar.value) ? bar.value : 0;
    const w = Math.max(1, (value / max) * pw);
    const colour = PALETTE[i % PALETTE.length]!;
    body.push(
      `<text x="${labelWidth - 8}" y="${y + 19}" text-anchor="end" font-size="13" fill="#222">${esc(bar.label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 5}" width="${w.toFixed(1)}" height="${rowH - 10}" fill="${colour}"/>`,
      `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + 19}" font-size="12" fill="#222">${esc(`${Number.isFinite(bar.value) ? fmt(bar.value) : "n/a"} ${options.unit}${bar.note ? ` ${bar.note}` : ""}`)}</text>`,
    );
  });
  body.push(
    `<line x1="${labelWidth}" x2="${labelWidth}" y1="${M.top}" y2="${M.top + options.bars.length * rowH}" stroke="#888"/>`,
  );
  const svg = frame(options.title, body);
  return svg
    .replace(`height="${H}" viewBox="0 0 ${W} ${H}"`, `height="${height}" viewBox="0 0 ${W} ${height}"`)
    .replace(`<rect width="${W}" height="${H}"`, `<rect width="${W}" height="${height}"`);
}
