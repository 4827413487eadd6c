import {
  type AcceptedResponse,
  type BatchObject,
  type BatchOutputLine,
  type Conversation,
  errorBodySchema,
  type FileObject,
  type RequestRecord,
  type SubmitBodyInput,
  TERMINAL_STATUSES,
} from "../events/index.ts";

/** An error answer of the HTTP API (docs/api.md#errors), with its code and, for 429/503, when to retry. */
export class DeepqueueApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfterSeconds: number | undefined;
  constructor(status: number, code: string, message: string, retryAfterSeconds?: number) {
    super(`${status} ${code}: ${message}`);
    this.name = "DeepqueueApiError";
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** `waitFor` ran out of time before the request ended. */
export class WaitTimeoutError extends Error {
  readonly requestId: string;
  readonly lastStatus: string;
  constructor(requestId: string, lastStatus: string, timeoutMs: number) {
    super(`request ${requestId} is still ${lastStatus} after ${Math.round(timeoutMs / 1000)} s`);
    this.name = "WaitTimeoutError";
    this.requestId = requestId;
    this.lastStatus = lastStatus;
  }
}

export interface DeepqueueClientOptions {
  /** The ingest URL. @default "http://127.0.0.1:8080" (`npm start`) */
  baseUrl?: string;
  /** The tenant's API key (`deepqueue keys create`; `dev` prints the dev tenant's). */
  apiKey: string;
  /** Per-call timeout in milliseconds. @default 30 000 */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface WaitOptions {
  /** Give up (WaitTimeoutError) after this long. @default 15 minutes, the default `deadline_seconds` */
  timeoutMs?: number;
  /** First poll interval; it grows 1.5× per poll up to `maxIntervalMs`. @default 250 */
  intervalMs?: number;
  /** @default 5000 */
  maxIntervalMs?: number;
  signal?: AbortSignal;
}

const DEFAULTS = {
  baseUrl: "http://127.0.0.1:8080",
  timeoutMs: 30_000,
  waitTimeoutMs: 15 * 60_000,
  intervalMs: 250,
  maxIntervalMs: 5000,
} as const;

interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Answer the body as text (file contents), not JSON. */
  text?: boolean;
}

type Call = <T>(method: string, path: string, options?: CallOptions) => Promise<T>;

/** A page of OpenAI's cursor lists. */
export interface ListPage<T> {
  object: "list";
  data: T[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

/** `/v1/files` (docs/openai.md): batch input files and batches' output files. */
export class FilesClient {
  constructor(readonly call: Call) {}

  /** Uploads a JSONL batch input file (`purpose=batch`). */
  create(content: string | Uint8Array, options: { filename?: string } = {}): Promise<FileObject> {
    const form = new FormData();
    form.append("purpose", "batch");
    form.append(
      "file",
      new Blob([content], { type: "application/jsonl" }),
      options.filename ?? "batch.jsonl",
    );
    return this.call<FileObject>("POST", "/v1/files", { body: form });
  }

  get(id: string): Promise<FileObject> {
    return this.call<FileObject>("GET", `/v1/files/${encodeURIComponent(id)}`);
  }

  /** The file's bytes as text (JSONL). */
  content(id: string): Promise<string> {
    return this.call<string>("GET", `/v1/files/${encodeURIComponent(id)}/content`, { text: true });
  }

  list(query: { after?: string; limit?: number } = {}): Promise<ListPage<FileObject>> {
    return this.call<ListPage<FileObject>>("GET", `/v1/files${queryString(query)}`);
  }

  delete(id: string): Promise<{ id: string; object: "file"; deleted: boolean }> {
    return this.call("DELETE", `/v1/files/${encodeURIComponent(id)}`);
  }
}

/** The statuses a batch ends in. */
const BATCH_ENDED = ["completed", "failed", "expired", "cancelled"];

/** `/v1/batches` (docs/openai.md), with the CLI's verbs: create, list, get, cancel, results. */
export class BatchesClient {
  constructor(
    readonly call: Call,
    readonly files: FilesClient,
  ) {}

  /** Creates a batch from an uploaded file (`input_file_id`). */
  create(body: {
    input_file_id: string;
    endpoint?: BatchObject["endpoint"];
    metadata?: Record<string, string>;
  }): Promise<BatchObject> {
    return this.call<BatchObject>("POST", "/v1/batches", {
      body: { endpoint: "/v1/chat/completions", completion_window: "24h", ...body },
    });
  }

  get(id: string): Promise<BatchObject> {
    return this.call<BatchObject>("GET", `/v1/batches/${encodeURIComponent(id)}`);
  }

  list(query: { after?: string; limit?: number } = {}): Promise<ListPage<BatchObject>> {
    return this.call<ListPage<BatchObject>>("GET", `/v1/batches${queryString(query)}`);
  }

  cancel(id: string): Promise<BatchObject> {
    return this.call<BatchObject>("POST", `/v1/batches/${encodeURIComponent(id)}/cancel`);
  }

  /** The output file's lines (`errors`: the error file's), parsed; empty when there is no such file. */
  async results(id: string, options: { errors?: boolean } = {}): Promise<BatchOutputLine[]> {
    const batch = await this.get(id);
    const file = options.errors ? batch.error_file_id : batch.output_file_id;
    if (!file) return [];
    const text = await this.files.content(file);
    return text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as BatchOutputLine);
  }

  /** Polls until the batch has ended (completed, failed, expired or cancelled). */
  async waitFor(
    id: string,
    options: { intervalMs?: number; signal?: AbortSignal } = {},
  ): Promise<BatchObject> {
    for (;;) {
      const batch = await this.get(id);
      if (BATCH_ENDED.includes(batch.status)) return batch;
      await sleep(options.intervalMs ?? 1000, options.signal);
    }
  }
}

function queryString(query: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : "";
}

/**
 * A small typed client of deepqueue's HTTP API for TypeScript producers.
 *
 * @example
 * const dq = new DeepqueueClient({ apiKey: process.env.DEEPQUEUE_API_KEY! });
 * const { id } = await dq.submit({ prompt: "Name three queues." });
 * const record = await dq.waitFor(id);
 * console.log(record.result?.text);
 */
export class DeepqueueClient {
  readonly baseUrl: string;
  readonly #apiKey: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  /** OpenAI's Files API: upload batch input files, read batches' output files. */
  readonly files: FilesClient;
  /** OpenAI's Batch API: run a JSONL file of requests as one batch. */
  readonly batches: BatchesClient;

  constructor(options: DeepqueueClientOptions) {
    if (!options.apiKey) throw new Error("DeepqueueClient: apiKey is required");
    this.baseUrl = (options.baseUrl ?? DEFAULTS.baseUrl).replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.#fetch = options.fetch ?? fetch;
    const call: Call = (method, path, callOptions = {}) => this.#call(method, path, callOptions);
    this.files = new FilesClient(call);
    this.batches = new BatchesClient(call, this.files);
  }

  /** `POST /v1/requests`. An `idempotencyKey` makes a retried submit return the first request's id. */
  submit(
    body: SubmitBodyInput,
    options: { idempotencyKey?: string; signal?: AbortSignal } = {},
  ): Promise<AcceptedResponse> {
    return this.#call<AcceptedResponse>("POST", "/v1/requests", {
      body,
      ...(options.idempotencyKey ? { headers: { "idempotency-key": options.idempotencyKey } } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** `GET /v1/requests/{id}`: the record (also the full form of a claim-checked result event). */
  get(id: string, options: { signal?: AbortSignal } = {}): Promise<RequestRecord> {
    return this.#call<RequestRecord>("GET", `/v1/requests/${encodeURIComponent(id)}`, options);
  }

  /** `GET /v1/conversations/{id}`. */
  conversation(id: string, options: { signal?: AbortSignal } = {}): Promise<Conversation> {
    return this.#call<Conversation>("GET", `/v1/conversations/${encodeURIComponent(id)}`, options);
  }

  /**
   * Polls until the request is `completed` or `failed` and returns the record
   * (a failed one too: check `record.error`). 429 and 503 answers are waited
   * out, honouring `Retry-After`.
   */
  async waitFor(id: string, options: WaitOptions = {}): Promise<RequestRecord> {
    const timeoutMs = options.timeoutMs ?? DEFAULTS.waitTimeoutMs;
    const maxInterval = options.maxIntervalMs ?? DEFAULTS.maxIntervalMs;
    const giveUpAt = Date.now() + timeoutMs;
    let interval = options.intervalMs ?? DEFAULTS.intervalMs;
    let lastStatus = "unknown";
    for (;;) {
      let wait = interval;
      try {
        const record = await this.get(id, options.signal ? { signal: options.signal } : {});
        if (TERMINAL_STATUSES.includes(record.status)) return record;
        lastStatus = record.status;
      } catch (error) {
        if (!(error instanceof DeepqueueApiError) || (error.status !== 429 && error.status < 500))
          throw error;
        wait = Math.max(wait, (error.retryAfterSeconds ?? 0) * 1000);
      }
      if (Date.now() + wait > giveUpAt) throw new WaitTimeoutError(id, lastStatus, timeoutMs);
      await sleep(wait, options.signal);
      interval = Math.min(maxInterval, interval * 1.5);
    }
  }

  async #call<T>(method: string, path: string, options: CallOptions): Promise<T> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const jsonBody = options.body !== undefined && !(options.body instanceof FormData);
    const response = await this.#fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.#apiKey}`,
        accept: options.text ? "*/*" : "application/json",
        ...(jsonBody ? { "content-type": "application/json" } : {}),
        ...options.headers,
      },
      // FormData sets its own multipart content type and boundary.
      ...(options.body instanceof FormData
        ? { body: options.body }
        : jsonBody
          ? { body: JSON.stringify(options.body) }
          : {}),
      signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
    });
    const text = await response.text();
    if (response.ok && options.text) return text as T;
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (response.ok) return json as T;
    const parsed = errorBodySchema.safeParse(json);
    const retryAfter = Number(response.headers.get("retry-after"));
    throw new DeepqueueApiError(
      response.status,
      parsed.success ? parsed.data.error.code : "http_error",
      parsed.success ? parsed.data.error.message : text.slice(0, 200) || response.statusText,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    );
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
