import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { DeepqueueError } from "./errors.ts";

/** DynamoDB left items of a batch write unprocessed (throttled) after our retries. */
export class UnprocessedItemsError extends DeepqueueError {
  constructor(message: string) {
    super(message);
    this.name = "UnprocessedItemsError";
  }
}

/** True when a conditional write lost (the item was not in the state the condition required). */
export function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error as { name?: string } | undefined)?.name === "ConditionalCheckFailedException"
  );
}

/**
 * Runs a conditional write: true when it applied, false when its condition
 * failed (the item was not in the required state); any other error propagates.
 *
 * @example const first = await conditionalWrite(() => ddb.send(new PutCommand({ …, ConditionExpression: "attribute_not_exists(pk)" })));
 */
export async function conditionalWrite(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}

/** Epoch seconds, the unit DynamoDB TTL attributes use. */
export function epochSeconds(date: Date | number = Date.now()): number {
  return Math.floor((typeof date === "number" ? date : date.getTime()) / 1000);
}

/** True when an item's TTL attribute (epoch seconds) has passed: TTL deletion lags, so reads check it. */
export function isExpired(expiresAt: unknown, now = Date.now()): boolean {
  return typeof expiresAt === "number" && expiresAt * 1000 <= now;
}
