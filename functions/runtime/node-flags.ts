/**
 * The V8 flags a function's process runs with: in the image (the Dockerfile's NODE_OPTIONS, which
 * repeats them), under `npm start` (dev forks its children with them) and in the bench.
 *
 * `--max-semi-space-size=32`: young-generation semi-spaces of up to 32 MiB. V8 sizes them from the
 * heap limit (16 MiB at most, less in a container with a small memory limit). Every request
 * allocates short-lived objects (SDK middleware, JSON, events): a larger young generation means
 * fewer scavenges and fewer of them promoted. Measured with bench/capacity.ts (split processes, a
 * fast model): the functions' CPU per request ~12 % lower against the DynamoDB emulator's in the
 * same runs, peak RSS no higher.
 */
export const FUNCTION_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];
