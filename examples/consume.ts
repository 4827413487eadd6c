/**
 * Submit a prompt and read its result event off the tenant's result queue.
 *
 *   npm start                                  # in another shell
 *   export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566
 *   DEEPQUEUE_API_KEY=$(cat .deepqueue/dev-api-key) npx tsx examples/consume.ts "Name three message queues."
 */
import { DeepqueueClient, ResultConsumer } from "../client/index.ts";

const apiKey = process.env.DEEPQUEUE_API_KEY;
if (!apiKey) throw new Error("set DEEPQUEUE_API_KEY (the dev tenant's key: .deepqueue/dev-api-key)");

const dq = new DeepqueueClient({ apiKey, baseUrl: process.env.DEEPQUEUE_URL ?? "http://127.0.0.1:8080" });
const { id } = await dq.submit({ prompt: process.argv[2] ?? "Hello, DeepSeek", temperature: 0 });
console.log(`submitted ${id}; waiting for its event on deepqueue-results-dev`);

// At least once, deduplicated by event id: an event is deleted only after this loop body finished.
const consumer = new ResultConsumer({ tenant: "dev", client: dq });
process.once("SIGINT", () => consumer.stop());
for await (const event of consumer) {
  console.log(`${event.type} ${event.subject}`);
  if (event.subject !== id) continue;
  console.log(event.data.result?.text ?? event.data.error);
  consumer.stop();
}
