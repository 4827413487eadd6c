import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { API_ERRORS } from "./api-errors.ts";
import { OPENAPI_FILE, openApiText } from "./export-openapi.ts";
import { openApiDocument } from "./openapi.ts";

type Operation = {
  parameters?: Array<{ name: string; in: string }>;
  security?: unknown[];
  responses: Record<string, { content?: Record<string, { schema: { allOf?: unknown[] } }> }>;
};
const doc = openApiDocument() as {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
};

/** The `code` enum an error response documents. */
function documentedCodes(op: Operation, status: string): string[] {
  const schema = op.responses[status]?.content?.["application/json"]?.schema;
  const narrow = schema?.allOf?.[1] as {
    properties: { error: { properties: { code: { enum: string[] } } } };
  };
  return narrow?.properties.error.properties.code.enum ?? [];
}

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document whose every $ref resolves (an independent validator)", async () => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(openApiText()));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(() => validator.resolveRefs()).not.toThrow();
  });

  it("the committed docs/openapi.json is up to date (run `npm run schemas`)", () => {
    expect(readFileSync(OPENAPI_FILE, "utf8")).toBe(openApiText());
  });

  it("describes every public route, with auth on the API and none on health and itself", () => {
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        "POST /v1/requests",
        "GET /v1/requests/{id}",
        "GET /v1/conversations/{id}",
        "POST /v1/chat/completions",
        "POST /v1/completions",
        "GET /v1/models",
        "GET /v1/models/{model}",
        "POST /v1/files",
        "GET /v1/files",
        "GET /v1/files/{id}",
        "GET /v1/files/{id}/content",
        "DELETE /v1/files/{id}",
        "POST /v1/batches",
        "GET /v1/batches",
        "GET /v1/batches/{id}",
        "POST /v1/batches/{id}/cancel",
        "GET /healthz",
        "GET /openapi.json",
      ].sort(),
    );
    for (const path of ["/healthz", "/openapi.json"]) expect(doc.paths[path]?.get?.security).toEqual([]);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(["apiKey", "jwt", "webhookSignature"]);
    const submit = doc.paths["/v1/requests"]!.post!;
    expect(submit.parameters?.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        "Idempotency-Key",
        "traceparent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
      ]),
    );
  });

  it("lists every error code the API answers with, at its status", () => {
    const submit = doc.paths["/v1/requests"]!.post!;
    const everywhere = new Set(
      Object.values(doc.paths).flatMap((ops) =>
        Object.values(ops).flatMap((op) => Object.keys(op.responses).flatMap((s) => documentedCodes(op, s))),
      ),
    );
    expect([...everywhere].sort()).toEqual(Object.keys(API_ERRORS).sort());
    for (const [code, { status }] of Object.entries(API_ERRORS)) {
      if (code === "not_found") continue; // reads only
      expect(documentedCodes(submit, String(status)), code).toContain(code);
    }
    expect(documentedCodes(doc.paths["/v1/requests/{id}"]!.get!, "404")).toEqual(["not_found"]);
  });

  it("builds its schemas from the zod schemas: the submit body as sent, defaults optional", () => {
    const submit = doc.components.schemas.SubmitBody as {
      required?: string[];
      additionalProperties: boolean;
      properties: Record<string, { default?: unknown; maximum?: number }>;
    };
    expect(submit.required ?? []).toEqual([]);
    expect(submit.additionalProperties).toBe(false);
    expect(submit.properties.max_tokens).toMatchObject({ default: 512, maximum: 8192 });
    expect(doc.components.schemas.ResultEvent).toMatchObject({
      properties: { data: { $ref: "#/components/schemas/RequestRecord" } },
    });
  });
});
