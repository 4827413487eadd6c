import { randomUUID } from "node:crypto";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { serveHttp } from "../functions/runtime/http.ts";
import { createSqsClient } from "../functions/shared/clients.ts";

/**
 * The floor scenario 1 compares ingest with: a bare Lambda-shaped handler
 * behind the same HTTP adapter (serveHttp) that does the one thing accepting
 * a request cannot skip — send one SQS message — and answers 202. No auth,
 * no validation, no quota, no record. Run as its own process, like ingest:
 * `node --import tsx bench/floor.ts` with PORT and BENCH_FLOOR_QUEUE_URL.
 */
// A bench-only program, not a deepqueue function: it reads its three variables directly.
const port = Number(process.env.PORT ?? 0);
const queueUrl = process.env.BENCH_FLOOR_QUEUE_URL;
if (!queueUrl) throw new Error("BENCH_FLOOR_QUEUE_URL is required");
const sqs = createSqsClient();

const server = await serveHttp(
  async (event) => {
    if (event.rawPath === "/healthz") return { statusCode: 200, body: "{}" };
    const id = randomUUID();
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: event.body ?? "{}" }));
    return {
      statusCode: 202,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, status: "queued" }),
    };
  },
  { port, host: "127.0.0.1", functionName: "bench-floor" },
);
process.stdout.write(`floor listening on ${server.url}\n`);
process.once("SIGTERM", () => {
  void server.close().then(() => process.exit(0));
});
