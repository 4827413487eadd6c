import { randomBytes, randomFillSync } from "node:crypto";

/**
 * UUIDv7s as 32 hex digits: 48 bits of Unix milliseconds, then a 26-bit counter seeded randomly
 * each millisecond (so ids made by one source sort in the order they were made, RFC 9562 §6.2,
 * method 1), then random bits. Random bytes come from a pool refilled 4 KiB at a time: the uuid
 * package asks WebCrypto for 16 bytes per id, which cost ingest more CPU than the rest of building
 * a request (Node's randomUUID pools the same way).
 *
 * @example new Uuidv7Source().next() // "0193…" (the process shares `uuids`)
 */
export class Uuidv7Source {
  readonly #pool = Buffer.alloc(4096);
  #poolOffset = this.#pool.length;
  #lastMs = 0;
  #seq = 0;

  #random(n: number): Buffer {
    if (this.#poolOffset + n > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#poolOffset = 0;
    }
    this.#poolOffset += n;
    return this.#pool.subarray(this.#poolOffset - n, this.#poolOffset);
  }

  /** `bytes` random bytes from the pool, as hex (trace and span ids). */
  randomHex(bytes: number): string {
    return this.#random(bytes).toString("hex");
  }

  next(): string {
    const now = Date.now();
    if (now > this.#lastMs) {
      this.#lastMs = now;
      this.#seq = this.#random(4).readUInt32BE(0) & 0x1ffffff; // leaves headroom below 2^26
    } else {
      this.#seq += 1;
      if (this.#seq > 0x3ffffff) {
        this.#lastMs += 1; // counter exhausted: borrow the next millisecond
        this.#seq = 0;
      }
    }
    const seq = this.#seq;
    const bytes = Buffer.allocUnsafe(16);
    bytes.writeUIntBE(this.#lastMs, 0, 6);
    bytes[6] = 0x70 | ((seq >>> 22) & 0x0f);
    bytes[7] = (seq >>> 14) & 0xff;
    bytes[8] = 0x80 | ((seq >>> 8) & 0x3f);
    bytes[9] = seq & 0xff;
    this.#random(6).copy(bytes, 10);
    return bytes.toString("hex");
  }
}

/** The process's one id source: ids made anywhere in the process sort in the order they were made. */
const uuids = new Uuidv7Source();

/** Request ids are time-ordered (UUIDv7, to the millisecond) so ids sort by arrival. @example newRequestId() // "req_0193…" */
export function newRequestId(): string {
  return `req_${uuids.next()}`;
}

/** CloudEvents ids. @example newEventId() // "evt_0193…" */
export function newEventId(): string {
  return `evt_${uuids.next()}`;
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
  // From the id pool: two randomBytes calls were 3 % of ingest's CPU per request.
  return `00-${uuids.randomHex(16)}-${uuids.randomHex(8)}-01`;
}

/** A child span of `traceparent` (same trace id, new span id), or a new trace when absent or malformed. */
export function childTraceparent(traceparent?: string): string {
  const match = traceparent?.match(/^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/);
  if (!match) return newTraceparent();
  return `00-${match[1]}-${uuids.randomHex(8)}-${match[2]}`;
}

/** Uploaded files, OpenAI's `file-` prefix, time-ordered. @example newFileId() // "file-0193…" */
export function newFileId(): string {
  return `file-${uuids.next()}`;
}

/** Batches (POST /v1/batches), OpenAI's `batch_` prefix, time-ordered. @example newBatchId() // "batch_0193…" */
export function newBatchId(): string {
  return `batch_${uuids.next()}`;
}
