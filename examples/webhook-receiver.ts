/**
 * A webhook receiver that verifies deepqueue's Standard Webhooks signatures
 * and ignores repeats (webhook-id stays the same across retries).
 *
 *   npx tsx examples/webhook-receiver.ts      # listens on 127.0.0.1:3000 (PORT)
 *   npx deepqueue submit "Hello" --callback-url http://127.0.0.1:3000/hooks/deepqueue
 *
 * The secret is DEEPQUEUE_WEBHOOK_SECRET (`keys create` prints a tenant's), else
 * the dev tenant's, which `npm start` keeps in .deepqueue/dev-webhook-secret.
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";

const devSecretFile = join(process.env.DEEPQUEUE_DATA_DIR || ".deepqueue", "dev-webhook-secret");
const secret =
  process.env.DEEPQUEUE_WEBHOOK_SECRET ||
  (existsSync(devSecretFile) ? readFileSync(devSecretFile, "utf8").trim() : undefined);
if (!secret)
  throw new Error(
    `set DEEPQUEUE_WEBHOOK_SECRET (printed by \`deepqueue keys create\`), or start \`npm start\` first (it writes ${devSecretFile})`,
  );
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
}).listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () =>
  console.log(`listening on http://127.0.0.1:${process.env.PORT ?? 3000}`),
);
