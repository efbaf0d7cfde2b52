import { resolve } from "node:path";
import { loadConfig, modelInfo, openCheckpoint } from "@deepshard/tensor";
import { chunkModel } from "../../node/weights-id.ts";
import { printResult } from "../../util/output.ts";
import { checkModelDir } from "./load.ts";

export interface InspectCliOptions {
  json?: boolean;
}

/**
 * Reads config.json and the safetensors headers (validated) and hashes config.json and the weight
 * files into the weights id, as the network does. No tensor is loaded and no backend starts, so this is quick even for large models.
 */
export async function inspectHandler(dir: string, options: InspectCliOptions): Promise<void> {
  await checkModelDir(dir);
  const config = await loadConfig(dir);
  const info = modelInfo(config);
  const checkpoint = await openCheckpoint(dir);
  const dtypes: Record<string, number> = {};
  let storedParameters = 0;
  try {
    for (const t of checkpoint.tensors.values()) {
      dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
      storedParameters += t.shape.reduce((a, b) => a * b, 1);
    }
  } finally {
    await checkpoint.close();
  }
  const { manifest } = await chunkModel(dir);
  const result = {
    model: resolve(dir),
    modelType: info.modelType,
    parameterCount: info.parameterCount,
    vocabSize: info.vocabSize,
    contextLength: info.contextLength,
    layers: info.layers,
    hiddenSize: info.hiddenSize,
    heads: info.heads,
    tokenizer: info.tokenizer,
    weightsId: manifest.weightsId,
    chunkSize: manifest.chunkSize,
    chunkCount: manifest.chunkCount,
    totalSize: manifest.totalSize,
    files: manifest.files.map((f) => ({ name: f.name, size: f.size })),
    checkpoint: {
      tensors: checkpoint.tensors.size,
      parameters: storedParameters,
      dtypes,
      metadata: checkpoint.metadata,
    },
    config: info.config,
  };
  printResult(options, result, () =>
    [
      `model       ${result.model}`,
      `type        ${info.modelType}: ${info.layers} layers, hidden ${info.hiddenSize}, ${info.heads} heads, context ${info.contextLength}, vocab ${info.vocabSize}`,
      `parameters  ${info.parameterCount.toLocaleString("en-US")} (${formatCount(info.parameterCount)})`,
      `tokenizer   ${info.tokenizer === "none" ? "none (token ids only)" : info.tokenizer}`,
      `weights id  ${manifest.weightsId}`,
      `files       ${manifest.files.map((f) => `${f.name} (${formatBytes(f.size)})`).join(", ")}; ${manifest.chunkCount} chunk${manifest.chunkCount === 1 ? "" : "s"} of ${formatBytes(manifest.chunkSize)}`,
      `tensors     ${checkpoint.tensors.size} (${Object.entries(dtypes)
        .map(([d, n]) => `${n} ${d}`)
        .join(", ")})`,
      `config      ${JSON.stringify(info.config, null, 2).replaceAll("\n", "\n            ")}`,
    ].join("\n"),
  );
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
