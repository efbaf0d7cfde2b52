export * from "./safetensors.ts";
