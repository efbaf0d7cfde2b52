export * from "./bench.ts";
export * from "./errors.ts";
