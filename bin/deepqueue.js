#!/usr/bin/env node
// The `deepqueue` command. In the container (and an installed package) it runs
// the compiled JavaScript under build/; in a checkout it runs the TypeScript
// sources through tsx.
import { existsSync } from "node:fs";
import module from "node:module";

// V8's compile cache (Node 22.1+): a process that loads modules this machine has loaded before
// skips parsing and compiling them — a function's cold start is mostly module loading.
// NODE_COMPILE_CACHE picks the folder (the image sets one it fills at build time).
module.enableCompileCache?.();

const built = new URL("../build/cli/index.js", import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../cli/index.ts", import.meta.url).href);
}
