import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { Webhook } from "standardwebhooks";
import { DeepqueueError } from "../shared/errors.ts";

/** Signing was asked for without a secret: a caller's bug (deliver checks for secrets first). */
export class NoWebhookSecretError extends DeepqueueError {
  constructor() {
    super("no active webhook secret to sign with");
    this.name = "NoWebhookSecretError";
  }
}

/** The Standard Webhooks headers (https://www.standardwebhooks.com/) of one callback. */
export interface WebhookHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
  /** W3C trace context of deliver's span, when tracing is on: the receiver may continue the trace. */
  traceparent?: string;
}

/**
 * Signs `body` with every active secret (newest first): during a rotation the
 * receiver sees two `v1,<sig>` entries, space-separated, and either verifies.
 *
 * @example signWebhook(["whsec_…"], "evt_req_1", new Date(), body)["webhook-signature"] // "v1,K5oZ…"
 */
export function signWebhook(secrets: readonly string[], id: string, at: Date, body: string): WebhookHeaders {
  if (secrets.length === 0) throw new NoWebhookSecretError();
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
 * POSTs a signed event. `address` pins the connection to the address the
 * callback check just approved (the URL's host still goes in `Host` and TLS
 * SNI/certificate checks), so DNS cannot answer differently between the check
 * and the connection (DNS rebinding). Redirects are not followed (docs/api.md#webhook-callbacks:
 * 3xx is retried, and following one could reach an address never checked).
 * Never throws: every failure becomes an outcome.
 */
export async function postCallback(
  url: string,
  body: string,
  headers: WebhookHeaders,
  options: { timeoutMs: number; address?: string; now?: () => number },
): Promise<CallbackOutcome> {
  let response: { status: number; retryAfter: string | undefined };
  try {
    response = await post(new URL(url), body, headers, options);
  } catch (error) {
    return { kind: "retry", error: describeFetchError(error, options.timeoutMs) };
  }
  const { status } = response;
  if (status >= 200 && status < 300) return { kind: "delivered", status };
  if (status === 410) return { kind: "gone", status: 410 };
  const retryAfter = parseRetryAfter(response.retryAfter, options.now?.() ?? Date.now());
  return {
    kind: "retry",
    status,
    error: `receiver answered ${status}`,
    retryAfterSeconds: retryAfter,
  };
}

function post(
  url: URL,
  body: string,
  headers: WebhookHeaders,
  options: { timeoutMs: number; address?: string },
): Promise<{ status: number; retryAfter: string | undefined }> {
  const secure = url.protocol === "https:";
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const send = secure ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      {
        method: "POST",
        host: options.address ?? hostname,
        port: url.port || (secure ? 443 : 80),
        path: `${url.pathname}${url.search}`,
        // TLS: SNI and certificate verification against the URL's host, not the pinned address
        // (no key at all for an IP host: node then names no server, as TLS requires).
        ...(secure && !isIP(hostname) ? { servername: hostname } : {}),
        signal: AbortSignal.timeout(options.timeoutMs),
        agent: false,
        headers: {
          host: url.host,
          "content-type": "application/cloudevents+json; charset=utf-8",
          "content-length": Buffer.byteLength(body),
          "user-agent": "deepqueue-webhooks/1",
          ...headers,
        },
      },
      (res) => {
        // The receiver's body is never needed; drain it so the socket closes.
        res.resume();
        const retryAfter = res.headers["retry-after"];
        resolve({
          status: res.statusCode ?? 0,
          retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function describeFetchError(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; code?: string; message?: string };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return `no answer within ${timeoutMs / 1000} s`;
  return `could not reach the receiver: ${e?.code ?? e?.message ?? String(error)}`;
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
