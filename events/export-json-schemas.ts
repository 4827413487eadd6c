import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { batchEventSchema, batchObjectSchema, fileObjectSchema } from "./batches.ts";
import { conversationSchema } from "./conversation.ts";
import {
  deliveryRequestedEventSchema,
  inferenceRequestedEventSchema,
  requestAcceptedEventSchema,
  resultEventSchema,
} from "./messages.ts";
import { errorBodySchema, requestRecordSchema } from "./request-record.ts";
import { acceptedResponseSchema, submitBodySchema } from "./submit.ts";

/** Every public shape, by the file name its JSON Schema is written to. */
export const PUBLIC_SCHEMAS = {
  "submit-body": submitBodySchema,
  "accepted-response": acceptedResponseSchema,
  "request-record": requestRecordSchema,
  "error-body": errorBodySchema,
  conversation: conversationSchema,
  "result-event": resultEventSchema,
  "request-accepted-event": requestAcceptedEventSchema,
  "inference-requested-event": inferenceRequestedEventSchema,
  "delivery-requested-event": deliveryRequestedEventSchema,
  "file-object": fileObjectSchema,
  "batch-object": batchObjectSchema,
  "batch-event": batchEventSchema,
} as const;

export const JSON_SCHEMA_DIR = join(dirname(fileURLToPath(import.meta.url)), "json-schema");

/** JSON Schema (draft 2020-12) of each public shape; `io: "input"` for bodies clients send. */
export function jsonSchemas(): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(PUBLIC_SCHEMAS).map(([name, schema]) => [
      name,
      {
        $id: `https://deepqueue.dev/schemas/${name}.json`,
        ...z.toJSONSchema(schema, {
          io: name === "submit-body" ? "input" : "output",
          unrepresentable: "any",
        }),
      },
    ]),
  );
}

/** Writes `events/json-schema/<name>.json`. */
export function writeJsonSchemas(dir = JSON_SCHEMA_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  return Object.entries(jsonSchemas()).map(([name, schema]) => {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, `${JSON.stringify(schema, null, 2)}\n`);
    return file;
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const file of writeJsonSchemas()) process.stdout.write(`${file}\n`);
}
