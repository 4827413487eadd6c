import {
  CreateQueueCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import type { ScheduledEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResultConsumer } from "../../client/index.ts";
import { buildEvent, EVENT_TYPES, replyMessageSchema } from "../../events/index.ts";
import { ANSWER, createRequest, drain, pump } from "../../test/helpers/delivery.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { createDeliverHandler } from "../deliver/handler.ts";
import { newEventId } from "../shared/ids.ts";
import { createLogger } from "../shared/logger.ts";
import { dlqName, queueName } from "../shared/names.ts";
import { provisionTenant } from "../shared/provision.ts";
import { DynamoRequestStore, type RequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { createReconcilerHandler } from "./handler.ts";
import { type ReconcilerOptions, runReconcilerOnce, startReconcilerLoop } from "./reconciler.ts";

let stack: TestStack;
let requests: DynamoRequestStore;
let tenants: DynamoTenantStore;
let deliveryUrl: string;
const logger = createLogger({ level: "silent" });

beforeAll(async () => {
  stack = await startTestStack();
  requests = new DynamoRequestStore(stack.ddb, stack.prefix);
  tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "acme" });
  deliveryUrl = (
    await stack.sqs.send(new GetQueueUrlCommand({ QueueName: queueName(stack.prefix, "delivery") }))
  ).QueueUrl!;
});

afterAll(() => stack.stop());

const deps = (overrides: Partial<ReconcilerOptions> = {}): ReconcilerOptions => ({
  sqs: stack.sqs,
  requests,
  prefix: stack.prefix,
  logger,
  graceMs: 0,
  ...overrides,
});

