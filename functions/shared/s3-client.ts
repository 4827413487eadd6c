import { S3Client } from "@aws-sdk/client-s3";
import { baseConfig, type ClientOptions, countCalls } from "./clients.ts";

// A module of its own: only what uses the files bucket (the Batch API, bootstrap) loads the S3 SDK;
// the workers and ingest's start do not pay for it.

/**
 * The S3 client of the files bucket; honours AWS_ENDPOINT_URL_S3. Path-style addressing
 * (`<endpoint>/<bucket>/<key>`): an emulator or an in-cluster S3 has no per-bucket host names.
 *
 * @example const s3 = createS3Client({ env });
 */
export function createS3Client(options: ClientOptions = {}): S3Client {
  const endpoint = options.endpoint ?? (options.env ?? process.env).AWS_ENDPOINT_URL_S3;
  return countCalls(new S3Client({ ...baseConfig(endpoint, options), forcePathStyle: true }), "s3");
}
