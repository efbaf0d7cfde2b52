import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { DeepshardError } from "@deepshard/protocol";
import type { GenesisOptions } from "@deepshard/tensor";
import { GENESIS_DEFAULTS, INDEX_FILE, SINGLE_FILE, writeGenesis } from "@deepshard/tensor";
import { chunkModel } from "../../node/weights-id.ts";
import { printResult } from "../../util/output.ts";
import { createProgress } from "../../util/progress.ts";
import type { BackendCliOptions } from "./load.ts";
import { startBackend } from "./load.ts";

export interface GenesisCliOptions extends BackendCliOptions {
  steps?: number;
  seed?: string;
  batchSize?: number;
  context?: number;
  embd?: number;
  layers?: number;
  heads?: number;
  lr?: number;
  progressInterval: number;
  force?: boolean;
  json?: boolean;
}

export async function genesisHandler(dir: string, options: GenesisCliOptions): Promise<void> {
  if (!options.force) {
    for (const name of ["config.json", SINGLE_FILE, INDEX_FILE]) {
      if (
        await stat(join(dir, name)).then(
          () => true,
          () => false,
        )
      ) {
        throw new DeepshardError("MODEL_EXISTS", `${join(dir, name)} already exists`, {
          details: "choose another directory, or pass --force to overwrite",
        });
      }
    }
  }
  const recipe: Omit<GenesisOptions, "onProgress"> = {
    ...(options.steps === undefined ? {} : { steps: options.steps }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    ...(options.context === undefined ? {} : { context: options.context }),
    ...(options.embd === undefined ? {} : { nEmbd: options.embd }),
    ...(options.layers === undefined ? {} : { nLayer: options.layers }),
    ...(options.heads === undefined ? {} : { nHead: options.heads }),
    ...(options.lr === undefined ? {} : { lr: options.lr }),
  };
  const backend = await startBackend(options);
  if (!options.json) {
    process.stderr.write(
      `training the genesis model on ${backend.name}${backend.deterministic ? " (deterministic)" : ""}\n`,
    );
  }
  const progress = createProgress({
    unit: "step",
    total: recipe.steps ?? GENESIS_DEFAULTS.steps,
    silent: options.json,
    intervalMs: options.progressInterval,
  });
  let info: Awaited<ReturnType<typeof writeGenesis>>;
  try {
    info = await writeGenesis(dir, {
      ...recipe,
      onProgress: (p) => {
        const rate = p.elapsedMs > 0 ? (p.tokens / p.elapsedMs) * 1000 : 0;
        progress.update(p.step, `loss ${p.loss.toFixed(4)}, ${rate.toFixed(0)} tok/s`);
      },
    });
  } finally {
    progress.stop();
  }
  const { weightsId } = await chunkModel(dir);
  const result = {
    model: resolve(dir),
    backend: backend.name,
    deterministic: backend.deterministic,
    weightsId,
    ...info,
  };
  printResult(options, result, () =>
    [
      `wrote ${result.model}`,
      `parameters     ${info.parameterCount.toLocaleString("en-US")}`,
      `final loss     ${info.finalLoss.toFixed(4)} nats/byte (held-out ${info.heldOutLoss.toFixed(4)})`,
      `trained on     ${info.tokens.toLocaleString("en-US")} tokens in ${(info.elapsedMs / 1000).toFixed(1)} s`,
      `weights id     ${weightsId}`,
      `weights digest ${info.digest}`,
    ].join("\n"),
  );
}
