import { raw } from "hono/html";
import type { StoredRequest } from "../../functions/shared/stores/requests.ts";
import { maskString } from "../mask.ts";
import { ago, formatDuration, latency } from "./format.ts";
import { type Html, h } from "./html.ts";

/** A request's page: its facts, stage timeline, request and result, conversation. */

export interface TimelineStep {
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

export function detailBody(panel: Html): Html {
  return h`<p><a href="/" class="back">← all requests</a></p><section id="detail" class="panel full" data-panel>${panel}</section>`;
}
