export * from "./external-judge.ts";
export * from "./minhash.ts";
export * from "./score.ts";
export * from "./scorers.ts";
export * from "./segments.ts";
export * from "./surprise.ts";
