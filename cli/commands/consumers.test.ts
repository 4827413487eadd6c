import {
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  StartMessageMoveTaskCommand,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dlqName, queueName, resultQueueName } from "../../functions/shared/names.ts";
import { provisionTenant } from "../../functions/shared/provision.ts";
import { resultEvent } from "../../functions/shared/results.ts";
import { DynamoRequestStore } from "../../functions/shared/stores/requests.ts";
import { DynamoTenantStore } from "../../functions/shared/stores/tenants.ts";
import { runCli } from "../../test/helpers/cli.ts";
import { ANSWER, createRequest, drain } from "../../test/helpers/delivery.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { startIngestServer } from "../../test/helpers/ingest.ts";
import { consumeResults } from "./results.ts";

let stack: TestStack;
let requests: DynamoRequestStore;
let apiKey: string;
const url = async (name: string) =>
  (await stack.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;

beforeAll(async () => {
  stack = await startTestStack();
  requests = new DynamoRequestStore(stack.ddb, stack.prefix);
  const tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  apiKey = (await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "dev" }))
    .api_key;
});

afterAll(() => stack.stop());

async function putResult(text = ANSWER.text) {
  const created = await createRequest(requests, "dev");
  const { record } = await requests.complete(created.id, { ...ANSWER, text });
  const event = resultEvent(record);
  await stack.sqs.send(
    new SendMessageCommand({
      QueueUrl: await url(resultQueueName(stack.prefix, "dev")),
      MessageBody: JSON.stringify(event),
    }),
  );
  return event;
}

describe("deepqueue results", () => {
  it("--json prints one event per line and deletes what it printed", async () => {
    const a = await putResult("first answer");
    const b = await putResult("second answer");
    const { stdout } = await runCli(["results", "--json"], stack.env);
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((e) => e.id).sort()).toEqual([a.id, b.id].sort());
    expect(lines.every((e) => e.specversion === "1.0")).toBe(true);
    expect((await runCli(["results", "--json"], stack.env)).stdout).toBe("");
  });

  it("prints events pretty by default", async () => {
    const event = await putResult("Queues decouple producers\nfrom consumers.");
    const { stdout } = await runCli(["results", "--tenant", "dev"], stack.env);
    expect(stdout).toContain(`✔ completed  ${event.subject}  deepseek-chat  source=model  tokens=5+11`);
    expect(stdout).toContain("    Queues decouple producers\n    from consumers.");
  });

  it("--follow keeps reading until stopped (Ctrl-C aborts the same way)", async () => {
    const abort = new AbortController();
    const printed: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => {
      printed.push(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      const following = consumeResults({
        sqs: stack.sqs,
        prefix: stack.prefix,
        tenant: "dev",
        follow: true,
        json: true,
        waitTimeSeconds: 1,
        signal: abort.signal,
      });
      const later = await putResult("arrived while following");
      await expect.poll(() => printed.join(""), { timeout: 10_000 }).toContain(later.id);
      abort.abort();
      await expect(following).resolves.toBe(1);
    } finally {
      process.stdout.write = write;
    }
  });
});

describe("deepqueue submit", () => {
  it("submits through the HTTP API and with --wait prints the answer", async () => {
    const ingest = await startIngestServer(stack);
    try {
      const { stdout } = await runCli(
        ["submit", "What is a queue?", "--url", ingest.url, "--api-key", apiKey],
        stack.env,
      );
      const [id, status] = stdout.trim().split(/\s+/);
      expect(status).toBe("queued");
      expect((await requests.get(id!))?.request.prompt).toBe("What is a queue?");

      // A worker stand-in: completes whatever the next submit queues.
      const worker = (async () => {
        for (let i = 0; i < 200; i++) {
          const [next] = await drain(stack.sqs, await url(queueName(stack.prefix, "requests")));
          const accepted = next && JSON.parse(next.Body!);
          if (accepted && accepted.subject !== id) {
            await requests.complete(accepted.subject, ANSWER);
            return accepted.subject as string;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        return undefined;
      })();
      const waited = await runCli(
        ["submit", "Another?", "--wait", "--conversation", "cli-1", "--url", ingest.url],
        { ...stack.env, DEEPQUEUE_API_KEY: apiKey },
      );
      const second = await worker;
      expect(waited.stdout.trim()).toBe(ANSWER.text);
      expect((await requests.get(second!))?.conversation_id).toBe("cli-1");
    } finally {
      await ingest.close();
    }
  });
});

describe("deepqueue redrive", () => {
  it("moves a DLQ's messages back (fauxqs has no move tasks: receive, send, delete), rate-limited and repeatable", async () => {
    const source = await url(queueName(stack.prefix, "inference"));
    const dlq = await url(dlqName(queueName(stack.prefix, "inference")));
    const dlqArn = `arn:aws:sqs:us-east-1:000000000000:${dlqName(queueName(stack.prefix, "inference"))}`;
    // What earlier tests submitted (non-cacheable requests go straight to the inference queue).
    await drain(stack.sqs, source);
    await expect(stack.sqs.send(new StartMessageMoveTaskCommand({ SourceArn: dlqArn }))).rejects.toThrow(
      /Unknown action|InvalidAction/i,
    );

    for (let i = 0; i < 5; i++) {
      await stack.sqs.send(new SendMessageCommand({ QueueUrl: dlq, MessageBody: JSON.stringify({ n: i }) }));
    }
    const first = JSON.parse(
      (await runCli(["redrive", "inference", "--rate", "50", "--max", "2", "--json"], stack.env)).stdout,
    );
    expect(first).toMatchObject({
      moved: 2,
      method: "receive-send-delete",
      dlq: `${stack.prefix}-inference-dlq`,
    });
    const rest = JSON.parse(
      (await runCli(["redrive", "inference-dlq", "--rate", "50", "--json"], stack.env)).stdout,
    );
    expect(rest.moved).toBe(3);
    const again = JSON.parse((await runCli(["redrive", "inference", "--json"], stack.env)).stdout);
    expect(again.moved).toBe(0);
    const back = await drain(stack.sqs, source);
    expect(back.map((m) => JSON.parse(m.Body!).n).sort()).toEqual([0, 1, 2, 3, 4]);
    const left = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: dlq, WaitTimeSeconds: 0 }));
    expect(left.Messages ?? []).toHaveLength(0);
  });

  it("names the queues it knows when given one it does not", async () => {
    await expect(runCli(["redrive", "nope"], stack.env)).rejects.toThrow(
      /requests, inference, inference-batch, delivery, batches, results-<tenant>/,
    );
  });
});

describe("deepqueue reconcile --once", () => {
  it("ends overdue requests failed and reports them", async () => {
    const lost = await createRequest(requests, "dev", { deadlineMs: -1000 });
    const { stdout } = await runCli(["reconcile", "--once", "--json"], {
      ...stack.env,
      DEEPQUEUE_RECONCILE_GRACE_SECONDS: "0",
    });
    expect(JSON.parse(stdout)).toMatchObject({ failed: [lost.id], raced: 0 });
    expect((await requests.get(lost.id))?.status).toBe("failed");
    const delivery = await drain(stack.sqs, await url(queueName(stack.prefix, "delivery")));
    expect(delivery.map((m) => JSON.parse(m.Body!).data.event.type)).toEqual(["deepqueue.request.failed"]);
  });
});
