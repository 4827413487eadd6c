import { GetQueueUrlCommand, type SQSClient } from "@aws-sdk/client-sqs";

/**
 * Resolves queue names to URLs once per process (the URL depends on the
 * endpoint and account, the name is what configuration knows).
 *
 * @example const urls = new QueueUrls(sqs); const url = await urls.get("deepqueue-requests");
 */
export class QueueUrls {
  readonly #cache = new Map<string, Promise<string>>();
  constructor(private readonly sqs: SQSClient) {}

  get(name: string): Promise<string> {
    let url = this.#cache.get(name);
    if (!url) {
      url = this.sqs.send(new GetQueueUrlCommand({ QueueName: name })).then((out) => {
        if (!out.QueueUrl) throw new Error(`queue ${name} has no URL`);
        return out.QueueUrl;
      });
      // A failed lookup is not remembered: the next call asks again.
      url.catch(() => this.#cache.delete(name));
      this.#cache.set(name, url);
    }
    return url;
  }

  forget(name: string): void {
    this.#cache.delete(name);
  }
}
