import { randomBytes } from "node:crypto";
import { v7 as uuidv7 } from "uuid";

/** Request ids are time-ordered (UUIDv7) so ids sort by arrival. @example newRequestId() // "req_0193…" */
export function newRequestId(): string {
  return `req_${uuidv7().replaceAll("-", "")}`;
}

/** CloudEvents ids. @example newEventId() // "evt_0193…" */
export function newEventId(): string {
  return `evt_${uuidv7().replaceAll("-", "")}`;
}

/** A new API key: 32 random bytes, URL-safe. Shown once; only its hash is stored. */
export function newApiKey(): string {
  return `dq_${randomBytes(32).toString("base64url")}`;
}

/** A Standard Webhooks signing secret (`whsec_` + base64 of 24 random bytes). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

/** A W3C traceparent with fresh trace and span ids (https://www.w3.org/TR/trace-context/). */
export function newTraceparent(): string {
  return `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;
}

/** A child span of `traceparent` (same trace id, new span id), or a new trace when absent or malformed. */
export function childTraceparent(traceparent?: string): string {
  const match = traceparent?.match(/^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/);
  if (!match) return newTraceparent();
  return `00-${match[1]}-${randomBytes(8).toString("hex")}-${match[2]}`;
}
