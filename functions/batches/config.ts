import { z } from "zod";
import { filesMaxBytesSchema } from "../files/defaults.ts";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";
import { BATCHES_API_DEFAULTS } from "./api.ts";
import { BATCH_WORKER_DEFAULTS } from "./worker.ts";

/**
 * The Batch API's variables (docs/api.md#configuration): read by ingest (the routes) and by the
 * batch worker (`deepqueue serve batches`).
 */
export const batchesEnvSchema = baseEnvSchema.extend({
  /** Largest file `POST /v1/files` takes, in bytes. @default 104857600 (100 MiB) */
  DEEPQUEUE_FILES_MAX_BYTES: filesMaxBytesSchema,
  /** Most lines of one batch in the batch lane at once (fairness between batches). @default 200 */
  DEEPQUEUE_BATCH_WINDOW: z.coerce.number().int().min(1).default(BATCH_WORKER_DEFAULTS.window),
  /** Lines per chunk the worker prepares and sends in one step. @default 50 */
  DEEPQUEUE_BATCH_CHUNK_LINES: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(BATCH_WORKER_DEFAULTS.chunkLines),
  /**
   * A batch's completion window in seconds; `24h` is the only window the API accepts, and this
   * only shortens it for tests and demos. @default 86400
   */
  DEEPQUEUE_BATCH_WINDOW_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(BATCHES_API_DEFAULTS.windowSeconds)
    .default(BATCHES_API_DEFAULTS.windowSeconds),
});
export type BatchesEnv = z.infer<typeof batchesEnvSchema>;

/** @example const env = loadBatchesEnv(process.env); */
export function loadBatchesEnv(source: Record<string, string | undefined> = process.env): BatchesEnv {
  return loadEnv(batchesEnvSchema, source);
}
