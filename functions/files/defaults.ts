import { z } from "zod";

// Apart from files.ts (which loads the multipart parser and, through the store, the S3 SDK): ingest
// reads the upload limit at start and loads the Files API itself on first use.

/** Defaults of the Files API (docs/openai.md#limits). */
export const FILES_DEFAULTS = {
  /** Largest upload (OpenAI allows 200 MB for batch files); refused while the body is read. */
  maxBytes: 100 * 1024 * 1024,
  /** `GET /v1/files` page size when `limit` is absent, and its largest value (OpenAI's). */
  listLimit: 10_000,
} as const;

/** `DEEPQUEUE_FILES_MAX_BYTES`: the largest upload, in bytes. */
export const filesMaxBytesSchema = z.coerce.number().int().min(1024).default(FILES_DEFAULTS.maxBytes);
