/**
 * The causal language model interface and its life cycle: create with seeded initialisation, load a
 * Hugging Face directory (config.json + safetensors), save one back, describe it, hash its weights.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import { ModelError, parseConfig } from "./config.ts";
import { GPT2Model, gpt2Aliases, gpt2Parameters } from "./gpt2.ts";
import type { KVCache } from "./layers.ts";
import { LlamaModel, llamaAliases, llamaParameters } from "./llama.ts";
import { Rng } from "./random.ts";
import { openCheckpoint, writeCheckpoint } from "./safetensors.ts";
import { tensorsForLayers } from "./shard.ts";
import type { LayerRange, ModelStage } from "./stage.ts";
import { checkLayerRange } from "./stage.ts";

export interface CausalLM {
  readonly config: ModelConfig;
  /** Trainable weights by Hugging Face name, in checkpoint order. */
  readonly params: Map<string, tf.Variable>;
  /**
   * Logits [B, T, vocab] for token ids [B, T] (int32). With a cache, the ids continue the cached
   * sequence and their keys/values are appended to it.
   */
  forward(ids: tf.Tensor2D, cache?: KVCache): tf.Tensor3D;
  newCache(): KVCache;
  /** Frees the weights. */
  dispose(): void;
}

export interface ParamSpec {
  name: string;
  shape: number[];
  init: "normal" | "zeros" | "ones";
  std?: number;
}

export function parameterSpecs(config: ModelConfig): ParamSpec[] {
  return config.modelType === "gpt2" ? gpt2Parameters(config) : llamaParameters(config);
}

function aliases(config: ModelConfig, name: string): string[] {
  return config.modelType === "gpt2" ? gpt2Aliases(name) : llamaAliases(name);
}

function build(
  config: ModelConfig,
  params: Map<string, tf.Variable>,
  range?: LayerRange,
): CausalLM & ModelStage {
  return config.modelType === "gpt2"
    ? new GPT2Model(config, params, range)
    : new LlamaModel(config, params, range);
}

function toConfig(config: ModelConfig | Record<string, unknown>): ModelConfig {
  return "modelType" in config && "raw" in config ? (config as ModelConfig) : parseConfig(config);
}

/** A freshly initialised model; the same config and seed give the same weights on every machine. */
export function createModel(
  config: ModelConfig | Record<string, unknown>,
  options: { seed?: number | string } = {},
): CausalLM {
  const c = toConfig(config);
  const rng = new Rng(options.seed ?? 0);
  const params = new Map<string, tf.Variable>();
  for (const spec of parameterSpecs(c)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (spec.init === "ones") data.fill(1);
    else if (spec.init === "normal")
      for (let i = 0; i < size; i++) data[i] = rng.normal() * (spec.std ?? 0.02);
    params.set(spec.name, toVariable(data, spec.shape));
  }
  return build(c, params);
}