describe("reconciler", () => {
  it("ends a request lost to a DLQ failed, and its consumer sees the failed event", async () => {
    // Accepted, queued, and its message pushed to the requests DLQ by hand: no worker will ever see it.
    const lost = await createRequest(requests, "acme", { deadlineMs: -1000 });
    const dlqUrl = (
      await stack.sqs.send(
        new GetQueueUrlCommand({ QueueName: dlqName(queueName(stack.prefix, "requests")) }),
      )
    ).QueueUrl!;
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: dlqUrl,
        MessageBody: JSON.stringify(
          buildEvent({
            id: newEventId(),
            type: EVENT_TYPES.requestAccepted,
            subject: lost.id,
            data: lost.request,
          }),
        ),
      }),
    );

    const report = await runReconcilerOnce(deps());

    expect(report.failed).toEqual([lost.id]);
    const record = await requests.get(lost.id);
    expect(record).toMatchObject({ status: "failed", error: { code: "deadline_exceeded" } });
    expect(record?.error?.message).toContain("still queued");

    // The deliver function carries the failed event to the tenant's result queue…
    await pump(stack.sqs, deliveryUrl, createDeliverHandler(deliverDeps()), () => false, 2);
    // …where a consumer reads it.
    const seen = [];
    const consumer = new ResultConsumer({
      sqs: stack.sqs,
      prefix: stack.prefix,
      tenant: "acme",
      follow: false,
    });
    for await (const event of consumer) seen.push(event);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      id: `evt_${lost.id}`,
      type: "deepqueue.request.failed",
      subject: lost.id,
      data: { id: lost.id, status: "failed", error: { code: "deadline_exceeded" } },
    });
    // A second run finds nothing: the record is terminal.
    expect((await runReconcilerOnce(deps())).checked).toBe(0);
  });

  it("tells a caller waiting on a reply queue (OpenAI routes) at once: a done reply with the failed record", async () => {
    const { QueueUrl: replyUrl } = await stack.sqs.send(
      new CreateQueueCommand({ QueueName: `${stack.prefix}-reply-test` }),
    );
    const lost = await createRequest(requests, "acme", {
      deadlineMs: -1000,
      reply: { queue_url: replyUrl!, stream: true },
    });
    expect((await runReconcilerOnce(deps())).failed).toEqual([lost.id]);
    const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: replyUrl, WaitTimeSeconds: 1 }));
    expect(got.Messages).toHaveLength(1);
    expect(replyMessageSchema.parse(JSON.parse(got.Messages![0]!.Body!))).toMatchObject({
      type: "done",
      request_id: lost.id,
      record: { status: "failed", error: { code: "deadline_exceeded" } },
    });
    await drain(stack.sqs, deliveryUrl);
  });

  it("hands an overdue batch line to the batch worker (line_finished), not to the tenant as a request event", async () => {
    const line = await createRequest(requests, "acme", {
      deadlineMs: -1000,
      batch: { id: "batch_overdue", custom_id: "c-7", line: 7 },
    });
    expect((await runReconcilerOnce(deps())).failed).toEqual([line.id]);
    const batchesUrl = (
      await stack.sqs.send(new GetQueueUrlCommand({ QueueName: queueName(stack.prefix, "batches") }))
    ).QueueUrl!;
    const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: batchesUrl, WaitTimeSeconds: 1 }));
    expect(got.Messages?.map((m) => JSON.parse(m.Body!))).toEqual([
      { type: "line_finished", batch_id: "batch_overdue", request_id: line.id, line: 7, status: "failed" },
    ]);
    const delivered = await stack.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: deliveryUrl, WaitTimeSeconds: 1 }),
    );
    expect(delivered.Messages ?? []).toEqual([]);
    await drain(stack.sqs, batchesUrl);
  });

  it("leaves a request a worker finished meanwhile as it is, and emits nothing", async () => {
    const created = await createRequest(requests, "acme", { deadlineMs: -1000 });
    const [overdue] = await requests.listOverdue(Date.now());
    expect(overdue?.id).toBe(created.id);
    await requests.complete(created.id, ANSWER);
    // The reconciler read the record as open just before the worker finished it.
    let served = false;
    const racing: RequestStore = {
      ...bind(requests),
      listOverdue: async () => {
        if (served) return [];
        served = true;
        return [overdue!];
      },
    };

    const report = await runReconcilerOnce(deps({ requests: racing }));

    expect(report).toEqual({ checked: 1, failed: [], raced: 1 });
    expect((await requests.get(created.id))?.status).toBe("completed");
    expect(await drain(stack.sqs, deliveryUrl)).toHaveLength(0);
  });

  it("waits out the grace period after the deadline", async () => {
    const recent = await createRequest(requests, "acme", { deadlineMs: -1000 });
    const report = await runReconcilerOnce(deps({ graceMs: 60_000 }));
    expect(report.failed).not.toContain(recent.id);
    expect((await requests.get(recent.id))?.status).toBe("queued");
    await requests.markProcessing([recent.id]);
    const later = await runReconcilerOnce(deps({ graceMs: 60_000, now: () => Date.now() + 120_000 }));
    expect(later.failed).toContain(recent.id);
    expect((await requests.get(recent.id))?.error?.message).toContain("still processing");
    await drain(stack.sqs, deliveryUrl);
  });

  it("runs as a scheduled handler and as a loop", async () => {
    const a = await createRequest(requests, "acme", { deadlineMs: -1000 });
    const report = await createReconcilerHandler(deps())({} as ScheduledEvent);
    expect(report.failed).toEqual([a.id]);

    const b = await createRequest(requests, "acme", { deadlineMs: -1000 });
    const reports: string[][] = [];
    const loop = startReconcilerLoop(deps(), { intervalMs: 20, onReport: (r) => reports.push(r.failed) });
    await expect
      .poll(async () => (await requests.get(b.id))?.status, { timeout: 10_000, interval: 50 })
      .toBe("failed");
    await loop.stop();
    expect(reports.flat()).toEqual([b.id]);
    await drain(stack.sqs, deliveryUrl);
  });
});

function deliverDeps() {
  return {
    sqs: stack.sqs,
    requests,
    tenants,
    prefix: stack.prefix,
    devMode: true,
    schedule: [0],
    logger,
  };
}

/** The store's methods bound to it, to override one. */
function bind(store: DynamoRequestStore): RequestStore {
  return {
    create: store.create.bind(store),
    createMany: store.createMany.bind(store),
    get: store.get.bind(store),
    deleteQueued: store.deleteQueued.bind(store),
    markProcessing: store.markProcessing.bind(store),
    complete: store.complete.bind(store),
    fail: store.fail.bind(store),
    setDelivery: store.setDelivery.bind(store),
    listOverdue: store.listOverdue.bind(store),
    listConversation: store.listConversation.bind(store),
  };
}
