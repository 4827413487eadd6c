import { DeleteObjectsCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { BatchGetCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { ErrorDetail } from "../../events/index.ts";
import { UnprocessedItemsError } from "../shared/dynamo.ts";
import { filesBucketName, tableName } from "../shared/names.ts";
import type { BatchLine } from "./jsonl.ts";
import type { LineRecord } from "./output.ts";

/** BatchGetItem's limit (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html). */
const BATCH_GET_MAX_KEYS = 100;
/** Rounds of asking again for what BatchGetItem left unprocessed. */
const UNPROCESSED_ROUNDS = 5;

/** A validated line made ready to send: its prompt's tokens, or why it cannot be served. */
export interface PreparedLine extends BatchLine {
  prompt_tokens: number;
  /** Set when the line fails without a model call (past the context window): it goes to the error file. */
  reject?: ErrorDetail;
}

/**
 * The request id of a batch's line: derived from the batch id and the line, so a chunk sent
 * twice (a retried worker step) names the same requests and is recognised.
 *
 * @example lineRequestId("batch_0193ab", 7) // "req_0193ab-7"
 */
export function lineRequestId(batchId: string, line: number): string {
  return `req_${batchId.replace(/^batch_/, "")}-${line}`;
}

/**
 * A batch's prepared lines, stored in chunks (S3 objects `batches/<id>/chunk-<n>.json` in the
 * files bucket) so a step reads only the chunk it sends, and the records of its lines' requests.
 *
 * @example const lines = new BatchLines({ s3, ddb, prefix }); await lines.readChunk(batch.id, 0);
 */
export class BatchLines {
  readonly #s3: S3Client;
  readonly #ddb: DynamoDBDocumentClient;
  readonly #bucket: string;
  readonly #requests: string;

  constructor(deps: { s3: S3Client; ddb: DynamoDBDocumentClient; prefix: string }) {
    this.#s3 = deps.s3;
    this.#ddb = deps.ddb;
    this.#bucket = filesBucketName(deps.prefix);
    this.#requests = tableName(deps.prefix, "requests");
  }

  async writeChunks(batchId: string, chunks: readonly PreparedLine[][]): Promise<void> {
    for (let n = 0; n < chunks.length; n++) {
      await this.#s3.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(batchId, n),
          Body: JSON.stringify(chunks[n]),
          ContentType: "application/json",
        }),
      );
    }
  }

  async readChunk(batchId: string, n: number): Promise<PreparedLine[]> {
    const out = await this.#s3.send(
      new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(batchId, n) }),
    );
    return JSON.parse(await out.Body!.transformToString()) as PreparedLine[];
  }

  /** Removes the chunks once the batch's files are written (the lines live on in the records). */
  async deleteChunks(batchId: string, chunks: number): Promise<void> {
    for (let n = 0; n < chunks; n += 1000) {
      const keys = Array.from({ length: Math.min(1000, chunks - n) }, (_, i) => ({
        Key: this.#key(batchId, n + i),
      }));
      await this.#s3.send(new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: keys } }));
    }
  }

  /** The request records of `ids` that exist, by id (consistent reads, 100 a call). */
  async records(ids: readonly string[]): Promise<Map<string, LineRecord>> {
    const found = new Map<string, LineRecord>();
    for (let i = 0; i < ids.length; i += BATCH_GET_MAX_KEYS) {
      let keys: Record<string, unknown>[] = ids.slice(i, i + BATCH_GET_MAX_KEYS).map((pk) => ({ pk }));
      for (let round = 0; keys.length > 0; round++) {
        if (round > UNPROCESSED_ROUNDS)
          throw new UnprocessedItemsError("DynamoDB left request records unread (throttled)");
        const out = await this.#ddb.send(
          new BatchGetCommand({ RequestItems: { [this.#requests]: { Keys: keys, ConsistentRead: true } } }),
        );
        for (const item of out.Responses?.[this.#requests] ?? [])
          found.set(String(item.id), item as LineRecord);
        keys = (out.UnprocessedKeys?.[this.#requests]?.Keys ?? []) as Record<string, unknown>[];
        if (keys.length) await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** round));
      }
    }
    return found;
  }

  #key(batchId: string, n: number): string {
    return `batches/${batchId}/chunk-${n}.json`;
  }
}
