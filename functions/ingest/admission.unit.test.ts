import middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { ConfigError, HttpError, InvalidRequestError, PayloadTooLargeError } from "../shared/errors.ts";
import { createLogger } from "../shared/logger.ts";
import { TokenizerBusyError } from "../shared/tokenizer-pool.ts";
import { Admission, type AdmissionOptions } from "./admission.ts";
import { loadIngestEnv } from "./config.ts";
import { errorResponseMiddleware } from "./error-response.ts";
import { RateLimiter } from "./rate-limit.ts";

function makeAdmission(overrides: Partial<AdmissionOptions> = {}) {
  let now = 0;
  const counted: string[] = [];
  const admission = new Admission({
    maxModelLen: 4096,
    tokenizer: {
      count: async (input) => {
        counted.push(input.prompt ?? "");
        // One token per character, 1 ms per 10 characters: easy to reason about.
        const n = (input.prompt ?? "").length;
        return { tokens: n, ms: n / 10 };
      },
    },
    limiter: new RateLimiter({ perSecond: 2, burst: 2, now: () => now }),
    abuse: new RateLimiter({ perSecond: 1, burst: 10, now: () => now }),
    ...overrides,
  });
  return { admission, counted, tick: (ms: number) => (now += ms) };
}

async function refusal(work: () => unknown): Promise<HttpError> {
  try {
    await work();
  } catch (error) {
    if (error instanceof HttpError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("Admission", () => {
  it("refuses a prompt whose token floor cannot fit the window without counting it", async () => {
    const { admission, counted } = makeAdmission();
    const words = "lorem ipsum ".repeat(5_000); // floor 10,000 tokens > 4096
    const error = await refusal(() => admission.promptTokens({ prompt: words, max_tokens: 16 }));
    expect(error.code).toBe("prompt_too_long");
    expect(error.message).toMatch(/at least \d+ tokens/);
    expect(counted).toHaveLength(0);
    // One that may fit is counted, and refused on its real count.
    const error2 = await refusal(() => admission.promptTokens({ prompt: ".".repeat(5_000), max_tokens: 16 }));
    expect(error2.code).toBe("prompt_too_long");
    expect(counted).toHaveLength(1);
    expect(await admission.promptTokens({ prompt: "hi", max_tokens: 16 })).toBe(2);
  });

  it("turns a full tokenizer queue into 503 + Retry-After, not a 500", async () => {
    const { admission } = makeAdmission({
      tokenizer: {
        count: async () => {
          throw new TokenizerBusyError();
        },
      },
    });
    const error = await refusal(() => admission.promptTokens({ prompt: "hi", max_tokens: 16 }));
    expect(error.status).toBe(503);
    expect(error.code).toBe("unavailable");
    expect(error.headers["retry-after"]).toBe("1");
  });

  it("charges refusals to the tenant's abuse budget, weighted by size, and refuses cheaply once spent", () => {
    const { admission, tick } = makeAdmission({
      limiter: new RateLimiter({ perSecond: 0 }),
    });
    admission.gate("acme");
    // 100 KB refused: 1 + 6 units; twice spends the 10-unit budget.
    admission.charge("acme", new InvalidRequestError("bad"), 100_000);
    admission.gate("acme");
    admission.charge("acme", new PayloadTooLargeError(1), 100_000);
    const error = (() => {
      try {
        admission.gate("acme");
      } catch (e) {
        return e as HttpError;
      }
      throw new Error("expected 429");
    })();
    expect(error.status).toBe(429);
    expect(error.code).toBe("rate_limited");
    expect(Number(error.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    // Other tenants are untouched; server-side failures are never charged.
    admission.gate("other");
    admission.charge("other", new HttpError(503, "unavailable", "x"), 100_000);
    admission.gate("other");
    // The budget refills with time.
    tick(5_000);
    admission.gate("acme");
  });

  it("charges the CPU time of a prompt refused on its real count", async () => {
    const { admission } = makeAdmission({ limiter: new RateLimiter({ perSecond: 0 }) });
    // 5,000 characters: "counted" in 500 ms = 5 units, plus 1 for the refusal: 6 of 10.
    await refusal(() => admission.promptTokens({ prompt: ".".repeat(5_000), max_tokens: 16 }, "acme"));
    admission.charge("acme", new InvalidRequestError("x"), 0);
    admission.gate("acme");
    await refusal(() => admission.promptTokens({ prompt: ".".repeat(5_000), max_tokens: 16 }, "acme"));
    expect(() => admission.gate("acme")).toThrow(/refused requests/);
  });

  it("applies the per-tenant rate limit", () => {
    const { admission, tick } = makeAdmission();
    admission.gate("acme");
    admission.gate("acme");
    expect(() => admission.gate("acme")).toThrow(/too many requests/);
    tick(500);
    admission.gate("acme");
  });

  it("tracks at most maxTenants tenants, forgetting the least recently seen", () => {
    const limiter = new RateLimiter({ perSecond: 1, burst: 1, maxTenants: 2, now: () => 0 });
    expect(limiter.take("a")).toBe(0);
    expect(limiter.take("b")).toBe(0);
    expect(limiter.take("a")).toBeGreaterThan(0); // a's bucket is empty and remembered
    expect(limiter.take("c")).toBe(0); // b, the least recently seen, is forgotten
    expect(limiter.waitFor("a")).toBeGreaterThan(0);
    expect(limiter.take("b")).toBe(0); // starts again full
  });

  it("sheds submissions past the in-flight limit with 503", () => {
    const { admission } = makeAdmission({ maxInFlight: 2 });
    const a = admission.enter();
    const b = admission.enter();
    expect(() => admission.enter()).toThrow(/at capacity/);
    a();
    a(); // leaving twice counts once
    expect(admission.inFlight).toBe(1);
    admission.enter();
    b();
  });
});

describe("ingest configuration", () => {
  it("turns the rate limit and abuse budget on by default", () => {
    const env = loadIngestEnv({});
    expect(env.DEEPQUEUE_RATE_LIMIT_PER_SECOND).toBe(100);
    expect(env.DEEPQUEUE_ABUSE_BUDGET).toBe(60);
  });

  it("refuses to start with a JWKS URL but no issuer or audience, or a symmetric algorithm", () => {
    const jwks = { DEEPQUEUE_JWKS_URL: "https://id.example.com/jwks.json" };
    expect(() => loadIngestEnv({ ...jwks, DEEPQUEUE_JWT_AUDIENCE: "dq" })).toThrow(
      expect.objectContaining({ variable: "DEEPQUEUE_JWT_ISSUER" }),
    );
    expect(() => loadIngestEnv({ ...jwks, DEEPQUEUE_JWT_ISSUER: "https://id.example.com/" })).toThrow(
      ConfigError,
    );
    expect(() =>
      loadIngestEnv({
        ...jwks,
        DEEPQUEUE_JWT_ISSUER: "https://id.example.com/",
        DEEPQUEUE_JWT_AUDIENCE: "dq",
        DEEPQUEUE_JWT_ALGORITHMS: "RS256,HS256",
      }),
    ).toThrow(expect.objectContaining({ variable: "DEEPQUEUE_JWT_ALGORITHMS" }));
  });
});

describe("errorResponseMiddleware", () => {
  type Event = APIGatewayProxyEventV2;
  type Result = APIGatewayProxyStructuredResultV2;
  const logger = createLogger({ name: "test", level: "silent" });
  const context = (ms: number) => ({ getRemainingTimeInMillis: () => ms }) as unknown as Context;

  it("answers middy's early timeout (a busy replica) with 503 + Retry-After", async () => {
    const handler = middy<Event, Result>(() => new Promise<Result>(() => {}), {
      timeoutEarlyInMillis: 5,
    }).use(errorResponseMiddleware({ logger }));
    const result = (await handler({ rawPath: "/v1/requests" } as Event, context(30))) as Result;
    expect(result.statusCode).toBe(503);
    expect(result.headers?.["retry-after"]).toBe("1");
    expect(JSON.parse(result.body as string)).toEqual({
      error: { code: "unavailable", message: expect.stringMatching(/overloaded/) },
    });
  });

  it("replaces middy's own error text with a fixed message", async () => {
    const handler = middy<Event, Result>(() => {
      throw Object.assign(new Error("Unexpected token } in JSON at position 7 (parser internals)"), {
        statusCode: 415,
      });
    }).use(errorResponseMiddleware({ logger }));
    const result = (await handler({ rawPath: "/x" } as Event, context(30_000))) as Result;
    expect(result.statusCode).toBe(415);
    expect(result.body).not.toMatch(/parser internals/);
  });
});
