import type { SQSClient } from "@aws-sdk/client-sqs";
import { filesMaxBytesSchema } from "../files/defaults.ts";
import type { Authenticator } from "../ingest/auth.ts";
import { ConfigError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { BatchApi } from "./deps.ts";

/**
 * The Files and Batch APIs as ingest holds them: built on the first request to one of their routes,
 * so an ingest replica starts without loading the S3 SDK, the multipart parser and the batch
 * machinery (its cold start is a Knative scale-from-zero's wait). The upload limit is read at
 * start: the HTTP adapter needs it before the body is read.
 *
 * @example const api = new LazyBatchApi(process.env, { sqs, auth, logger }); (await api.get()).files
 */
export class LazyBatchApi {
  /** Largest `POST /v1/files` body (DEEPQUEUE_FILES_MAX_BYTES). */
  readonly maxFileBytes: number;
  readonly #source: Record<string, string | undefined>;
  readonly #shared: { sqs: SQSClient; auth: Pick<Authenticator, "authenticate">; logger: Logger };
  #api: Promise<BatchApi> | undefined;

  constructor(
    source: Record<string, string | undefined>,
    shared: { sqs: SQSClient; auth: Pick<Authenticator, "authenticate">; logger: Logger },
  ) {
    const parsed = filesMaxBytesSchema.safeParse(source.DEEPQUEUE_FILES_MAX_BYTES);
    if (!parsed.success) {
      throw new ConfigError("DEEPQUEUE_FILES_MAX_BYTES", parsed.error.issues[0]?.message ?? "invalid");
    }
    this.maxFileBytes = parsed.data;
    this.#source = source;
    this.#shared = shared;
  }

  /** The APIs, built once (a failed build is tried again on the next request). */
  get(): Promise<BatchApi> {
    this.#api ??= import("./deps.ts")
      .then(({ batchApiFromEnv }) => batchApiFromEnv(this.#source, this.#shared))
      .catch((error: unknown) => {
        this.#api = undefined;
        throw error;
      });
    return this.#api;
  }
}
