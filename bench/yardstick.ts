/**
 * The capacity bench's yardstick, in a process of its own so that nothing
 * else counts in its CPU time: `sends` bare SendMessage calls through the
 * AWS SDK (the functions' own client factory) against `endpoint`, eight at a
 * time after a warm-up, and the CPU milliseconds one costs this process.
 *
 * `node --import tsx bench/yardstick.ts <sqs endpoint> <queue url> [sends]` → `{"cpuMsPerSend": 1.2}`
 */
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { createSqsClient } from "../functions/shared/clients.ts";
import { BenchError } from "./errors.ts";
import { closedLoop } from "./load.ts";

const [endpoint, queueUrl, count] = process.argv.slice(2);
if (!endpoint || !queueUrl) throw new BenchError("usage: yardstick.ts <sqs endpoint> <queue url> [sends]");
const sends = Number(count ?? 400);
const sqs = createSqsClient({ endpoint });
const send = (i: number) =>
  sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: `{"n":${i}}` }));
await closedLoop({ concurrency: 8, total: 100, task: send });
const before = process.cpuUsage();
await closedLoop({ concurrency: 8, total: sends, task: send });
const used = process.cpuUsage(before);
process.stdout.write(`${JSON.stringify({ cpuMsPerSend: (used.user + used.system) / 1000 / sends })}\n`);
sqs.destroy();
