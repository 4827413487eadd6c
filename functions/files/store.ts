import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { DeleteCommand, type DynamoDBDocumentClient, PutCommand } from "@aws-sdk/lib-dynamodb";
import type { FileObject } from "../../events/index.ts";
import { conditionalWrite, epochSeconds } from "../shared/dynamo.ts";
import { filesBucketName, tableName } from "../shared/names.ts";
import { type ListQuery, OwnedItems, type Page } from "./owned-items.ts";

/** How long a batch's output and error files stay (OpenAI keeps them 30 days). Uploads stay until deleted. */
export const OUTPUT_FILE_RETENTION_SECONDS = 30 * 24 * 3600;

/** A file as stored: its public object, its owner and where its body is. */
export interface StoredFile extends FileObject {
  tenant: string;
  /** The S3 key of the body in the files bucket. */
  key: string;
}

/** What a new file needs; the store fills `object`, `status`, `key` and `bytes`. */
export interface NewFile {
  id: string;
  tenant: string;
  filename: string;
  purpose: FileObject["purpose"];
  created_at: number;
  /** Epoch seconds after which the file is gone (output files). */
  expires_at?: number;
}

/**
 * Files: metadata in DynamoDB (`<prefix>-files`), bodies in S3 (`<prefix>-files` bucket, key
 * `files/<id>`). A tenant reads only its own: another tenant's id is absent.
 */
export interface FileStore {
  /** Stores the body, then the metadata: a file is listed only once its body is readable. */
  put(file: NewFile, body: Buffer | string): Promise<StoredFile>;
  get(tenant: string, id: string): Promise<StoredFile | undefined>;
  /** The body as bytes. */
  content(file: StoredFile): Promise<Buffer>;
  list(tenant: string, query: ListQuery & { purpose?: string }): Promise<Page<StoredFile>>;
  /** Removes the metadata (the file is gone at once), then the body. False when there was none. */
  delete(tenant: string, id: string): Promise<boolean>;
}

/** The public `file` object of a stored file. */
export function toFileObject(file: StoredFile): FileObject {
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes,
    created_at: file.created_at,
    filename: file.filename,
    purpose: file.purpose,
    status: file.status,
    ...(file.expires_at !== undefined ? { expires_at: file.expires_at } : {}),
  };
}

/** @example const files = new S3FileStore({ ddb, s3, prefix: "deepqueue" }); */
export class S3FileStore implements FileStore {
  readonly #ddb: DynamoDBDocumentClient;
  readonly #s3: S3Client;
  readonly #bucket: string;
  readonly #items: OwnedItems;

  constructor(deps: { ddb: DynamoDBDocumentClient; s3: S3Client; prefix: string }) {
    this.#ddb = deps.ddb;
    this.#s3 = deps.s3;
    this.#bucket = filesBucketName(deps.prefix);
    this.#items = new OwnedItems(deps.ddb, tableName(deps.prefix, "files"));
  }

  async put(file: NewFile, body: Buffer | string): Promise<StoredFile> {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const key = `files/${file.id}`;
    await this.#s3.send(
      new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: bytes, ContentType: "application/jsonl" }),
    );
    const stored: StoredFile = {
      ...file,
      object: "file",
      bytes: bytes.length,
      status: "processed",
      key,
    };
    await this.#ddb.send(
      new PutCommand({
        TableName: this.#items.table,
        Item: {
          pk: file.id,
          ...stored,
          ...(file.expires_at !== undefined ? { retain_until: file.expires_at } : {}),
        },
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
    return stored;
  }

  async get(tenant: string, id: string): Promise<StoredFile | undefined> {
    const item = await this.#items.get(tenant, id);
    return item ? fromItem(item) : undefined;
  }

  async content(file: StoredFile): Promise<Buffer> {
    const out = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: file.key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  }

  async list(tenant: string, query: ListQuery & { purpose?: string }): Promise<Page<StoredFile>> {
    const page = await this.#items.list(
      tenant,
      query,
      (item) => !query.purpose || item.purpose === query.purpose,
    );
    return { data: page.data.map(fromItem), has_more: page.has_more };
  }

  async delete(tenant: string, id: string): Promise<boolean> {
    const file = await this.get(tenant, id);
    if (!file) return false;
    const removed = await conditionalWrite(() =>
      this.#ddb.send(
        new DeleteCommand({
          TableName: this.#items.table,
          Key: { pk: id },
          ConditionExpression: "tenant = :t",
          ExpressionAttributeValues: { ":t": tenant },
        }),
      ),
    );
    if (removed) await this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: file.key }));
    return removed;
  }
}

function fromItem(item: Record<string, unknown>): StoredFile {
  const { pk: _pk, retain_until: _retain, ...rest } = item;
  return rest as unknown as StoredFile;
}

/** Epoch seconds now (OpenAI's time unit). */
export function nowSeconds(now: number = Date.now()): number {
  return epochSeconds(now);
}
