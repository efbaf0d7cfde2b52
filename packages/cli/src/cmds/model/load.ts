import { stat } from "node:fs/promises";
import { DeepshardError } from "@deepshard/protocol";
import type { BackendReport, CausalLM } from "@deepshard/tensor";
import { BACKENDS, BackendError, initBackend, isBackendPreference, loadModel } from "@deepshard/tensor";

/** Options shared by the commands that run a model. */
export interface BackendCliOptions {
  /** tfjs backend; else DEEPSHARD_BACKEND, else the best present. */
  backend?: string | undefined;
}

/** A clear error for a model directory that is missing or not a directory, before tfjs starts. */
export async function checkModelDir(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) {
    throw new DeepshardError("MODEL_DIR_MISSING", `model directory ${dir} does not exist`, { meta: { dir } });
  }
  if (!info.isDirectory()) {
    throw new DeepshardError("MODEL_DIR_MISSING", `${dir} is not a directory`, {
      details: "pass the directory that holds config.json and model.safetensors",
      meta: { dir },
    });
  }
}

export async function startBackend(options: BackendCliOptions): Promise<BackendReport> {
  const { backend } = options;
  if (backend !== undefined && !isBackendPreference(backend)) {
    throw new BackendError("UNKNOWN_BACKEND", `unknown backend "${backend}"`, {
      details: `choose one of auto, ${BACKENDS.join(", ")}`,
    });
  }
  return initBackend(backend === undefined ? {} : { backend });
}

/** Checks the directory, starts the backend, loads config.json and the safetensors weights. */
export async function openModel(
  dir: string,
  options: BackendCliOptions,
): Promise<{ model: CausalLM; backend: BackendReport }> {
  await checkModelDir(dir);
  const backend = await startBackend(options);
  return { model: await loadModel(dir), backend };
}
