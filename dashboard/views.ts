import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { REQUEST_STATUSES } from "../events/common.ts";
import type { RecentRequest, StoredRequest } from "../functions/shared/stores/requests.ts";
import { maskString } from "./mask.ts";
import type {
  ModelServerView,
  OldestAge,
  PeekedMessage,
  QueueSample,
  QueueView,
  RedriveJob,
  TenantView,
} from "./monitor.ts";

/**
 * Every piece of the page, rendered on the server with hono's `html` (which
 * escapes every interpolated value). The live script swaps these fragments
 * in by id; the first page load renders the same ones, so the page works,
 * and reads, without script too.
 */
export type Html = HtmlEscapedString;

/** `html` for templates without promises inside: always synchronous. */
const h = (strings: TemplateStringsArray, ...values: unknown[]): Html => html(strings, ...values) as Html;

export interface Filters {
  tenant?: string;
  status?: string;
}

// ---------- formatting ----------

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${Math.round(seconds % 60)} s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} m`;
  return `${Math.floor(seconds / 86_400)} d ${Math.round((seconds % 86_400) / 3600)} h`;
}

function ago(iso: string | undefined, now: number): string {
  if (!iso) return "—";
  return `${formatDuration(Math.max(0, (now - Date.parse(iso)) / 1000))} ago`;
}

function latency(r: { created_at: string; completed_at?: string | undefined }): string {
  if (!r.completed_at) return "—";
  return formatDuration((Date.parse(r.completed_at) - Date.parse(r.created_at)) / 1000);
}

/** UUIDv7 ids share their leading (time) digits: the list shows the start and the distinct end. */
function shortId(id: string): string {
  return id.length > 22 ? `${id.slice(0, 12)}…${id.slice(-6)}` : id;
}

function oldest(age: OldestAge): Html {
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

// ---------- panels ----------

export function queuesPanel(queues: readonly QueueView[]): Html {
  const rows = queues
    .filter((q) => !q.dlq)
    .flatMap((q) => {
      const dlq = queues.find((d) => d.dlq && d.source === q.name);
      return dlq ? [q, dlq] : [q];
    });
  return h`<h2 id="queues-title">Queues</h2>
<table aria-labelledby="queues-title">
  <thead><tr><th scope="col">queue</th><th scope="col" class="num">visible</th><th scope="col" class="num">in flight</th><th scope="col" class="num">delayed</th><th scope="col" class="num">oldest</th><th scope="col">last minutes</th></tr></thead>
  <tbody>
  ${rows.map(
    (
      q,
    ) => h`<tr class="${q.dlq ? "dlq" : ""}${q.dlq && (q.latest?.visible ?? 0) + (q.latest?.inFlight ?? 0) > 0 ? " alert" : ""}">
    <th scope="row">${q.dlq ? h`<span class="muted">↳ </span>` : ""}${q.name}</th>
    ${
      q.error
        ? h`<td colspan="5" class="error">${q.error}</td>`
        : h`<td class="num">${q.latest?.visible ?? "…"}</td><td class="num">${q.latest?.inFlight ?? "…"}</td><td class="num">${q.latest?.delayed ?? "…"}</td><td class="num">${oldest(q.oldest)}</td><td>${sparkline(q.history, q.name)}</td>`
    }
  </tr>`,
  )}
  </tbody>
</table>`;
}

export function modelsPanel(models: readonly ModelServerView[]): Html {
  return h`<h2 id="models-title">Model servers</h2>
