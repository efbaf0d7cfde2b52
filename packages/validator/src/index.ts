export * from "./scoring/index.ts";
