import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { DevStackError } from "./errors.ts";
import { withNormalSync } from "./sqlite-sync.ts";

/**
 * The embedded SQS (fauxqs) and DynamoDB (dynalite) emulators. Both speak the
 * AWS wire protocols, so the code under test talks to them only through the
 * `@aws-sdk` clients and `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_DYNAMODB`.
 */
export interface EmulatorOptions {
  /** SQS port; 0 picks a free one. @default 4566 */
  sqsPort?: number;
  /** DynamoDB port; 0 picks a free one. @default 4567 */
  dynamoPort?: number;
  /** Keep queue and table data under this folder across restarts; in memory when absent. */
  dataDir?: string;
  /** Interface to listen on. @default "127.0.0.1" */
  host?: string;
  /**
   * Start only one of the two (each then has a process, and a core, of its own: `npm start` and
   * the capacity bench run them apart). @default both
   */
  only?: "sqs" | "dynamodb";
}

export interface Emulators {
  /** "" when only DynamoDB was started. */
  sqsEndpoint: string;
  /** "" when only SQS was started. */
  dynamoEndpoint: string;
  /** The variables that point any deepqueue command (or the AWS CLI) at these emulators. */
  env: { AWS_ENDPOINT_URL_SQS: string; AWS_ENDPOINT_URL_S3: string; AWS_ENDPOINT_URL_DYNAMODB: string };
  stop(): Promise<void>;
}

export const DEV_PORTS = { sqs: 4566, dynamo: 4567 } as const;

/**
 * fauxqs and dynalite are devDependencies, left out of the functions' image:
 * they load only when emulators start, and say so when they are missing.
 */
async function loadEmulator<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw new DevStackError(
      "the emulators (fauxqs, dynalite) are development dependencies: run this from a checkout after `npm ci`, not from the production image",
      { cause: error },
    );
  }
}

/**
 * @example
 * const emu = await startEmulators({ sqsPort: 0, dynamoPort: 0 });
 * Object.assign(process.env, emu.env);
 * await emu.stop();
 */
export async function startEmulators(options: EmulatorOptions = {}): Promise<Emulators> {
  const host = options.host ?? "127.0.0.1";
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s();
  };
  let sqsEndpoint = "";
  let dynamoEndpoint = "";
  try {
    if (options.only !== "dynamodb") {
      const sqsDir = options.dataDir ? join(options.dataDir, "sqs") : undefined;
      if (sqsDir) mkdirSync(sqsDir, { recursive: true });
      const { startFauxqs } = await loadEmulator(() => import("fauxqs"));
      // A data folder's SQLite commits without an fsync each (local/sqlite-sync.ts).
      const sqs = await withNormalSync(() =>
        startFauxqs({
          port: options.sqsPort ?? DEV_PORTS.sqs,
          logger: false,
          ...(sqsDir ? { dataDir: sqsDir } : {}),
        }),
      ).value;
      stops.push(() => sqs.stop());
      sqsEndpoint = sqs.address.replace("127.0.0.1", host);
    }
    if (options.only !== "sqs") {
      const dynamoDir = options.dataDir ? join(options.dataDir, "dynamodb") : undefined;
      if (dynamoDir) mkdirSync(dynamoDir, { recursive: true });
      const { default: dynalite } = await loadEmulator(() => import("dynalite"));
      // dynalite creates tables instantly when the delays are 0 (the real service takes seconds).
      const dynamo = dynalite({
        createTableMs: 0,
        deleteTableMs: 0,
        updateTableMs: 0,
        ...(dynamoDir ? { path: dynamoDir } : {}),
      });
      await new Promise<void>((resolve, reject) => {
        dynamo.once("error", reject);
        dynamo.listen(options.dynamoPort ?? DEV_PORTS.dynamo, host, () => resolve());
      });
      stops.push(
        () =>
          new Promise<void>((resolve) => {
            dynamo.close(() => resolve());
            // Keep-alive sockets would hold close() open; end them.
            (dynamo as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      );
      dynamoEndpoint = `http://${host}:${(dynamo.address() as AddressInfo).port}`;
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    sqsEndpoint,
    dynamoEndpoint,
    // fauxqs serves S3 (the files bucket) on the SQS port.
    env: {
      AWS_ENDPOINT_URL_SQS: sqsEndpoint,
      AWS_ENDPOINT_URL_S3: sqsEndpoint,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
    },
    stop,
  };
}
