export * from "./bench.ts";
export * from "./errors.ts";
export * from "./keys.ts";
