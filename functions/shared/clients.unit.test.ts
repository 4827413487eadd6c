import { createServer } from "node:net";
import { ListQueuesCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { createSqsClient } from "./clients.ts";
import { registry } from "./metrics.ts";

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function sample(name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("AWS clients", () => {
  it("count and time every call, a failed one too", async () => {
    const sqs = createSqsClient({ endpoint: `http://127.0.0.1:${await closedPort()}`, maxAttempts: 1 });
    const labels = { service: "sqs", operation: "ListQueues" };
    const calls = await sample("deepqueue_aws_calls_total", labels);
    const timed = await sample("deepqueue_aws_call_duration_seconds", { ...labels, le: "+Inf" });
    await expect(sqs.send(new ListQueuesCommand({}))).rejects.toThrow();
    expect(await sample("deepqueue_aws_calls_total", labels)).toBe(calls + 1);
    expect(await sample("deepqueue_aws_call_duration_seconds", { ...labels, le: "+Inf" })).toBe(timed + 1);
    sqs.destroy();
  });
});
