/**
 * How the network names a model folder: its weights id is the Merkle root of config.json followed
 * by the weights files (the safetensors index and shards, or model.safetensors), cut into
 * WEIGHTS_CHUNK_SIZE-byte chunks. Every command and role that computes a weights id calls
 * `chunkModel`, so a folder has one id everywhere. The tensor package loads only when a model is
 * chunked, so command help can name the chunk size without loading tfjs.
 */
import type { ChunkedWeights } from "@deepshard/tensor";

/**
 * The chunk size a network's genesis weights are cut into. Trainers and validators then chunk
 * every later model as its base was, so this one size runs through the whole chain; small enough
 * that holders spread a small model over many chunks, and a chunk is one quick request.
 */
export const WEIGHTS_CHUNK_SIZE = 64 * 1024;

/** The files a model's weights id covers: its config (so a fetched folder loads) and its weights. */
async function modelChunkFiles(dir: string): Promise<string[]> {
  const { modelFiles } = await import("@deepshard/tensor");
  return ["config.json", ...(await modelFiles(dir))];
}

/**
 * Chunks a model folder as the network does; its `weightsId` is what a genesis file or a trainer
 * names. `chunkSize` and `files` are for chunking a model as its base was (or for tests).
 */
export async function chunkModel(
  dir: string,
  options: { chunkSize?: number | undefined; files?: string[] | undefined } = {},
): Promise<ChunkedWeights> {
  const { ChunkedWeights } = await import("@deepshard/tensor");
  return ChunkedWeights.open(dir, {
    chunkSize: options.chunkSize ?? WEIGHTS_CHUNK_SIZE,
    files: options.files ?? (await modelChunkFiles(dir)),
  });
}
