export * from "./consensus/index.ts";
export * from "./genesis/index.ts";
export * from "./node/index.ts";
export * from "./state/index.ts";
export * from "./store/index.ts";
