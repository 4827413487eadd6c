import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import {
  drainRequestsQueue,
  type IngestServer,
  makeTenant,
  recordsOf,
  startIngestServer,
} from "../../test/helpers/ingest.ts";
import { DynamoUsageStore } from "../shared/stores/usage.ts";

/**
 * Property-based fuzzing of the HTTP API (fast-check): any malformed body,
 * header or path gets a 4xx with the error shape `{"error": {"code",
 * "message"}}` — never a 5xx, never another shape — and leaves nothing
 * behind: no record, no message, no quota used.
 */

const KNOWN = [
  "prompt",
  "messages",
  "model",
  "max_tokens",
  "temperature",
  "conversation_id",
  "callback_url",
  "cache",
  "deadline_seconds",
  "metadata",
];

/** JSON values of any shape, including the awkward ones (deep, unicode, huge numbers). */
const anyJson = fc.jsonValue({ maxDepth: 4 });

/** A body that is invalid by construction, from six families. */
const badBody = fc.oneof(
  // 1. Not JSON at all (or JSON with garbage around it).
  fc.string({ unit: "binary", maxLength: 200 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }),
  fc.jsonValue().map((v) => `${JSON.stringify(v)}}`),
  // 2. JSON, but not an object.
  fc
    .oneof(fc.array(anyJson, { maxLength: 3 }), fc.double(), fc.string(), fc.constant(null))
    .map((v) => JSON.stringify(v)),
  // 3. An object with a field the API does not know.
  fc
    .tuple(
      fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !KNOWN.includes(k) && k !== "__proto__"),
      anyJson,
      fc.string({ maxLength: 50 }),
    )
    .map(([key, value, prompt]) => JSON.stringify({ prompt, [key]: value })),
  // 4. Known fields with values of the wrong type or out of range.
  fc
    .record(
      {
        prompt: fc.oneof(
          fc.integer(),
          fc.boolean(),
          fc.array(fc.string(), { maxLength: 2 }),
          fc.constant(null),
        ),
        max_tokens: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 8193 }), fc.double(), fc.string()),
        temperature: fc.oneof(
          fc.double({ min: 2.0001, noNaN: true }),
          fc.double({ max: -0.0001, noNaN: true }),
        ),
        deadline_seconds: fc.oneof(fc.integer({ max: 9 }), fc.integer({ min: 86_401 })),
        messages: fc.oneof(
          fc.constant([]),
          fc.array(fc.record({ role: fc.string(), content: anyJson }), { minLength: 1, maxLength: 3 }),
        ),
        callback_url: fc.oneof(
          fc.string({ maxLength: 40 }),
          fc.webUrl().map((u) => u.replace(/^https?/, "ftp")),
        ),
        cache: fc.oneof(fc.string(), fc.integer()),
      },
      { requiredKeys: [] },
    )
    .filter((r) => Object.keys(r).length > 0)
    .map((r) => JSON.stringify({ prompt: "hi", ...r })),
  // 5. Both prompt and messages, or neither.
  fc.constant(JSON.stringify({ prompt: "a", messages: [{ role: "user", content: "b" }] })),
  fc.record({ max_tokens: fc.integer({ min: 1, max: 100 }) }).map((r) => JSON.stringify(r)),
);

/** Header sets: odd content types, odd or missing credentials, odd idempotency keys and signatures. */
const headerCase = (apiKey: string) =>
  fc.record(
    {
      "content-type": fc.constantFrom(
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
        "",
      ),
      authorization: fc.oneof(
        fc.constant(`Bearer ${apiKey}`),
        fc.constant(`bearer    ${apiKey}`),
        fc.constant(`Basic ${apiKey}`),
        fc.string({ maxLength: 60 }).map((s) => `Bearer ${s}`),
        fc.constant("Bearer eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJmdXp6In0."),
      ),
      "idempotency-key": fc.oneof(fc.constant(""), fc.string({ minLength: 256, maxLength: 300 })),
      "webhook-id": fc.string({ maxLength: 20 }),
      "webhook-timestamp": fc.oneof(fc.string({ maxLength: 12 }), fc.integer().map(String)),
      "webhook-signature": fc.string({ maxLength: 40 }),
      traceparent: fc.string({ maxLength: 60 }),
    },
    { requiredKeys: ["authorization"] },
  );

/** Header values fetch can send: printable ASCII without CR/LF. */
function sendable(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k, v.replace(/[^\x20-\x7e]/g, "?").trim()] as const),
  );
}

async function expectClientError(res: Response): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBeGreaterThanOrEqual(400);
  expect(res.status, text).toBeLessThan(500);
  const body = JSON.parse(text) as { error: { code: unknown; message: unknown } };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message"]);
  expect(typeof body.error.code).toBe("string");
  expect(typeof body.error.message).toBe("string");
}

describe("HTTP API fuzzing (fast-check)", () => {
  let stack: TestStack;
  let server: IngestServer;
  let fuzz: { api_key: string };

  beforeAll(async () => {
    stack = await startTestStack();
    // The abuse budget and rate limit off: every case reaches validation.
    server = await startIngestServer(stack, {
      DEEPQUEUE_ABUSE_BUDGET: "0",
      DEEPQUEUE_RATE_LIMIT_PER_SECOND: "0",
    });
    fuzz = await makeTenant(stack, "fuzz", { dailyRequests: null });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await stack?.stop();
  });

  it("malformed bodies and headers: 4xx with the error shape, never 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(badBody, headerCase(fuzz.api_key), async (body, headers) => {
        const res = await fetch(`${server.url}/v1/requests`, {
          method: "POST",
          headers: sendable(headers),
          body,
        });
        await expectClientError(res);
      }),
      { numRuns: 250 },
    );
  }, 120_000);

  it("unknown paths, methods and ids: 4xx with the error shape, never 5xx", async () => {
    /** GET routes that answer 200 with no id: health, the document, and the lists. */
    const ANSWERING_GETS = ["/healthz", "/openapi.json", "/v1/models", "/v1/files", "/v1/batches"];
    const segment = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9._~%-]{0,24}$/),
      fc.constantFrom("v1", "requests", "conversations", "..", "%2e%2e", "%00", "metrics", "healthz"),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
        fc.array(segment, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (method, segments, withKey) => {
          const path = `/${segments.join("/")}`;
          // What fetch sends: it resolves dot segments (`/../healthz` is `/healthz`).
          // …and the router matches a path with a trailing slash as the path without it.
          const sent = new URL(`${server.url}${path}`).pathname.replace(/(.)\/+$/, "$1");
          if (method === "GET" && ANSWERING_GETS.includes(sent)) return; // 200 (lists: with a key)
          if (method === "POST" && sent === "/v1/requests") return; // the body property covers it
          const res = await fetch(`${server.url}${path}`, {
            method,
            headers: withKey ? { authorization: `Bearer ${fuzz.api_key}` } : {},
            ...(method === "GET" ? {} : { body: "{}" }),
          });
          await expectClientError(res);
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);

  it("wrote nothing: no record, no message, no quota used", async () => {
    expect(await recordsOf(stack, "fuzz")).toEqual([]);
    expect(await drainRequestsQueue(stack)).toEqual([]);
    expect(await new DynamoUsageStore(stack.ddb, stack.prefix).get("fuzz")).toEqual({
      requests: 0,
      tokens: 0,
    });
    // And the service is still up.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});
