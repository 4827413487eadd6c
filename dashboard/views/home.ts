import { raw } from "hono/html";
import { REQUEST_STATUSES } from "../../events/common.ts";
import type { RecentRequest } from "../../functions/shared/stores/requests.ts";
import type { ModelServerView, PeekedMessage, QueueView, RedriveJob, TenantView } from "../monitor.ts";
import { ago, formatDuration, latency, oldest, shortId, sparkline } from "./format.ts";
import { type Html, h } from "./html.ts";

/** The home page's panels: queues, recent requests, model servers, tenants, dead letters. */

export interface Filters {
  tenant?: string;
  status?: string;
}

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
