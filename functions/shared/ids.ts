import { randomBytes, randomFillSync } from "node:crypto";
import { v7 } from "uuid";

/**
 * Random bytes for ids, drawn from a pool refilled 4 KiB at a time: uuid's own
 * source asks WebCrypto for 16 bytes per id, which cost ingest more CPU than
 * the rest of building a request (what Node's randomUUID does too).
 */
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function random16(): Uint8Array {
  if (poolOffset + 16 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  poolOffset += 16;
  return pool.subarray(poolOffset - 16, poolOffset);
}

/** A UUIDv7 (time-ordered) without dashes. */
function uuidv7(): string {
  return v7({ random: random16() }).replaceAll("-", "");
}

/** Request ids are time-ordered (UUIDv7, to the millisecond) so ids sort by arrival. @example newRequestId() // "req_0193…" */
export function newRequestId(): string {
  return `req_${uuidv7()}`;
}

/** CloudEvents ids. @example newEventId() // "evt_0193…" */
export function newEventId(): string {
  return `evt_${uuidv7()}`;
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
