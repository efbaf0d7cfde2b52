export * from "./genesis.ts";
