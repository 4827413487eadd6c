import type { Command } from "commander";

/**
 * The example that ends each command's `--help`, by command path (`""` is
 * `deepqueue` itself). Kept together so that they read as a set and a test
 * can hold every command to having one whose flags exist.
 */
export const HELP_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  "": ["npm start", "npx deepqueue submit 'What is KEDA?' --wait"],
  dev: ["npm start", "LOG_LEVEL=warn npx deepqueue dev"],
  serve: ["npx deepqueue serve batcher --metrics-port 9092"],
  emulators: ["npx deepqueue emulators --in-memory"],
  sim: ["npx deepqueue sim --port 8000 --failure-rate 0.1 --seed 7"],
  bootstrap: [
    "export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566 AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:4567",
    "npx deepqueue bootstrap --json",
  ],
  keys: ["npx deepqueue keys create --tenant acme --daily-requests 1000 --json"],
  "keys create": [
    "npx deepqueue keys create --tenant acme --daily-requests 1000 --daily-tokens unlimited --json",
  ],
  "keys list": ["npx deepqueue keys list --json"],
  "keys revoke": ["npx deepqueue keys revoke --tenant acme"],
  "keys update": [
    "npx deepqueue keys update --tenant acme --daily-requests unlimited --require-signatures on --degradation cache,static",
  ],
  "keys seal-secrets": ["DEEPQUEUE_SECRETS_KEY=… npx deepqueue keys seal-secrets"],
  "keys rotate-secret": ["npx deepqueue keys rotate-secret --tenant acme --grace-seconds 3600"],
  submit: ["npx deepqueue submit 'Name three message queues.' --max-tokens 64 --temperature 0 --wait"],
  batch: ["npx deepqueue batch create requests.jsonl --wait"],
  "batch create": ["npx deepqueue batch create requests.jsonl --endpoint /v1/completions --wait"],
  "batch list": ["npx deepqueue batch list --json"],
  "batch get": ["npx deepqueue batch get batch_0193…"],
  "batch cancel": ["npx deepqueue batch cancel batch_0193…"],
  "batch results": ["npx deepqueue batch results batch_0193… --errors"],
  results: ["npx deepqueue results --follow --tenant acme"],
  redrive: ["npx deepqueue redrive delivery --rate 5"],
  reconcile: ["npx deepqueue reconcile --once"],
  dashboard: [
    "npx deepqueue dashboard",
    "DEEPQUEUE_ADMIN_TOKEN=… npx deepqueue dashboard --host 0.0.0.0 --port 8090",
  ],
  synth: ["npx deepqueue synth --profile default --out dist"],
  bench: ["npx deepqueue bench --quick"],
};

/** A command's path below the program: `keys create`, `dev`, or `""` for the program itself. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * Ends the `--help` of `program` and of every command under it with its
 * example from HELP_EXAMPLES (commander's `addHelpText("after")`, after the
 * commands' own notes).
 *
 * @example addHelpExamples(program); // deepqueue keys create --help → "… Example:\n  $ npx deepqueue keys create …"
 */
export function addHelpExamples(program: Command): void {
  const visit = (command: Command) => {
    const lines = HELP_EXAMPLES[commandPath(command)];
    if (lines) {
      const title = lines.length > 1 ? "Examples" : "Example";
      command.addHelpText("after", `\n${title}:\n${lines.map((line) => `  $ ${line}`).join("\n")}`);
    }
    for (const sub of command.commands) visit(sub);
  };
  visit(program);
}
