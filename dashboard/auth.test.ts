import { request as httpRequest } from "node:http";
import { GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../functions/shared/logger.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { startTestStack, type TestStack } from "../test/helpers/emulators.ts";
import { LOGIN_ATTEMPTS_PER_MINUTE, SESSION_COOKIE } from "./auth.ts";
import { type Dashboard, type DashboardOptions, startDashboard } from "./server.ts";

const TOKEN = "correct-horse-battery-staple-42";
const silent = createLogger({ level: "silent" });

/** node:http, because fetch will not send a Host header of our choosing. */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest(url, { headers }, (res) => {
      let body = "";
      res.on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on("error", reject)
      .end();
  });
}

function cookieOf(res: Response): string {
  const set = res.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  if (!set) throw new Error("no session cookie");
  return set.split(";")[0]!;
}

function csrfOf(page: string): string {
  const token = page.match(/name="csrf" value="([^"]+)"/)?.[1];
  if (!token) throw new Error("no CSRF token in the page");
  return token;
}

describe("dashboard access", () => {
  let stack: TestStack;
  const started: Dashboard[] = [];
  let apiKey: string;
  let secret: string;

  beforeAll(async () => {
    stack = await startTestStack();
    const tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
    const made = await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "acme" });
    apiKey = made.api_key;
    secret = made.webhook_secret;
  });
  afterAll(async () => {
    for (const d of started) await d.stop();
    await stack.stop();
  });

  async function dashboard(options: Partial<DashboardOptions>): Promise<Dashboard> {
    const d = await startDashboard({
      sqs: stack.sqs,
      ddb: stack.ddb,
      prefix: stack.prefix,
      port: 0,
      pollMs: 300,
      logger: silent,
      ...options,
    });
    started.push(d);
    return d;
  }

  async function login(d: Dashboard): Promise<{ cookie: string; csrf: string }> {
    const res = await fetch(`${d.url}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: TOKEN, next: "/" }),
      redirect: "manual",
    });
    expect(res.status).toBe(303);
    const cookie = cookieOf(res);
    const page = await (await fetch(`${d.url}/`, { headers: { cookie, accept: "text/html" } })).text();
    return { cookie, csrf: csrfOf(page) };
  }

  it("refuses to start without the admin token unless it is on loopback in dev mode", async () => {
    await expect(dashboard({ devMode: false })).rejects.toThrow(/DEEPQUEUE_ADMIN_TOKEN/);
    await expect(dashboard({ devMode: true, host: "0.0.0.0" })).rejects.toThrow(/DEEPQUEUE_ADMIN_TOKEN/);
    const d = await dashboard({ devMode: true, host: "0.0.0.0", adminToken: TOKEN });
    expect(d.open).toBe(false);
  });

  it("off loopback or dev mode, every page and the live stream need a login with the token", async () => {
    const d = await dashboard({ devMode: false, adminToken: TOKEN });
    expect(d.open).toBe(false);
    const page = await fetch(`${d.url}/`, { headers: { accept: "text/html" }, redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/login?next=%2F");
    expect((await fetch(`${d.url}/events?view=home`)).status).toBe(401);
    expect((await fetch(`${d.url}/requests/req_1`, { redirect: "manual" })).status).toBe(401);

    const wrong = await fetch(`${d.url}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: `${TOKEN}x` }),
      redirect: "manual",
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.getSetCookie()).toEqual([]);

    const right = await fetch(`${d.url}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: TOKEN, next: "//evil.example/" }),
      redirect: "manual",
    });
    expect(right.status).toBe(303);
    expect(right.headers.get("location")).toBe("/"); // no open redirect
    const setCookie = right.headers.getSetCookie().join(";");
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    const cookie = cookieOf(right);
    const home = await fetch(`${d.url}/`, { headers: { cookie, accept: "text/html" } });
    expect(home.status).toBe(200);
    expect(home.headers.get("content-security-policy")).toContain("script-src 'self'");
  });

  it("refuses the redrive without this session's CSRF token, or from another origin", async () => {
    const d = await dashboard({ devMode: false, adminToken: TOKEN });
    const { cookie, csrf } = await login(d);
    const dlq = `${stack.prefix}-results-acme-dlq`;
    const dlqUrl = (await stack.sqs.send(new GetQueueUrlCommand({ QueueName: dlq }))).QueueUrl!;
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: '{"n":1}' }));
    // The monitor must have seen the DLQ (it polls every 300 ms here).
    await expect
      .poll(async () => (await fetch(`${d.url}/redrive?dlq=${dlq}`, { headers: { cookie } })).status)
      .toBe(200);

    const post = (form: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${d.url}/redrive`, {
        method: "POST",
        headers: { cookie, ...headers },
        body: new URLSearchParams(form),
        redirect: "manual",
      });
    expect((await post({ dlq, confirm: "yes" })).status).toBe(403);
    expect((await post({ dlq, confirm: "yes", csrf: `${csrf}x` })).status).toBe(403);
    expect((await post({ dlq, confirm: "yes", csrf }, { origin: "http://evil.example" })).status).toBe(403);
    expect((await post({ dlq, confirm: "yes", csrf }, { "sec-fetch-site": "cross-site" })).status).toBe(403);
    // Another session's token is not this one's.
    const other = await login(d);
    expect((await post({ dlq, confirm: "yes", csrf: other.csrf })).status).toBe(403);
    // Bad input: a clear error, nothing moved.
    const bad = await post({ dlq: `${stack.prefix}-requests`, confirm: "yes", csrf });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/not a dead-letter queue/);
    expect((await post({ dlq, csrf })).status).toBe(400);

    const ok = await post({ dlq, confirm: "yes", csrf }, { origin: d.url });
    expect(ok.status).toBe(303);
    const sourceUrl = (
      await stack.sqs.send(new GetQueueUrlCommand({ QueueName: `${stack.prefix}-results-acme` }))
    ).QueueUrl!;
    await expect
      .poll(
        async () =>
          (await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: sourceUrl, WaitTimeSeconds: 1 })))
            .Messages?.[0]?.Body,
        { timeout: 15_000 },
      )
      .toBe('{"n":1}');
  });

  it("slows down token guessing: after too many failures even the right token waits", async () => {
    const d = await dashboard({ devMode: false, adminToken: TOKEN });
    for (let i = 0; i < LOGIN_ATTEMPTS_PER_MINUTE; i++) {
      const res = await fetch(`${d.url}/login`, {
        method: "POST",
        body: new URLSearchParams({ token: "guess" }),
      });
      expect(res.status).toBe(401);
    }
    const res = await fetch(`${d.url}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: TOKEN }),
      redirect: "manual",
    });
    expect(res.status).toBe(429);
  });

  it("on loopback in dev mode it is open, but answers loopback names only and still wants the CSRF token", async () => {
    const d = await dashboard({ devMode: true });
    expect(d.open).toBe(true);
    const port = new URL(d.url).port;
    expect((await get(`${d.url}/`, { host: `127.0.0.1:${port}`, accept: "text/html" })).status).toBe(200);
    expect((await get(`${d.url}/`, { host: `localhost:${port}`, accept: "text/html" })).status).toBe(200);
    // A page elsewhere whose name was rebound to 127.0.0.1 arrives with its own Host.
    expect((await get(`${d.url}/`, { host: `evil.example:${port}`, accept: "text/html" })).status).toBe(403);
    const res = await fetch(`${d.url}/redrive`, {
      method: "POST",
      body: new URLSearchParams({ dlq: `${stack.prefix}-requests-dlq`, confirm: "yes" }),
      redirect: "manual",
    });
    expect(res.status).toBe(403);
  });

  it("never shows an API key, a webhook secret or a key hash, even inside a dead letter", async () => {
    const d = await dashboard({ devMode: true });
    const dlq = `${stack.prefix}-requests-dlq`;
    const dlqUrl = (await stack.sqs.send(new GetQueueUrlCommand({ QueueName: dlq }))).QueueUrl!;
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: dlqUrl,
        MessageBody: JSON.stringify({
          data: {
            prompt: `my key is ${apiKey}`,
            webhook_secret: secret,
            headers: { authorization: `Bearer ${apiKey}` },
          },
        }),
        MessageAttributes: { "deepqueue-error": { DataType: "String", StringValue: `bad ${secret}` } },
      }),
    );
    let page = "";
    await expect
      .poll(
        async () => {
          page = await (await fetch(`${d.url}/`, { headers: { accept: "text/html" } })).text();
          return page.includes("my key is");
        },
        { timeout: 15_000 },
      )
      .toBe(true);
    expect(page).toContain("acme");
    expect(page).not.toContain(apiKey);
    expect(page).not.toContain(secret);
    expect(page).not.toContain(secret.slice(6));
    expect(page).not.toContain("key_hash");
  });
});
