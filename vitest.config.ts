import { defineConfig } from "vitest/config";

const packages = ["protocol", "ledger", "tensor", "validator", "cli"];

export default defineConfig({
  test: {
    projects: [
      ...packages.map((name) => ({
        test: {
          name,
          root: `packages/${name}`,
          include: ["test/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      })),
      {
        test: {
          name: "repo",
          root: ".",
          include: ["test/**/*.test.ts", "examples/test/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
