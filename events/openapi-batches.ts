import { batchCreateBodySchema, batchObjectSchema, fileObjectSchema } from "./batches.ts";

/**
 * The OpenAI-compatible Files and Batches routes in ingest's OpenAPI document (events/openapi.ts
 * spreads these in). They answer in OpenAI's shapes, and errors in OpenAI's error body (the
 * `OpenAiError` component of openapi-openai.ts).
 */

type Json = Record<string, unknown>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** Component schemas of these routes: bodies answered, and `BatchCreateBody` (a body sent). */
export const BATCH_API_OUTPUT_SCHEMAS = {
  FileObject: fileObjectSchema,
  BatchObject: batchObjectSchema,
} as const;
export const BATCH_API_INPUT_SCHEMAS = { BatchCreateBody: batchCreateBodySchema } as const;

const errors = (statuses: number[]): Record<string, Json> =>
  Object.fromEntries(
    statuses.map((status) => [
      String(status),
      {
        description:
          {
            400: "A bad parameter (`param` names it).",
            401: "Missing or invalid credentials.",
            404: "No such file or batch for this tenant (another tenant's id is 404 too).",
            413: "The file is larger than DEEPQUEUE_FILES_MAX_BYTES.",
            503: "A store or queue does not answer.",
          }[status] ?? "An error.",
        content: { "application/json": { schema: ref("OpenAiError") } },
      },
    ]),
  );

const idParameter = (what: string) => ({
  name: "id",
  in: "path",
  required: true,
  description: what,
  schema: { type: "string" },
});

const listParameters = (max: number) => [
  {
    name: "after",
    in: "query",
    required: false,
    description: "The last id of the previous page.",
    schema: { type: "string" },
  },
  { name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: max } },
];

const ok = (description: string, schema: Json, type = "application/json") => ({
  "200": { description, content: { [type]: { schema } } },
});

const list = (item: string) => ({
  type: "object",
  required: ["object", "data", "has_more"],
  properties: {
    object: { const: "list" },
    data: { type: "array", items: ref(item) },
    first_id: { type: ["string", "null"] },
    last_id: { type: ["string", "null"] },
    has_more: { type: "boolean" },
  },
});

const op = (operationId: string, summary: string, description: string, rest: Json): Json => ({
  operationId,
  tags: ["batches"],
  summary,
  description,
  ...rest,
});

/** The paths of the Files and Batches routes (docs/openai.md). */
export function batchApiPaths(): Record<string, Json> {
  const fileId = idParameter("A file id (`file-…`).");
  const batchId = idParameter("A batch id (`batch_…`).");
  return {
    "/v1/files": {
      post: op(
        "createFile",
        "Upload a batch input file",
        "OpenAI's `files.create`: multipart/form-data with `file` (JSONL) and `purpose=batch`.",
        {
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: {
                  type: "object",
                  required: ["file", "purpose"],
                  properties: { file: { type: "string", format: "binary" }, purpose: { const: "batch" } },
                },
              },
            },
          },
          responses: { ...ok("The file.", ref("FileObject")), ...errors([400, 401, 413, 503]) },
        },
      ),
      get: op("listFiles", "List files", "Newest first; `purpose` filters.", {
        parameters: [
          ...listParameters(10_000),
          { name: "order", in: "query", required: false, schema: { enum: ["asc", "desc"] } },
          { name: "purpose", in: "query", required: false, schema: { type: "string" } },
        ],
        responses: { ...ok("A page of files.", list("FileObject")), ...errors([400, 401, 503]) },
      }),
    },
    "/v1/files/{id}": {
      get: op("getFile", "Read a file's object", "Own tenant only.", {
        parameters: [fileId],
        responses: { ...ok("The file.", ref("FileObject")), ...errors([401, 404, 503]) },
      }),
      delete: op("deleteFile", "Delete a file", "Own tenant only.", {
        parameters: [fileId],
        responses: {
          ...ok("Deleted.", {
            type: "object",
            properties: { id: { type: "string" }, object: { const: "file" }, deleted: { const: true } },
          }),
          ...errors([401, 404, 503]),
        },
      }),
    },
    "/v1/files/{id}/content": {
      get: op(
        "getFileContent",
        "Read a file's content",
        "The JSONL bytes (an input file, or a batch's output or error file).",
        {
          parameters: [fileId],
          responses: {
            ...ok("The content.", { type: "string" }, "application/jsonl"),
            ...errors([401, 404, 503]),
          },
        },
      ),
    },
    "/v1/batches": {
      post: op(
        "createBatch",
        "Create a batch",
        "Runs every line of an uploaded file through the pipeline's batch lane.",
        {
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("BatchCreateBody") } },
          },
          responses: {
            ...ok("The batch (validating).", ref("BatchObject")),
            ...errors([400, 401, 404, 503]),
          },
        },
      ),
      get: op("listBatches", "List batches", "Newest first.", {
        parameters: listParameters(100),
        responses: { ...ok("A page of batches.", list("BatchObject")), ...errors([400, 401, 503]) },
      }),
    },
    "/v1/batches/{id}": {
      get: op("getBatch", "Read a batch", "Status, counts, timestamps and file ids.", {
        parameters: [batchId],
        responses: { ...ok("The batch.", ref("BatchObject")), ...errors([401, 404, 503]) },
      }),
    },
    "/v1/batches/{id}/cancel": {
      post: op(
        "cancelBatch",
        "Cancel a batch",
        "`cancelling` until the lines already queued end, then `cancelled`.",
        {
          parameters: [batchId],
          responses: { ...ok("The batch.", ref("BatchObject")), ...errors([400, 401, 404, 503]) },
        },
      ),
    },
  };
}
