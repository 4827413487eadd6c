import { defineConfig } from "vitest/config";

// Integration tests start real emulators (fauxqs, dynalite) and the model-server
// simulator on free ports; they need more than the default 5 s on a 2-core machine.
export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "dist/**", "build/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
