import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { GetQueueUrlCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandLine, descendants } from "../bench/procs.ts";
import { resultEventSchema } from "../events/index.ts";
import { FUNCTION_NODE_FLAGS } from "../functions/runtime/node-flags.ts";
import { createSqsClient } from "../functions/shared/clients.ts";
import { type DevStack, devBanner, startDev } from "../local/dev.ts";

/** The curl line `dev` prints, taken apart: URL, headers and body. */
function parseCurl(banner: string): { url: string; headers: Record<string, string>; body: string } {
  const line = banner.split("\n").find((l) => l.trim().startsWith("curl "));
  if (!line) throw new Error("no curl line in the banner");
  const url = line.match(/curl -s (\S+)/)?.[1];
  const headers = Object.fromEntries(
    [...line.matchAll(/-H "([^:]+): ([^"]+)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]),
  );
  const body = line.match(/-d '([^']+)'/)?.[1];
  if (!url || !body) throw new Error(`cannot read the curl line: ${line}`);
  return { url, headers, body };
}

async function waitForTerminal(stack: DevStack, id: string): Promise<Record<string, unknown>> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    const res = await fetch(`${stack.ingestUrl}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${stack.apiKey}` },
    });
    const record = (await res.json()) as Record<string, unknown>;
    if (record.status === "completed" || record.status === "failed") return record;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`request ${id} did not finish`);
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A free loopback port. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

describe("npm start (deepqueue dev) end to end", () => {
  let stack: DevStack;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "dq-dev-e2e-"));
    stack = await startDev({
      env: { DEEPQUEUE_DATA_DIR: dataDir, LOG_LEVEL: "silent" },
      ports: { ingest: 0, sqs: 0, dynamo: 0, sim: 0, metrics: 0 },
    });
  });
  afterAll(() => stack?.stop());

  it("the printed curl line is answered, the result lands on the dev tenant's queue, a repeat is a cache hit", async () => {
    const curl = parseCurl(devBanner(stack));
    const accepted = await fetch(curl.url, { method: "POST", headers: curl.headers, body: curl.body });
    expect(accepted.status).toBe(202);
    const { id } = (await accepted.json()) as { id: string };

    const record = await waitForTerminal(stack, id);
    expect(record).toMatchObject({ id, status: "completed", result: { source: "model" } });

    const sqs = createSqsClient({ endpoint: stack.emulators.sqsEndpoint });
    const queue = await sqs.send(new GetQueueUrlCommand({ QueueName: "deepqueue-results-dev" }));
    const received = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queue.QueueUrl, WaitTimeSeconds: 5, MaxNumberOfMessages: 10 }),
    );
    const events = (received.Messages ?? []).map((m) => resultEventSchema.parse(JSON.parse(m.Body!)));
    expect(events.find((e) => e.subject === id)?.type).toBe("deepqueue.request.completed");
    sqs.destroy();

    // temperature 0: the same prompt again is answered from the cache.
    const again = await fetch(curl.url, { method: "POST", headers: curl.headers, body: curl.body });
    const second = await waitForTerminal(stack, ((await again.json()) as { id: string }).id);
    expect(second).toMatchObject({ status: "completed", result: { source: "cache" } });
    expect((second.result as { text: string }).text).toBe((record.result as { text: string }).text);
  });

  it("runs every function as a process of its own with the image's V8 flags", () => {
    const children = descendants(process.pid).map((pid) => commandLine(pid).split(" "));
    const served = children.filter((argv) => argv.includes("serve"));
    expect(served.map((argv) => argv[argv.indexOf("serve") + 1]).sort()).toEqual([
      "batcher",
      "batches",
      "cache",
      "deliver",
      "ingest",
    ]);
    for (const argv of served) expect(argv).toEqual(expect.arrayContaining([...FUNCTION_NODE_FLAGS]));
  });

  it("serves /healthz and every worker's /metrics", async () => {
    expect((await fetch(`${stack.ingestUrl}/healthz`)).status).toBe(200);
    expect(Object.keys(stack.workerUrls).sort()).toEqual(["batcher", "batches", "cache", "deliver"]);
    for (const url of Object.values(stack.workerUrls)) {
      const text = await (await fetch(`${url}/metrics`)).text();
      expect(text).toContain("deepqueue_");
    }
  });

  it("examples/webhook-receiver.ts verifies the dev tenant's callbacks with the secret dev keeps, no rotation needed", async () => {
    const port = await freePort();
    const { DEEPQUEUE_WEBHOOK_SECRET: _unset, ...parentEnv } = process.env;
    const receiver: ChildProcess = spawn(
      join(ROOT, "node_modules/.bin/tsx"),
      ["examples/webhook-receiver.ts"],
      {
        cwd: ROOT,
        env: { ...parentEnv, PORT: String(port), DEEPQUEUE_DATA_DIR: dataDir },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
    };
    receiver.stdout?.on("data", collect);
    receiver.stderr?.on("data", collect);
    try {
      const until = Date.now() + 30_000;
      while (!output.includes("listening on") && Date.now() < until) {
        if (receiver.exitCode !== null) throw new Error(`the receiver exited: ${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const res = await fetch(`${stack.ingestUrl}/v1/requests`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          prompt: "Hello webhook",
          max_tokens: 8,
          callback_url: `http://127.0.0.1:${port}/hooks/deepqueue`,
        }),
      });
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      let record: Record<string, unknown> = {};
      while (Date.now() < until) {
        record = (await (
          await fetch(`${stack.ingestUrl}/v1/requests/${id}`, {
            headers: { authorization: `Bearer ${stack.apiKey}` },
          })
        ).json()) as Record<string, unknown>;
        if ((record.delivery as { status?: string } | undefined)?.status !== "pending") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      // A 401 from the receiver (a signature it cannot verify) would leave it pending, then failed.
      expect(record.delivery).toMatchObject({ status: "delivered", attempts: 1 });
      expect(output).toContain(`deepqueue.request.completed ${id}:`);
    } finally {
      receiver.kill("SIGTERM");
    }
  });
});
