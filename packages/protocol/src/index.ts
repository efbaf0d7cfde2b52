export * from "./bench.ts";
export * from "./errors.ts";
export * from "./hash.ts";
export * from "./keys.ts";
export * from "./merkle.ts";
export * from "./codec.ts";
export * from "./messages.ts";
export * from "./schema.ts";
