import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { baseEnvSchema, loadEnv } from "./env.ts";
import { ConfigError, QuotaExceededError, toHttpError } from "./errors.ts";
import { childTraceparent, newRequestId } from "./ids.ts";
import { createLogger } from "./logger.ts";
import { counter, metricsText } from "./metrics.ts";
import { tenantNameProblem } from "./names.ts";

describe("env", () => {
  it("fills the documented defaults (docs/api.md#configuration)", () => {
    const env = loadEnv(baseEnvSchema, {});
    expect(env).toMatchObject({
      PORT: 8080,
      AWS_REGION: "us-east-1",
      DEEPQUEUE_PREFIX: "deepqueue",
      INFERENCE_URL: "http://127.0.0.1:8000/v1",
      DEEPQUEUE_MODEL: "deepseek-chat",
      DEEPQUEUE_DATA_DIR: ".deepqueue",
      DEEPQUEUE_DEV_MODE: false,
      LOG_LEVEL: "info",
    });
  });

  it.each([
    ["PORT", "http"],
    ["INFERENCE_URL", "not a url"],
    ["DEEPQUEUE_PREFIX", "Has_Upper"],
    ["LOG_LEVEL", "loud"],
    ["DEEPQUEUE_DEV_DAILY_REQUESTS", "-3"],
  ])("a bad %s fails with its name", (name, value) => {
    const error = (() => {
      try {
        loadEnv(baseEnvSchema, { [name]: value });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(name);
    expect((error as Error).message).toContain(name);
  });

  it("a required variable of an extended schema fails with its name when missing", () => {
    const schema = baseEnvSchema.extend({ DEEPQUEUE_REQUIRED_THING: z.string() });
    expect(() => loadEnv(schema, {})).toThrow(/DEEPQUEUE_REQUIRED_THING/);
  });
});

describe("logger", () => {
  it("redacts keys, secrets and authorization headers", () => {
    let out = "";
    const sink = new Writable({
      write(chunk, _enc, done) {
        out += chunk.toString();
        done();
      },
    });
    const log = createLogger({ level: "info" }, sink);
    log.info(
      {
        api_key: "dq_secret_key",
        headers: { authorization: "Bearer dq_secret_key", "webhook-signature": "v1,abc" },
        tenant: { webhook_secret: "whsec_hidden" },
        request_id: "req_1",
      },
      "accepted",
    );
    expect(out).toContain("req_1");
    expect(out).not.toContain("dq_secret_key");
    expect(out).not.toContain("whsec_hidden");
    expect(out).not.toContain("v1,abc");
  });

  const capture = () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    return { log: createLogger({ level: "info" }, sink), text: () => lines.join("") };
  };

  it("censors credentials, secrets and tenant content at any depth, in any case", () => {
    const { log, text } = capture();
    log.warn(
      {
        request_id: "req_2",
        event: {
          deep: {
            deeper: {
              Authorization: "Bearer deep_bearer_1",
              "X-API-Key": "dq_deep_key_2",
              Cookie: "session=cookie_3",
              tenant: { webhook_secrets: [{ secret: "whsec_deep_4" }] },
            },
          },
        },
        body: {
          prompt: "the user's private prompt 5",
          messages: [{ role: "user", content: "private message 6" }],
        },
        record: { result: { text: "the private answer 7" } },
        list: [{ api_key: "dq_in_array_8" }],
      },
      "something odd",
    );
    const out = text();
    expect(out).toContain("req_2");
    for (const leaked of [
      "deep_bearer_1",
      "dq_deep_key_2",
      "cookie_3",
      "whsec_deep_4",
      "private prompt 5",
      "private message 6",
      "private answer 7",
      "dq_in_array_8",
    ]) {
      expect(out).not.toContain(leaked);
    }
    // The structure stays readable: the keys are there, their values censored.
    expect(JSON.parse(out).event.deep.deeper["X-API-Key"]).toBe("[redacted]");
  });

  it("logs only allow-listed headers, and errors without what is attached to them", () => {
    const { log, text } = capture();
    const error = Object.assign(new Error("upstream said no"), {
      code: "E_UPSTREAM",
      request: { headers: { authorization: "Bearer attached_9" } },
      config: { apiKey: "sk_attached_10" },
    });
    log.error(
      {
        err: error,
        headers: {
          "content-type": "application/json",
          "x-forwarded-for": "10.9.8.7",
          "x-custom-secret": "s11",
        },
      },
      "failed",
    );
    const line = JSON.parse(text());
    expect(line.err).toMatchObject({ message: "upstream said no", code: "E_UPSTREAM", type: "Error" });
    expect(line.headers).toEqual({ "content-type": "application/json" });
    const out = text();
    for (const leaked of ["attached_9", "sk_attached_10", "10.9.8.7", "s11"])
      expect(out).not.toContain(leaked);
  });
});

describe("metrics", () => {
  it("enforces the deepqueue_ prefix and is safe to define twice", async () => {
    expect(() => counter("requests_total", "x")).toThrow(/deepqueue_/);
    const a = counter("deepqueue_test_things_total", "things", ["kind"]);
    const b = counter("deepqueue_test_things_total", "things", ["kind"]);
    expect(a).toBe(b);
    a.inc({ kind: "x" }, 2);
    expect((await metricsText()).body).toContain('deepqueue_test_things_total{kind="x"} 2');
  });
});

describe("errors and ids", () => {
  it("quota errors carry Retry-After, unknown errors never leak", () => {
    const quota = new QuotaExceededError("daily quota of 500 requests reached", 3600.2);
    expect(quota.headers["retry-after"]).toBe("3601");
    const leaked = toHttpError(new Error("ECONNREFUSED 10.0.0.7:5432 password=hunter2"));
    expect(leaked.status).toBe(500);
    expect(JSON.stringify(leaked.toBody())).not.toContain("hunter2");
  });

  it("request ids are time-ordered, trace context continues the trace", () => {
    const ids = Array.from({ length: 50 }, () => newRequestId());
    expect([...ids].sort()).toEqual(ids);
    const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const child = childTraceparent(parent);
    expect(child.slice(0, 36)).toBe(parent.slice(0, 36));
    expect(child).not.toBe(parent);
    expect(childTraceparent("garbage")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it("tenant names must fit a queue name", () => {
    expect(tenantNameProblem("acme-corp")).toBeUndefined();
    expect(tenantNameProblem("-acme")).toBeDefined();
    expect(tenantNameProblem("a".repeat(33))).toBeDefined();
    expect(tenantNameProblem("acme_corp")).toBeDefined();
  });
});
