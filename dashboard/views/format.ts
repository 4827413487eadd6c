import type { OldestAge, QueueSample } from "../monitor.ts";
import { type Html, h } from "./html.ts";

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${Math.round(seconds % 60)} s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} m`;
  return `${Math.floor(seconds / 86_400)} d ${Math.round((seconds % 86_400) / 3600)} h`;
}

export function ago(iso: string | undefined, now: number): string {
  if (!iso) return "—";
  return `${formatDuration(Math.max(0, (now - Date.parse(iso)) / 1000))} ago`;
}

export function latency(r: { created_at: string; completed_at?: string | undefined }): string {
  if (!r.completed_at) return "—";
  return formatDuration((Date.parse(r.completed_at) - Date.parse(r.created_at)) / 1000);
}

/** UUIDv7 ids share their leading (time) digits: the list shows the start and the distinct end. */
export function shortId(id: string): string {
  return id.length > 22 ? `${id.slice(0, 12)}…${id.slice(-6)}` : id;
}

export function oldest(age: OldestAge): Html {
  switch (age.kind) {
    case "empty":
      return h`<span class="muted">—</span>`;
    case "at-most":
      return h`<span title="upper bound: the queue was last seen empty this long ago">≤ ${formatDuration(age.seconds)}</span>`;
    case "at-least":
      return h`<span title="lower bound: the oldest message among those peeked">≥ ${formatDuration(age.seconds)}</span>`;
    case "unknown":
      return h`<span class="muted" title="not seen empty since the dashboard started ${formatDuration(age.watchingSeconds)} ago">?</span>`;
  }
}

/** A small SVG line of visible + in-flight messages over the history window. */
export function sparkline(history: readonly QueueSample[], label: string): Html {
  const width = 120;
  const height = 24;
  const values = history.map((s) => s.visible + s.inFlight + s.delayed);
  const max = Math.max(1, ...values);
  if (values.length < 2) {
    return h`<svg class="spark" viewBox="0 0 ${width} ${height}" role="img" aria-label="${label}: not enough history yet"></svg>`;
  }
  const first = history[0]!.at;
  const span = Math.max(1, history.at(-1)!.at - first);
  const points = history
    .map((s, i) => {
      const x = ((s.at - first) / span) * (width - 2) + 1;
      const y = height - 1 - (values[i]! / max) * (height - 2);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
  const minutes = Math.max(1, Math.round(span / 60_000));
  return h`<svg class="spark" viewBox="0 0 ${width} ${height}" role="img" aria-label="${label}: ${Math.min(...values)} to ${max} messages over the last ${minutes} min"><polyline points="${points}" /></svg>`;
}
