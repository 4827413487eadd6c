import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPENAPI_FILE } from "../../events/export-openapi.ts";
import { healthOkSchema } from "../../events/health.ts";
import { acceptedResponseSchema, errorBodySchema, requestRecordSchema } from "../../events/index.ts";
import { openApiDocument } from "../../events/openapi.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { type IngestServer, makeTenant, post, startIngestServer } from "../../test/helpers/ingest.ts";
import { ERROR_CODES, type HttpError } from "../shared/errors.ts";

type Operation = {
  responses: Record<
    string,
    { headers?: Record<string, unknown>; content?: Record<string, { schema: { allOf?: unknown[] } }> }
  >;
};
const doc = openApiDocument() as { paths: Record<string, Record<string, Operation>> };

/** Fails unless the operation documents `status`, the error `code` at it, and the headers sent with it. */
async function expectDocumented(method: string, path: string, res: Response): Promise<unknown> {
  const op = doc.paths[path]?.[method.toLowerCase()];
  expect(op, `${method} ${path}`).toBeDefined();
  const documented = op!.responses[String(res.status)];
  expect(documented, `${method} ${path} → ${res.status}`).toBeDefined();
  for (const header of Object.keys(documented!.headers ?? {})) {
    expect(res.headers.get(header), `${method} ${path} → ${res.status} ${header}`).not.toBeNull();
  }
  const type = res.headers.get("content-type") ?? "";
  expect(Object.keys(documented!.content ?? {}).map((t) => t.split(";")[0])).toContain(type.split(";")[0]);
  if (!type.startsWith("application/json")) return res.text();
  const body = (await res.json()) as unknown;
  if (res.status >= 400 && path !== "/healthz") {
    const { error } = errorBodySchema.parse(body);
    const narrow = documented!.content!["application/json"]!.schema.allOf![1] as {
      properties: { error: { properties: { code: { enum: string[] } } } };
    };
    expect(narrow.properties.error.properties.code.enum, `${method} ${path} → ${res.status}`).toContain(
      error.code,
    );
  }
  return body;
}

describe("GET /openapi.json and the API it describes, against the emulators", () => {
  let stack: TestStack;
  let server: IngestServer;
  let key: string;
  let capped: string;

  beforeAll(async () => {
    stack = await startTestStack();
    server = await startIngestServer(stack);
    key = (await makeTenant(stack, "oas", { dailyRequests: null })).api_key;
    capped = (await makeTenant(stack, "oascap", { dailyRequests: 1 })).api_key;
  });
  afterAll(async () => {
    await server?.close();
    await stack?.stop();
  });

  it("serves the committed document without credentials, as JSON, cacheable", async () => {
    const res = await fetch(`${server.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    expect(await res.json()).toEqual(JSON.parse(readFileSync(OPENAPI_FILE, "utf8")));
  });

  it("documents exactly the routes the handler routes", async () => {
    const source = readFileSync(new URL("./handler.ts", import.meta.url), "utf8");
    const routed = [...source.matchAll(/\{ method: "(\w+)", path: "([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routed.length).toBeGreaterThan(0);
    expect(documented.sort()).toEqual(routed.sort());
  });

  it("every error code ingest raises is documented (events/api-errors.ts), at the status it is raised with", async () => {
    const { API_ERRORS } = await import("../../events/api-errors.ts");
    expect(Object.values(ERROR_CODES).sort()).toEqual(Object.keys(API_ERRORS).sort());
    const errors = await import("../shared/errors.ts");
    const samples: HttpError[] = [
      new errors.InvalidRequestError("x"),
      new errors.PromptTooLongError(1, 2),
      new errors.InvalidCallbackUrlError("x"),
      new errors.UnauthorizedError(),
      new errors.NotFoundError(),
      new errors.IdempotencyInProgressError(),
      new errors.IdempotencyKeyReusedError(),
      new errors.PayloadTooLargeError(1),
      new errors.QuotaExceededError("x", 1),
      new errors.RateLimitedError("x", 1),
      new errors.UnavailableError(),
      errors.toHttpError(new Error("boom")),
    ];
    expect(samples.map((e) => e.code).sort()).toEqual(Object.keys(API_ERRORS).sort());
    for (const e of samples) expect(e.status, e.code).toBe(API_ERRORS[e.code].status);
  });

  it("answers what it documents: statuses, error codes, headers and bodies", async () => {
    const submit = (k: string | undefined, body: unknown, headers: Record<string, string> = {}) =>
      post(server.url, k, body, headers);
    const get = (path: string, k: string | undefined = key) =>
      fetch(`${server.url}${path}`, { headers: k ? { authorization: `Bearer ${k}` } : {} });

    const accepted = acceptedResponseSchema.parse(
      await expectDocumented(
        "POST",
        "/v1/requests",
        await submit(key, { prompt: "hi", conversation_id: "oas-1" }, { "idempotency-key": "k1" }),
      ),
    );
    await expectDocumented(
      "POST",
      "/v1/requests",
      await submit(key, { prompt: "hi", conversation_id: "oas-1" }, { "idempotency-key": "k1" }),
    );
    await expectDocumented(
      "POST",
      "/v1/requests",
      await submit(key, { prompt: "other" }, { "idempotency-key": "k1" }),
    );
    await expectDocumented("POST", "/v1/requests", await submit(undefined, { prompt: "hi" }));
    await expectDocumented("POST", "/v1/requests", await submit(key, "{not json"));
    await expectDocumented("POST", "/v1/requests", await submit(key, { prompt: "word ".repeat(5000) }));
    await expectDocumented(
      "POST",
      "/v1/requests",
      await submit(key, { prompt: "hi", callback_url: "https://internal.example.com/hook" }),
    );
    await expectDocumented("POST", "/v1/requests", await submit(key, { prompt: "x".repeat(300 * 1024) }));
    expect((await submit(capped, { prompt: "one" })).status).toBe(202);
    const over = await submit(capped, { prompt: "two" });
    expect(over.status).toBe(429);
    await expectDocumented("POST", "/v1/requests", over);

    requestRecordSchema.parse(
      await expectDocumented("GET", "/v1/requests/{id}", await get(`/v1/requests/${accepted.id}`)),
    );
    await expectDocumented("GET", "/v1/requests/{id}", await get("/v1/requests/req_unknown"));
    await expectDocumented("GET", "/v1/requests/{id}", await get(`/v1/requests/${accepted.id}`, "dq_wrong"));
    await expectDocumented("GET", "/v1/conversations/{id}", await get("/v1/conversations/nobody"));
    healthOkSchema.parse(await expectDocumented("GET", "/healthz", await get("/healthz", undefined)));
    // /metrics is off the public port (served on the metrics port): not routed, not documented.
    expect((await get("/metrics", undefined)).status).toBe(404);
  });
});
