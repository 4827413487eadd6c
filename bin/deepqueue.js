#!/usr/bin/env node
// The `deepqueue` command. In the container (and an installed package) it runs
// the compiled JavaScript under build/; in a checkout it runs the TypeScript
// sources through tsx.
import { existsSync } from "node:fs";

const built = new URL("../build/cli/index.js", import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../cli/index.ts", import.meta.url).href);
}
