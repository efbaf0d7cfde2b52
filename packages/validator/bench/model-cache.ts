/**
 * An opt-in cache of the benchmark's trained models (`DEEPSHARD_BENCH_MODEL_CACHE=1`), for calibrating
 * the judge on the full genesis model, where one round's ~80 training runs cost ~20 CPU-minutes: a
 * rerun with the same genesis, round and seeds loads each model instead of training it again. Each
 * entry keeps the CPU time its training took, so the compute rows still report what training cost.
 * The bench logs how many models came from the cache, and a published table says so. The key
 * does not cover the training code: delete the cache folder after changing it.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CausalLM,
  modelFromWeights,
  parseSafetensors,
  readWeights,
  writeSafetensors,
} from "@deepshard/tensor";

export class ModelCache {
  readonly #dir: string | undefined;
  hits = 0;

  /** `key` names everything the models depend on (genesis recipe, round recipe); no dir: disabled. */
  constructor(key: unknown, enabled: boolean) {
    const hash = createHash("sha256").update(JSON.stringify(key)).digest("hex").slice(0, 16);
    this.#dir = enabled ? join(tmpdir(), "deepshard-validator-cache", `models-${hash}`) : undefined;
  }

  /**
   * The model named `id`, from the cache or made by `make` (and cached), with the CPU time its
   * making took (measured now or when it was cached).
   */
  async get(
    id: string,
    base: CausalLM,
    make: () => Promise<CausalLM>,
    cpuMs: () => number,
  ): Promise<{ model: CausalLM; ms: number }> {
    const file =
      this.#dir === undefined ? undefined : join(this.#dir, `${id.replaceAll("/", "_")}.safetensors`);
    if (file !== undefined && existsSync(file)) {
      const st = parseSafetensors(new Uint8Array(await readFile(file)));
      const weights = new Map([...st.tensors.keys()].map((name) => [name, st.readF32(name)] as const));
      this.hits += 1;
      return { model: modelFromWeights(base.config, weights), ms: Number(st.metadata?.cpuMs ?? 0) };
    }
    const t0 = cpuMs();
    const model = await make();
    const ms = cpuMs() - t0;
    if (file !== undefined) {
      await mkdir(this.#dir!, { recursive: true });
      const tensors = [...readWeights(model)].map(([name, data]) => ({
        name,
        dtype: "F32" as const,
        shape: [data.length],
        data,
      }));
      await writeSafetensors(file, tensors, { cpuMs: String(ms) });
    }
    return { model, ms };
  }
}