${
  models.length === 0
    ? h`<p class="muted">No model server metrics configured (DEEPQUEUE_DASHBOARD_MODEL_METRICS).</p>`
    : h`<table aria-labelledby="models-title">
  <thead><tr><th scope="col">/metrics</th><th scope="col">state</th><th scope="col" class="num">running</th><th scope="col" class="num">waiting</th><th scope="col" class="num">TTFT p50</th><th scope="col" class="num">TTFT p95</th></tr></thead>
  <tbody>
  ${models.map(
    (m) => h`<tr>
    <th scope="row">${m.url}</th>
    <td>${m.up ? h`<span class="badge ok">up</span>` : h`<span class="badge bad" title="${m.error ?? ""}">down</span>`}</td>
    <td class="num">${m.running ?? "—"}</td><td class="num">${m.waiting ?? "—"}</td>
    <td class="num">${m.ttftP50 === undefined ? "—" : formatDuration(m.ttftP50)}</td>
    <td class="num">${m.ttftP95 === undefined ? "—" : formatDuration(m.ttftP95)}</td>
  </tr>`,
  )}
  </tbody>
</table>
<p class="note">Time to first token over the last ${formatDuration(Math.max(...models.map((m) => m.windowSeconds), 0))} of vLLM's histogram (${"vllm:time_to_first_token_seconds"}).</p>`
}`;
}

export function requestsPanel(
  recent: readonly RecentRequest[] | { error: string },
  filters: Filters,
  tenants: readonly string[],
  now: number,
): Html {
  const form = h`<form class="filters" method="get" action="/" role="search" aria-label="filter requests">
  <label>tenant <select name="tenant" data-key="filter-tenant"><option value="">all</option>${tenants.map(
    (t) => h`<option value="${t}"${raw(filters.tenant === t ? " selected" : "")}>${t}</option>`,
  )}</select></label>
  <label>status <select name="status" data-key="filter-status"><option value="">all</option>${REQUEST_STATUSES.map(
    (s) => h`<option value="${s}"${raw(filters.status === s ? " selected" : "")}>${s}</option>`,
  )}</select></label>
  <button type="submit" data-key="filter-apply">Apply</button>
</form>`;
  if ("error" in recent) {
    return h`<h2 id="requests-title">Recent requests</h2>${form}<p class="error">${recent.error}</p>`;
  }
  return h`<h2 id="requests-title">Recent requests</h2>${form}
<table aria-labelledby="requests-title" class="requests">
  <thead><tr><th scope="col">id</th><th scope="col">tenant</th><th scope="col">status</th><th scope="col">source</th><th scope="col">model</th><th scope="col" class="num">latency</th><th scope="col">created</th></tr></thead>
  <tbody>
  ${
    recent.length === 0
      ? h`<tr><td colspan="7" class="muted">No requests${filters.tenant || filters.status ? " match" : " yet"}.</td></tr>`
      : recent.map(
          (r) => h`<tr>
    <th scope="row"><a href="/requests/${encodeURIComponent(r.id)}" data-key="req-${r.id}" class="mono" title="${r.id}" aria-label="request ${r.id}">${shortId(r.id)}</a></th>
    <td>${r.tenant}</td><td><span class="badge ${r.status}">${r.status}</span></td>
    <td>${r.source ?? "—"}</td><td>${r.model}</td><td class="num">${latency(r)}</td>
    <td><time datetime="${r.created_at}" title="${r.created_at}">${ago(r.created_at, now)}</time></td>
  </tr>`,
        )
  }
  </tbody>
</table>`;
}

export function tenantsPanel(view: { tenants: readonly TenantView[]; error?: string }): Html {
  const usage = (used: number, limit: number | null) =>
    limit === null
      ? h`${used} <span class="muted">/ unlimited</span>`
      : h`<meter min="0" max="${limit}" value="${Math.min(used, limit)}" high="${limit * 0.8}" optimum="0">${used} of ${limit}</meter> ${used} / ${limit}`;
  return h`<h2 id="tenants-title">Tenants today <span class="muted">(UTC)</span></h2>
${view.error ? h`<p class="error">${view.error}</p>` : ""}
<table aria-labelledby="tenants-title">
  <thead><tr><th scope="col">tenant</th><th scope="col">requests</th><th scope="col">tokens</th></tr></thead>
  <tbody>
  ${view.tenants.map(
    (t) => h`<tr${raw(t.revoked ? ' class="muted"' : "")}>
    <th scope="row"><a href="/?tenant=${encodeURIComponent(t.tenant)}" data-key="tenant-${t.tenant}">${t.tenant}</a>${t.revoked ? " (revoked)" : ""}</th>
    <td>${usage(t.usage.requests, t.dailyRequests)}</td><td>${usage(t.usage.tokens, t.dailyTokens)}</td>
  </tr>`,
  )}
  </tbody>
