import { type BatchControlMessage, batchCreateBodySchema, describeIssues } from "../../events/index.ts";
import { listQuery, listResponse, type OpenAiRequest, type OpenAiResponse } from "../files/http.ts";
import type { FileStore } from "../files/store.ts";
import type { Authenticator } from "../ingest/auth.ts";
import { InvalidParamError } from "../openai/errors.ts";
import { InvalidRequestError, NotFoundError } from "../shared/errors.ts";
import { newBatchId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import { type BatchStore, newBatch, type StoredBatch, toBatchObject } from "./store.ts";

/** Defaults of the Batches API. */
export const BATCHES_API_DEFAULTS = {
  /** `completion_window: "24h"`, the only window OpenAI offers, in seconds. */
  windowSeconds: 24 * 3600,
} as const;

export interface BatchesApiOptions {
  batches: BatchStore;
  files: FileStore;
  auth: Pick<Authenticator, "authenticate">;
  /** Sends a control message to `<prefix>-batches`. */
  control: (message: BatchControlMessage) => Promise<void>;
  logger: Logger;
  /** How long a batch may run before it expires (tests shorten it). @default BATCHES_API_DEFAULTS.windowSeconds */
  windowSeconds?: number;
  /** @default Date.now */
  now?: () => number;
}

/** Body fields whose own fields a 400 names in full, as OpenAI does (`output_expires_after.seconds`). */
const NESTED_PARAMS = new Set(["output_expires_after"]);

/**
 * The `param` of a 400 from the path of the first problem: the top-level field, or the nested
 * one for NESTED_PARAMS (metadata's keys are the caller's own, so its problems name `metadata`).
 */
function paramAtFault(path: readonly PropertyKey[]): string {
  const [top, field] = path.map(String);
  if (!top) return "body";
  return field !== undefined && NESTED_PARAMS.has(top) ? `${top}.${field}` : top;
}

/** Parses `POST /v1/batches`'s body: 400 naming the parameter at fault. */
function parseCreateBody(text: string) {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InvalidRequestError("the body must be a JSON object");
  }
  const parsed = batchCreateBodySchema.safeParse(json);
  if (!parsed.success) {
    const param = paramAtFault(parsed.error.issues[0]?.path ?? []);
    const message = describeIssues(parsed.error);
    throw new InvalidParamError(param, message.startsWith(`${param}: `) ? message : `${param}: ${message}`);
  }
  return parsed.data;
}

/**
 * The Batch API (https://platform.openai.com/docs/api-reference/batch): create a batch from an
 * uploaded JSONL file, read it, list (newest first, cursor `after`), cancel. The batch worker
 * (`deepqueue serve batches`) does the rest from the control messages sent here.
 *
 * @example const api = new BatchesApi({ batches, files, auth, control, logger }); await api.create(req);
 */
export class BatchesApi {
  readonly #o: Required<BatchesApiOptions>;

  constructor(options: BatchesApiOptions) {
    this.#o = { windowSeconds: BATCHES_API_DEFAULTS.windowSeconds, now: Date.now, ...options };
  }

  /** `POST /v1/batches`. */
  async create(req: OpenAiRequest): Promise<OpenAiResponse> {
    const { tenant } = await this.#o.auth.authenticate(req.headers, req.text, { signed: true });
    const body = parseCreateBody(req.text);
    const file = await this.#o.files.get(tenant.tenant, body.input_file_id);
    if (!file) throw new NotFoundError(`no file ${body.input_file_id}`);
    if (file.purpose !== "batch") {
      throw new InvalidParamError(
        "input_file_id",
        `input_file_id: file ${file.id} has purpose ${file.purpose}, not batch`,
      );
    }
    const now = Math.floor(this.#o.now() / 1000);
    const batch = newBatch({
      id: newBatchId(),
      tenant: tenant.tenant,
      endpoint: body.endpoint,
      input_file_id: file.id,
      created_at: now,
      expires_at: now + this.#o.windowSeconds,
      metadata: body.metadata ?? null,
      updated_ms: this.#o.now(),
      ...(body.output_expires_after ? { output_expires_after: body.output_expires_after } : {}),
    });
    await this.#o.batches.create(batch);
    await this.#kick(batch.id);
    return { status: 200, body: toBatchObject(batch) };
  }

  /** `GET /v1/batches/{id}`. */
  async get(req: OpenAiRequest): Promise<OpenAiResponse> {
    const { tenant } = await this.#o.auth.authenticate(req.headers, "", { signed: false });
    return { status: 200, body: toBatchObject(await this.#own(tenant.tenant, req.params.id)) };
  }

  /** `GET /v1/batches`: newest first, `after` the last id of the previous page, `limit` 1-100 (20). */
  async list(req: OpenAiRequest): Promise<OpenAiResponse> {
    const { tenant } = await this.#o.auth.authenticate(req.headers, "", { signed: false });
    const page = await this.#o.batches.list(tenant.tenant, listQuery(req.query, { fallback: 20, max: 100 }));
    return listResponse(page.data.map(toBatchObject), page.has_more);
  }

  /**
   * `POST /v1/batches/{id}/cancel`: no more lines are sent; the batch is `cancelling` until the
   * lines already in the lane end, then `cancelled` with what finished in its output file.
   */
  async cancel(req: OpenAiRequest): Promise<OpenAiResponse> {
    const { tenant } = await this.#o.auth.authenticate(req.headers, req.text, { signed: true });
    const batch = await this.#own(tenant.tenant, req.params.id);
    const cancelling = await this.#o.batches.transition(
      batch.id,
      ["validating", "in_progress"],
      "cancelling",
      {
        cancelling_at: Math.floor(this.#o.now() / 1000),
      },
    );
    if (cancelling) {
      await this.#kick(batch.id);
      return { status: 200, body: toBatchObject(cancelling) };
    }
    const current = await this.#own(tenant.tenant, batch.id);
    if (current.status === "cancelling" || current.status === "cancelled") {
      return { status: 200, body: toBatchObject(current) };
    }
    throw new InvalidRequestError(`batch ${batch.id} is ${current.status} and can no longer be cancelled`);
  }

  async #own(tenant: string, id: string | undefined): Promise<StoredBatch> {
    const batch = id ? await this.#o.batches.get(tenant, id) : undefined;
    if (!batch) throw new NotFoundError(`no batch ${id ?? ""}`);
    return batch;
  }

  /** Asks the worker to look at the batch. A lost message is found again by the sweep (a stalled batch). */
  async #kick(id: string): Promise<void> {
    await this.#o.control({ type: "advance", batch_id: id }).catch((error) => {
      this.#o.logger.warn({ err: error, batch_id: id }, "could not notify the batch worker; the sweep will");
    });
  }
}
