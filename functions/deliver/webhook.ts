import { Webhook } from "standardwebhooks";

/** The Standard Webhooks headers (https://www.standardwebhooks.com/) of one callback. */
export interface WebhookHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

/**
 * Signs `body` with every active secret (newest first): during a rotation the
 * receiver sees two `v1,<sig>` entries, space-separated, and either verifies.
 *
 * @example signWebhook(["whsec_…"], "evt_req_1", new Date(), body)["webhook-signature"] // "v1,K5oZ…"
 */
export function signWebhook(secrets: readonly string[], id: string, at: Date, body: string): WebhookHeaders {
  if (secrets.length === 0) throw new Error("no active webhook secret to sign with");
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": secrets.map((secret) => new Webhook(secret).sign(id, at, body)).join(" "),
  };
}

/** What one POST to a callback came to. */
export type CallbackOutcome =
  | { kind: "delivered"; status: number }
  | { kind: "gone"; status: 410 }
  | { kind: "retry"; error: string; status?: number; retryAfterSeconds?: number };

/**
 * POSTs a signed event. Redirects are not followed (SPEC §4: 3xx is retried,
 * and following one could reach an address the callback check never saw).
 * Never throws: every failure becomes an outcome.
 */
export async function postCallback(
  url: string,
  body: string,
  headers: WebhookHeaders,
  options: { timeoutMs: number; fetch?: typeof fetch; now?: () => number },
): Promise<CallbackOutcome> {
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, {
      method: "POST",
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(options.timeoutMs),
      headers: {
        "content-type": "application/cloudevents+json; charset=utf-8",
        "user-agent": "deepqueue-webhooks/1",
        ...headers,
      },
    });
  } catch (error) {
    return { kind: "retry", error: describeFetchError(error, options.timeoutMs) };
  }
  // The receiver's body is never needed; release the connection.
  await response.body?.cancel().catch(() => {});
  if (response.status >= 200 && response.status < 300) return { kind: "delivered", status: response.status };
  if (response.status === 410) return { kind: "gone", status: 410 };
  const retryAfter = parseRetryAfter(response.headers.get("retry-after"), options.now?.() ?? Date.now());
  return {
    kind: "retry",
    status: response.status,
    error: `receiver answered ${response.status}`,
    ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}),
  };
}

function describeFetchError(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return `no answer within ${timeoutMs / 1000} s`;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `could not reach the receiver: ${cause ?? e?.message ?? String(error)}`;
}

/**
 * `Retry-After` as seconds from now: delta-seconds or an HTTP-date
 * (https://www.rfc-editor.org/rfc/rfc9110#field.retry-after). Undefined when absent or unreadable.
 *
 * @example parseRetryAfter("120", Date.now()) // 120
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * Seconds to wait before retry number `attempt` (1-based: the retry after the
 * first failed attempt is 1), or undefined when the schedule is exhausted.
 * The scheduled delay gets ± `jitter` of itself; a `Retry-After` longer than
 * that wins (up to `maxRetryAfterSeconds`).
 *
 * @example retryDelaySeconds(1, [5, 300], { jitter: 0.2, random: () => 0.5 }) // 5
 */
export function retryDelaySeconds(
  attempt: number,
  schedule: readonly number[],
  options: {
    jitter: number;
    retryAfterSeconds?: number;
    maxRetryAfterSeconds?: number;
    random?: () => number;
  },
): number | undefined {
  const base = schedule[attempt - 1];
  if (base === undefined) return undefined;
  const random = options.random ?? Math.random;
  const jittered = base * (1 + options.jitter * (2 * random() - 1));
  const retryAfter = Math.min(
    options.retryAfterSeconds ?? 0,
    options.maxRetryAfterSeconds ?? Number.POSITIVE_INFINITY,
  );
  return Math.max(0, Math.max(jittered, retryAfter));
}
