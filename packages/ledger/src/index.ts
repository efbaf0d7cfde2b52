export * from "./consensus/index.ts";