</table>`;
}

function jobLine(job: RedriveJob): Html {
  if (job.state === "running")
    return h`<p class="job" role="status">Redriving ${job.dlq} → ${job.source}…</p>`;
  if (job.state === "failed")
    return h`<p class="job error" role="status">Redrive of ${job.dlq} failed: ${job.error}</p>`;
  return h`<p class="job ok" role="status">Moved ${job.report?.moved ?? 0} message(s) from ${job.dlq} back to ${job.source}.</p>`;
}

export function deadLettersPanel(
  dlqs: ReadonlyArray<{ queue: QueueView; messages: readonly PeekedMessage[] }>,
  jobs: readonly RedriveJob[],
): Html {
  const waiting = dlqs.filter((d) => (d.queue.latest?.visible ?? 0) + (d.queue.latest?.inFlight ?? 0) > 0);
  return h`<h2 id="dlq-title">Dead letters</h2>
${jobs.map(jobLine)}
${
  waiting.length === 0
    ? h`<p class="muted">Every dead-letter queue is empty.</p>`
    : waiting.map((d) => {
        const count = (d.queue.latest?.visible ?? 0) + (d.queue.latest?.inFlight ?? 0);
        return h`<section class="dlq-queue" aria-label="${d.queue.name}">
  <div class="dlq-head"><h3>${d.queue.name} <span class="muted">${count} message(s)</span></h3>
  <a class="button danger" href="/redrive?dlq=${encodeURIComponent(d.queue.name)}" data-redrive="${d.queue.name}" data-source="${d.queue.source ?? ""}" data-count="${count}" data-key="redrive-${d.queue.name}">Redrive…</a></div>
  ${d.messages.map(
    (m) => h`<details data-key="msg-${m.id}">
    <summary><span class="mono">${m.id}</span> · ${m.sentAt ? h`sent <time datetime="${m.sentAt}">${m.sentAt}</time>` : ""}${m.receiveCount !== undefined ? ` · received ${m.receiveCount}×` : ""}${m.failure ? h` · <span class="error">${m.failure}</span>` : ""}</summary>
    ${
      Object.keys(m.attributes).length
        ? h`<dl class="attrs">${Object.entries(m.attributes).map(([k, v]) => h`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`
        : ""
    }
    <pre>${m.body}</pre>
  </details>`,
  )}
  ${d.messages.length < count ? h`<p class="note">Showing ${d.messages.length} of ${count} (SQS returns at most 10 per look).</p>` : ""}
</section>`;
      })
}`;
}

// ---------- request detail ----------

interface TimelineStep {
  label: string;
  at?: string | undefined;
  detail?: string;
  state: "done" | "pending" | "failed";
}

export function timeline(r: StoredRequest): TimelineStep[] {
  const steps: TimelineStep[] = [{ label: "accepted", at: r.created_at, state: "done" }];
  steps.push(
    r.processing_at
      ? { label: "picked up by the cache worker", at: r.processing_at, state: "done" }
      : r.status === "queued"
        ? { label: "waiting in the requests queue", state: "pending" }
        : { label: "picked up by the cache worker", detail: "time not recorded", state: "done" },
  );
  const source = r.result?.source;
  if (r.status === "completed") {
    const how =
      source === "cache"
        ? "answered from the cache"
        : source === "model"
          ? "answered by the model"
          : source === "fallback"
            ? "answered by the fallback model (degraded)"
            : "answered with the static reply (degraded)";
    steps.push({ label: how, at: r.completed_at, state: "done" });
  } else if (r.status === "failed") {
    steps.push({
      label: "failed",
      at: r.completed_at,
      detail: `${r.error?.code ?? ""}: ${r.error?.message ?? ""}`,
      state: "failed",
    });
  } else if (r.status === "processing") {
    steps.push({ label: "with the model (or waiting for a cached answer)", state: "pending" });
  }
  if (r.status === "completed" || r.status === "failed") {
    steps.push({ label: "result event sent for delivery", at: r.completed_at, state: "done" });
  }
  for (const [i, a] of (r.callback_attempts ?? []).entries()) {
    steps.push({
      label: `callback attempt ${i + 1}: ${a.status !== undefined ? `HTTP ${a.status}` : "no answer"}`,
      at: a.at,
      ...(a.error ? { detail: maskString(a.error) } : {}),
      state: a.outcome === "delivered" ? "done" : "failed",
    });
  }
  if (r.delivery?.status === "delivered")
    steps.push({ label: "callback delivered", at: r.delivery.last_attempt_at, state: "done" });
  else if (r.delivery?.status === "pending")
    steps.push({ label: "callback pending (retry scheduled)", state: "pending" });
  else if (r.delivery?.status === "failed")
    steps.push({
      label: "callback given up",
      at: r.delivery.last_attempt_at,
      detail: r.delivery.last_error ?? "",
      state: "failed",
    });
  return steps;
}

function traceId(traceparent: string | undefined): string | undefined {
  return traceparent?.match(/^00-([0-9a-f]{32})-/)?.[1];
}

function requestText(r: StoredRequest): string {
  const req = r.request;
  if (req.prompt !== undefined) return maskString(req.prompt);
  return maskString((req.messages ?? []).map((m) => `${m.role}: ${m.content}`).join("\n\n"));
}

export function detailPanel(
  r: StoredRequest | undefined,
  id: string,
  conversation: readonly StoredRequest[],
  now: number,
): Html {
  if (!r) {
    return h`<h2>Request <span class="mono">${id}</span></h2><p class="error">No such request (or past its 7-day retention).</p>`;
  }
  const trace = traceId(r.traceparent);
  return h`<h2>Request <span class="mono">${r.id}</span> <span class="badge ${r.status}">${r.status}</span></h2>
<div class="detail-grid">
<section aria-labelledby="facts-title">
  <h3 id="facts-title">Facts</h3>
  <dl class="facts">
    <dt>tenant</dt><dd><a href="/?tenant=${encodeURIComponent(r.tenant)}">${r.tenant}</a></dd>
    <dt>model</dt><dd>${r.model}</dd>
    <dt>source</dt><dd>${r.result?.source ?? "—"}</dd>
    <dt>created</dt><dd><time datetime="${r.created_at}">${r.created_at}</time> (${ago(r.created_at, now)})</dd>
    <dt>completed</dt><dd>${r.completed_at ?? "—"}</dd>
    <dt>latency</dt><dd>${latency(r)}</dd>
    <dt>deadline</dt><dd>${r.request.deadline_at}</dd>
    <dt>trace id</dt><dd class="mono">${trace ?? "—"}</dd>
    <dt>usage</dt><dd>${r.result ? `${r.result.usage.prompt_tokens} prompt + ${r.result.usage.completion_tokens} completion tokens` : `${r.request.prompt_tokens} prompt tokens (estimated at ingest)`}</dd>
    <dt>delivery</dt><dd>${r.delivery ? `${r.delivery.status}, ${r.delivery.attempts} attempt(s)${r.delivery.last_error ? ` — ${maskString(r.delivery.last_error)}` : ""}` : r.request.callback_url ? "—" : "result queue only (no callback_url)"}</dd>
    ${r.request.callback_url ? h`<dt>callback</dt><dd class="mono">${maskString(r.request.callback_url)}</dd>` : ""}
    ${r.conversation_id ? h`<dt>conversation</dt><dd class="mono">${r.conversation_id}</dd>` : ""}
  </dl>
</section>
<section aria-labelledby="timeline-title">
  <h3 id="timeline-title">Timeline</h3>
  <ol class="timeline">
  ${timeline(r).map(
    (s) =>
      h`<li class="${s.state}"><span class="step">${s.label}</span>${s.at ? h` <time datetime="${s.at}">${s.at.slice(11, 23)}</time> <span class="muted">+${formatDuration((Date.parse(s.at) - Date.parse(r.created_at)) / 1000)}</span>` : ""}${s.detail ? h`<div class="muted">${s.detail}</div>` : ""}</li>`,
  )}
  </ol>
</section>
</div>
<section aria-labelledby="prompt-title"><h3 id="prompt-title">Request</h3><pre>${requestText(r)}</pre></section>
${r.result ? h`<section aria-labelledby="result-title"><h3 id="result-title">Result <span class="muted">(${r.result.finish_reason})</span></h3><pre>${r.result.text}</pre></section>` : ""}
${r.error ? h`<section><h3>Error</h3><p class="error">${r.error.code}: ${r.error.message}</p></section>` : ""}
${
  conversation.length > 0
    ? h`<section aria-labelledby="conv-title"><h3 id="conv-title">Conversation ${r.conversation_id}</h3>
<table><thead><tr><th scope="col">turn</th><th scope="col">request</th><th scope="col">status</th><th scope="col">created</th></tr></thead><tbody>
${conversation.map(
  (turn, i) =>
    h`<tr${raw(turn.id === r.id ? ' aria-current="true" class="current"' : "")}><td class="num">${i + 1}</td><th scope="row"><a class="mono" href="/requests/${encodeURIComponent(turn.id)}">${turn.id}</a></th><td><span class="badge ${turn.status}">${turn.status}</span></td><td>${turn.created_at}</td></tr>`,
)}
</tbody></table></section>`
    : ""
}`;
}

// ---------- pages ----------

export function layout(options: {
  title: string;
  body: Html;
  live?: string;
  csrf?: string;
  open: boolean;
}): Html {
  return h`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · deepqueue</title>
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/dashboard.js" defer></script>
</head>
<body${raw(options.live ? ` data-live="${escapeAttr(options.live)}"` : "")}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">deepqueue</a>
  <nav aria-label="sections"><a href="/#queues">Queues</a><a href="/#requests">Requests</a><a href="/#tenants">Tenants</a><a href="/#dead-letters">Dead letters</a><a href="/#models">Model servers</a></nav>
  <span class="live-state" id="live-state" role="status" aria-live="polite">${options.live ? "connecting…" : ""}</span>
  ${
    options.open || !options.csrf
      ? ""
      : h`<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="${options.csrf}"><button type="submit">Log out</button></form>`
  }
</header>
<main id="main" tabindex="-1">
${options.body}
</main>
${
  options.csrf
    ? h`<dialog id="redrive-dialog" aria-labelledby="redrive-dialog-title">
  <form method="post" action="/redrive">
    <h2 id="redrive-dialog-title">Redrive dead letters?</h2>
    <p id="redrive-dialog-text"></p>
    <input type="hidden" name="dlq" value="">
    <input type="hidden" name="csrf" value="${options.csrf}">
    <div class="actions"><button type="submit" formmethod="dialog" value="cancel" autofocus>Cancel</button><button type="submit" class="danger" name="confirm" value="yes">Redrive</button></div>
  </form>
</dialog>`
    : ""
}
</body>
</html>`;
}

function escapeAttr(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

export interface HomePanels {
  queues: Html;
  requests: Html;
  tenants: Html;
  "dead-letters": Html;
  models: Html;
}

export function homeBody(panels: HomePanels): Html {
  return h`<div class="grid">
  <div class="col">
    <section id="queues" class="panel" aria-labelledby="queues-title" data-panel>${panels.queues}</section>
    <section id="models" class="panel" aria-labelledby="models-title" data-panel>${panels.models}</section>
    <section id="tenants" class="panel" aria-labelledby="tenants-title" data-panel>${panels.tenants}</section>
  </div>
  <div class="col">
    <section id="requests" class="panel" aria-labelledby="requests-title" data-panel>${panels.requests}</section>
  </div>
</div>
<section id="dead-letters" class="panel full" aria-labelledby="dlq-title" data-panel>${panels["dead-letters"]}</section>`;
}

export function detailBody(panel: Html): Html {
  return h`<p><a href="/" class="back">← all requests</a></p><section id="detail" class="panel full" data-panel>${panel}</section>`;
}

export function loginBody(options: { next: string; error?: string }): Html {
  return h`<section class="panel login" aria-labelledby="login-title">
<h2 id="login-title">Log in</h2>
<p>This dashboard needs the admin token (<code>DEEPQUEUE_ADMIN_TOKEN</code>).</p>
${options.error ? h`<p class="error" role="alert">${options.error}</p>` : ""}
<form method="post" action="/login">
  <input type="hidden" name="next" value="${options.next}">
  <label>admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
  <button type="submit">Log in</button>
</form>
</section>`;
}

export function confirmRedriveBody(options: {
  dlq: string;
  source: string;
  count: number;
  csrf: string;
}): Html {
  return h`<section class="panel login" aria-labelledby="confirm-title">
<h2 id="confirm-title">Redrive dead letters?</h2>
<p>Move ${options.count} message(s) from <strong>${options.dlq}</strong> back to <strong>${options.source}</strong>? They will be processed again.</p>
<form method="post" action="/redrive">
  <input type="hidden" name="dlq" value="${options.dlq}">
  <input type="hidden" name="csrf" value="${options.csrf}">
  <div class="actions"><a class="button" href="/#dead-letters">Cancel</a><button type="submit" class="danger" name="confirm" value="yes">Redrive</button></div>
</form>
</section>`;
}
