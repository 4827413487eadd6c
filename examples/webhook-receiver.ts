/**
 * A webhook receiver that verifies deepqueue's Standard Webhooks signatures
 * and ignores repeats (webhook-id stays the same across retries).
 *
 *   DEEPQUEUE_WEBHOOK_SECRET=whsec_… npx tsx examples/webhook-receiver.ts     # listens on 127.0.0.1:3000
 *   npx deepqueue submit "Hello" --callback-url http://127.0.0.1:3000/hooks/deepqueue
 */
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const secret = process.env.DEEPQUEUE_WEBHOOK_SECRET;
if (!secret)
  throw new Error("set DEEPQUEUE_WEBHOOK_SECRET (printed by `deepqueue keys create` / `rotate-secret`)");
const webhook = new Webhook(secret);
const seen = new Set<string>(); // use a table with a TTL in production

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8"); // verify the raw body, before any JSON parsing
    let event: { id: string; type: string; subject: string; data: { result?: { text: string } } };
    try {
      event = webhook.verify(body, req.headers as Record<string, string>) as typeof event;
    } catch {
      res.writeHead(401).end(); // not from deepqueue, or older than 5 minutes: deepqueue will retry
      return;
    }
    const id = String(req.headers["webhook-id"]);
    if (!seen.has(id)) {
      seen.add(id);
      console.log(`${event.type} ${event.subject}: ${event.data.result?.text ?? "(failed)"}`);
    }
    res.writeHead(204).end(); // any 2xx ends delivery; 410 tells deepqueue to stop for good
  });
}).listen(Number(process.env.PORT ?? 3000), "127.0.0.1");