function toVariable(data: Float32Array, shape: number[]): tf.Variable {
  const t = tf.tensor(data, shape, "float32");
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

/** Reads and parses `<dir>/config.json`. */
export async function loadConfig(dir: string): Promise<ModelConfig> {
  let text: string;
  try {
    text = await readFile(join(dir, "config.json"), "utf8");
  } catch (cause) {
    throw new ModelError("CONFIG_INVALID", `cannot read ${join(dir, "config.json")}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelError("CONFIG_INVALID", `${join(dir, "config.json")} is not valid JSON`, { cause });
  }
  return parseConfig(json);
}

/** Loads a Hugging Face model directory: config.json plus model.safetensors (or a sharded index). */
export async function loadModel(dir: string): Promise<CausalLM> {
  const config = await loadConfig(dir);
  return build(config, await loadParams(dir, config, parameterSpecs(config)));
}

/** The weights a stage running `range` holds, in checkpoint order. */
export function stageParameterSpecs(config: ModelConfig, range: LayerRange): ParamSpec[] {
  checkLayerRange(range, config.numLayers);
  const specs = parameterSpecs(config);
  const names = specs.map((s) => s.name);
  const needed = new Set(tensorsForLayers(names, range.firstLayer, range.lastLayer, config.numLayers));
  return specs.filter((s) => needed.has(s.name));
}

/**
 * Loads the stage of a model directory that runs blocks `range.firstLayer..range.lastLayer`: reads
 * only the tensors that range needs (those blocks, the embeddings for the first stage, the final
 * norm and head for the last), one positional read each, so the checkpoint may lack every other
 * tensor's bytes (a node that fetched only `chunksForLayers`' chunks) and, when sharded, every shard
 * file holding none of its tensors. Bad ranges: ModelError LAYER_RANGE.
 */
export async function loadModelStage(dir: string, range: LayerRange): Promise<ModelStage> {
  const config = await loadConfig(dir);
  const specs = stageParameterSpecs(config, range);
  return build(config, await loadParams(dir, config, specs), range);
}

async function loadParams(
  dir: string,
  config: ModelConfig,
  specs: ParamSpec[],
): Promise<Map<string, tf.Variable>> {
  const wanted = new Set(specs.flatMap((s) => aliases(config, s.name)));
  const checkpoint = await openCheckpoint(dir, { select: (name) => wanted.has(name) });
  const params = new Map<string, tf.Variable>();
  try {
    for (const spec of specs) {
      const found = aliases(config, spec.name).find((n) => checkpoint.tensors.has(n));
      if (found === undefined) {
        throw new ModelError("WEIGHTS_MISSING", `checkpoint has no tensor ${spec.name}`, {
          meta: { dir, tensor: spec.name },
        });
      }
      const shape = checkpoint.tensors.get(found)!.shape;
      if (shape.length !== spec.shape.length || shape.some((s, i) => s !== spec.shape[i])) {
        throw new ModelError(
          "WEIGHTS_SHAPE",
          `tensor ${found} has shape [${shape}], config needs [${spec.shape}]`,
          {
            meta: { tensor: found, shape, expected: spec.shape },
          },
        );
      }
      params.set(spec.name, toVariable(await checkpoint.readF32(found), spec.shape));
    }
  } catch (err) {
    for (const v of params.values()) v.dispose();
    throw err;
  } finally {
    await checkpoint.close();
  }
  return params;
}

/**
 * Writes config.json and model.safetensors (F32, Hugging Face names; a tied lm_head is omitted as
 * transformers does). One tensor at a time leaves the backend.
 */
export async function saveModel(
  model: CausalLM,
  dir: string,
  metadata: Record<string, string> = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "config.json"), `${JSON.stringify(model.config.raw, null, 2)}\n`);
  const entries = [...model.params].map(([name, v]) => ({
    name,
    dtype: "F32" as const,
    shape: v.shape,
    data: () => v.dataSync() as Float32Array,
  }));
  await writeCheckpoint(dir, entries, { metadata: { format: "pt", ...metadata } });
}

export interface ModelInfo {
  modelType: ModelConfig["modelType"];
  parameterCount: number;
  vocabSize: number;
  contextLength: number;
  layers: number;
  hiddenSize: number;
  heads: number;
  tokenizer: ModelConfig["tokenizer"];
  /** The config.json object. */
  config: Record<string, unknown>;
}

export function modelInfo(model: CausalLM | ModelConfig): ModelInfo {
  const c = "params" in model ? model.config : model;
  return {
    modelType: c.modelType,
    parameterCount: parameterSpecs(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0),
    vocabSize: c.vocabSize,
    contextLength: c.maxPositions,
    layers: c.numLayers,
    hiddenSize: c.hiddenSize,
    heads: c.numHeads,
    tokenizer: c.tokenizer,
    config: c.raw,
  };
}

/**
 * sha256 (hex) over every weight in checkpoint order: name, shape and little-endian F32 bytes.
 * Two bit-identical models have the same digest; used to compare deterministic training runs.
 */
export function weightsDigest(model: CausalLM): string {
  const hash = createHash("sha256");
  for (const [name, v] of model.params) {
    hash.update(`${name}:${v.shape.join(",")};`);
    const data = v.dataSync() as Float32Array;
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest("hex");
}
