import httpMultipartBodyParser from "@middy/http-multipart-body-parser";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import type { Authenticator } from "../ingest/auth.ts";
import { InvalidParamError } from "../openai/errors.ts";
import {
  type HttpError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
} from "../shared/errors.ts";
import { newFileId } from "../shared/ids.ts";
import { FILES_DEFAULTS } from "./defaults.ts";
import { listQuery, listResponse, type OpenAiRequest, type OpenAiResponse } from "./http.ts";
import { type FileStore, nowSeconds, toFileObject } from "./store.ts";

export interface FilesApiOptions {
  files: FileStore;
  auth: Pick<Authenticator, "authenticate">;
  /** @default FILES_DEFAULTS.maxBytes */
  maxBytes?: number;
}

/** What the multipart parser leaves in `event.body` for the `file` part. */
interface Attachment {
  filename: string;
  mimetype: string;
  content: Buffer;
}

/** Errors that middy's multipart parser raises (`@middy/util`'s createError). */
function multipartError(error: unknown, maxBytes: number): HttpError {
  const status = (error as { statusCode?: number }).statusCode;
  if (status === 413) return new PayloadTooLargeError(maxBytes);
  if (status === 415) {
    return new InvalidRequestError("the body must be multipart/form-data with the fields file and purpose");
  }
  return new InvalidRequestError("malformed multipart/form-data body", { cause: error });
}

/**
 * The Files API (https://platform.openai.com/docs/api-reference/files) for batch input files:
 * upload (multipart, `purpose=batch`), read, read content, list and delete, each tenant only its own.
 *
 * @example const api = new FilesApi({ files, auth }); await api.create(req);
 */
export class FilesApi {
  readonly #files: FileStore;
  readonly #auth: Pick<Authenticator, "authenticate">;
  readonly #maxBytes: number;
  readonly #parser: ReturnType<typeof httpMultipartBodyParser>;

  constructor(options: FilesApiOptions) {
    this.#files = options.files;
    this.#auth = options.auth;
    this.#maxBytes = options.maxBytes ?? FILES_DEFAULTS.maxBytes;
    this.#parser = httpMultipartBodyParser({ busboy: { limits: { fileSize: this.#maxBytes, files: 1 } } });
  }

  /** The largest body `POST /v1/files` reads (the HTTP adapter refuses larger ones while reading). */
  get maxBodyBytes(): number {
    // The multipart envelope (boundaries, part headers, the purpose field) around the file.
    return this.#maxBytes + 64 * 1024;
  }

  /** `POST /v1/files`. */
  async create(req: OpenAiRequest): Promise<OpenAiResponse> {
    const { tenant } = await this.#auth.authenticate(req.headers, req.text, { signed: true });
    const fields = await this.#parse(req.event);
    if (fields.purpose !== "batch") {
      throw new InvalidParamError("purpose", 'purpose: only "batch" files are supported');
    }
    const file = fields.file as Attachment | Attachment[] | undefined;
    if (!file || Array.isArray(file) || !Buffer.isBuffer(file.content)) {
      throw new InvalidParamError("file", "file: exactly one file part is required");
    }
    if (file.content.length === 0) throw new InvalidParamError("file", "file: the file is empty");
    const stored = await this.#files.put(
      {
        id: newFileId(),
        tenant: tenant.tenant,
        filename: (file.filename || "upload.jsonl").slice(0, 255),
        purpose: "batch",
        created_at: nowSeconds(),
      },
      file.content,
    );
    return { status: 200, body: toFileObject(stored) };
  }

  /** `GET /v1/files/{id}`. */
  async get(req: OpenAiRequest): Promise<OpenAiResponse> {
    return { status: 200, body: toFileObject(await this.#own(req)) };
  }

  /** `GET /v1/files/{id}/content`: the bytes as uploaded (JSONL). */
  async content(req: OpenAiRequest): Promise<OpenAiResponse> {
    const file = await this.#own(req);
    return {
      status: 200,
      raw: { text: await this.#files.content(file), contentType: "application/jsonl" },
    };
  }

  /** `GET /v1/files`: newest first, cursor `after`, optional `purpose`. */
  async list(req: OpenAiRequest): Promise<OpenAiResponse> {
    const { tenant } = await this.#auth.authenticate(req.headers, "", { signed: false });
    const query = listQuery(req.query, { fallback: FILES_DEFAULTS.listLimit, max: FILES_DEFAULTS.listLimit });
    const purpose = req.query.purpose;
    const page = await this.#files.list(tenant.tenant, { ...query, ...(purpose ? { purpose } : {}) });
    return listResponse(page.data.map(toFileObject), page.has_more);
  }

  /** `DELETE /v1/files/{id}`. */
  async delete(req: OpenAiRequest): Promise<OpenAiResponse> {
    const { tenant } = await this.#auth.authenticate(req.headers, "", { signed: false });
    const id = req.params.id ?? "";
    if (!(await this.#files.delete(tenant.tenant, id))) throw new NotFoundError(`no file ${id}`);
    return { status: 200, body: { id, object: "file", deleted: true } };
  }

  async #own(req: OpenAiRequest) {
    const { tenant } = await this.#auth.authenticate(req.headers, "", { signed: false });
    const id = req.params.id ?? "";
    const file = await this.#files.get(tenant.tenant, id);
    if (!file) throw new NotFoundError(`no file ${id}`);
    return file;
  }

  async #parse(event: APIGatewayProxyEventV2): Promise<Record<string, unknown>> {
    const request = { event: { ...event } } as { event: { body?: unknown } };
    try {
      await this.#parser.before!(request as never);
    } catch (error) {
      throw multipartError(error, this.#maxBytes);
    }
    return (request.event.body ?? {}) as Record<string, unknown>;
  }
}
