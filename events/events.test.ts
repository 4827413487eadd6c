import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { JSON_SCHEMA_DIR, jsonSchemas, writeJsonSchemas } from "./export-json-schemas.ts";
import { buildEvent, describeIssues, EVENT_TYPES, resultEventSchema, submitBodySchema } from "./index.ts";

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), "utf8")) as unknown;

function problem(body: unknown): string {
  const parsed = submitBodySchema.safeParse(body);
  if (parsed.success) throw new Error(`expected ${JSON.stringify(body)} to be refused`);
  return describeIssues(parsed.error);
}

describe("submit body", () => {
  it("fills the documented defaults (docs/api.md#post-v1requests)", () => {
    const body = submitBodySchema.parse({ prompt: "hi" });
    expect(body).toEqual({
      prompt: "hi",
      max_tokens: 512,
      temperature: 0.7,
      cache: true,
      deadline_seconds: 900,
    });
  });

  it("accepts the fixtures", () => {
    expect(submitBodySchema.parse(fixture("submit-prompt")).max_tokens).toBe(64);
    expect(submitBodySchema.parse(fixture("submit-chat")).messages).toHaveLength(2);
  });

  it.each([
    [{}, "prompt"],
    [{ prompt: "a", messages: [{ role: "user", content: "b" }] }, "messages"],
    [{ prompt: "" }, "prompt"],
    [{ prompt: 42 }, "prompt"],
    [{ messages: [] }, "messages"],
    [{ messages: [{ role: "robot", content: "x" }] }, "messages.0.role"],
    [{ prompt: "a", max_tokens: 0 }, "max_tokens"],
    [{ prompt: "a", max_tokens: 8193 }, "max_tokens"],
    [{ prompt: "a", max_tokens: 1.5 }, "max_tokens"],
    [{ prompt: "a", temperature: -0.1 }, "temperature"],
    [{ prompt: "a", temperature: 2.1 }, "temperature"],
    [{ prompt: "a", conversation_id: "x".repeat(129) }, "conversation_id"],
    [{ prompt: "a", conversation_id: "has space" }, "conversation_id"],
    [{ prompt: "a", callback_url: "not a url" }, "callback_url"],
    [{ prompt: "a", cache: "yes" }, "cache"],
    [{ prompt: "a", deadline_seconds: 9 }, "deadline_seconds"],
    [{ prompt: "a", deadline_seconds: 86_401 }, "deadline_seconds"],
    [{ prompt: "a", metadata: { big: "x".repeat(4096) } }, "metadata"],
    [{ prompt: "a", metadata: "tag" }, "metadata"],
    [{ prompt: "a", model: "" }, "model"],
    [{ prompt: "a", max_token: 5 }, "max_token"],
  ])("refuses %j naming %s", (body, field) => {
    expect(problem(body)).toContain(field);
  });
});

describe("events", () => {
  it("parses the result fixtures as CloudEvents 1.0", () => {
    expect(resultEventSchema.parse(fixture("result-completed")).data.result?.source).toBe("model");
    expect(resultEventSchema.parse(fixture("result-failed")).data.error?.code).toBe("deadline_exceeded");
  });

  it("builds envelopes that the schemas accept", () => {
    const record = (fixture("result-completed") as { data: unknown }).data;
    const event = buildEvent({
      id: "evt_1",
      type: EVENT_TYPES.requestCompleted,
      subject: "req_1",
      data: record,
    });
    expect(resultEventSchema.parse(event)).toMatchObject({ specversion: "1.0", source: "deepqueue" });
    expect(resultEventSchema.safeParse({ ...event, specversion: "0.3" }).success).toBe(false);
  });
});

describe("JSON Schema export", () => {
  it("writes one file per public shape", () => {
    const dir = mkdtempSync(join(tmpdir(), "dq-schemas-"));
    const files = writeJsonSchemas(dir);
    expect(files.length).toBe(Object.keys(jsonSchemas()).length);
    const submit = JSON.parse(readFileSync(join(dir, "submit-body.json"), "utf8"));
    expect(submit.properties.max_tokens).toMatchObject({ maximum: 8192, default: 512 });
    expect(submit.additionalProperties).toBe(false);
  });

  it("the committed schemas are up to date (run `npm run schemas`)", () => {
    for (const [name, schema] of Object.entries(jsonSchemas())) {
      const committed = JSON.parse(readFileSync(join(JSON_SCHEMA_DIR, `${name}.json`), "utf8"));
      expect(committed, name).toEqual(schema);
    }
  });
});
