export * from "./backend.ts";
export * from "./safetensors.ts";
export * from "./wasm-kernels.ts";
