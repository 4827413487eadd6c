import { defineConfig } from "vitest/config";

const exclude = ["node_modules/**", "dist/**", "build/**"];

// Two projects: `unit` (files named *.unit.test.ts: fake deps, no emulators, seconds in all) and
// `integration` (every other *.test.ts: real emulators — fauxqs, dynalite — and the model-server
// simulator on free ports; they need more than the default 5 s on a 2-core machine).
// `npm test` runs both; `npx vitest run --project unit` runs the fast ones alone.
export default defineConfig({
  test: {
    pool: "forks",
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["**/*.unit.test.ts"], exclude, testTimeout: 10_000 },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["**/*.test.ts"],
          exclude: [...exclude, "**/*.unit.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
