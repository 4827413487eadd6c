import { GetQueueUrlCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { LRUCache } from "lru-cache";
import { DeepqueueError } from "./errors.ts";

export const QUEUE_URLS_DEFAULTS = {
  /** Queue URLs remembered at once: the pipeline's own and one per tenant result queue in use. */
  max: 10_000,
};

/**
 * Resolves queue names to URLs once per process (the URL depends on the
 * endpoint and account, the name is what configuration knows). lru-cache's
 * `fetch` asks SQS once for concurrent lookups of one name and does not
 * remember a failed lookup: the next call asks again.
 *
 * @example const queueUrls = new QueueUrls(sqs); const url = await queueUrls.get("deepqueue-requests");
 */
export class QueueUrls {
  readonly #cache: LRUCache<string, string>;

  constructor(sqs: SQSClient, options: { max?: number } = {}) {
    this.#cache = new LRUCache<string, string>({
      max: options.max ?? QUEUE_URLS_DEFAULTS.max,
      fetchMethod: async (name) => {
        const out = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
        if (!out.QueueUrl) throw new DeepqueueError(`queue ${name} has no URL`);
        return out.QueueUrl;
      },
    });
  }

  async get(name: string): Promise<string> {
    return (await this.#cache.fetch(name))!;
  }

  /** Forgets a name's URL (the queue was deleted or recreated): the next get asks SQS. */
  forget(name: string): void {
    this.#cache.delete(name);
  }
}
