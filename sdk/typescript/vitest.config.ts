import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The 2-core CI machine is shared: one worker keeps the suite's footprint small.
    pool: "threads",
    maxWorkers: 1,
    testTimeout: 10_000,
  },
});
