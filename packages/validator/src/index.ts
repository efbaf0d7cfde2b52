export * from "./curvature.ts";
export * from "./errors.ts";
export * from "./fingerprint.ts";
export * from "./judge.ts";
export * from "./replay.ts";
export * from "./scoring/index.ts";
export * from "./verdict.ts";
