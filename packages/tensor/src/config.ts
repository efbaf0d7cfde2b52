/**
 * Hugging Face `config.json` → the normalized configuration our GPT-2 and Llama models run from.
 * The raw JSON is kept so a saved model writes back every field it was loaded with.
 */
import { DeepshardError } from "@deepshard/protocol";

export type ModelErrorCode =
  | "CONFIG_INVALID"
  | "CONFIG_UNSUPPORTED"
  | "WEIGHTS_MISSING"
  | "WEIGHTS_SHAPE"
  | "INPUT_INVALID"
  | "CONTEXT_OVERFLOW"
  | "LAYER_RANGE"
  | "TOKENIZER_UNAVAILABLE";

export class ModelError extends DeepshardError<ModelErrorCode> {
  override name = "ModelError";
}

/** Which tokenizer a model uses: raw bytes (tiny models), GPT-2's BPE, or none (token ids only). */
export type TokenizerKind = "bytes" | "gpt2" | "none";

/** The `tokenizer_class` our byte-level models declare in config.json. */
export const BYTE_TOKENIZER_CLASS = "DeepshardByteTokenizer";

interface CommonConfig {
  vocabSize: number;
  /** Longest sequence the model accepts (learned positions for GPT-2, a training limit for Llama). */
  maxPositions: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | undefined;
  eosTokenIds: number[];
  tokenizer: TokenizerKind;
  /** The config.json it came from (written back unchanged on save). */
  raw: Record<string, unknown>;
}

export interface GPT2Config extends CommonConfig {
  modelType: "gpt2";
  innerSize: number;
  layerNormEpsilon: number;
  activation: "gelu_new" | "gelu" | "relu";
}

export interface LlamaConfig extends CommonConfig {
  modelType: "llama";
  intermediateSize: number;
  numKeyValueHeads: number;
  rmsNormEps: number;
  ropeTheta: number;
  attentionBias: boolean;
  mlpBias: boolean;
}

export type ModelConfig = GPT2Config | LlamaConfig;

/** Parses a config.json object; throws ModelError CONFIG_INVALID / CONFIG_UNSUPPORTED with the field named. */
export function parseConfig(json: unknown): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ModelError("CONFIG_INVALID", "config.json must be a JSON object");
  }
  const raw = json as Record<string, unknown>;
  const type = raw.model_type;
  if (type === "gpt2") return parseGPT2(raw);
  if (type === "llama") return parseLlama(raw);
  throw new ModelError("CONFIG_UNSUPPORTED", `unsupported model_type ${JSON.stringify(type)}`, {
    details: 'supported: "gpt2", "llama"',
  });
}

function parseGPT2(raw: Record<string, unknown>): GPT2Config {
  const hiddenSize = int(raw, "n_embd", 768);
  const numHeads = int(raw, "n_head", 12);
  if (hiddenSize % numHeads !== 0) {
    throw new ModelError("CONFIG_INVALID", "n_embd must be divisible by n_head", {
      meta: { hiddenSize, numHeads },
    });
  }
  const act = raw.activation_function ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu" && act !== "relu") {
    throw new ModelError("CONFIG_UNSUPPORTED", `unsupported activation_function ${JSON.stringify(act)}`);
  }
  for (const flag of ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"]) {
    if (raw[flag] === true) throw new ModelError("CONFIG_UNSUPPORTED", `${flag}=true is not supported`);
  }
  if (raw.scale_attn_weights === false) {
    throw new ModelError("CONFIG_UNSUPPORTED", "scale_attn_weights=false is not supported");
  }
  const innerRaw = raw.n_inner;
  const config: GPT2Config = {
    modelType: "gpt2",
    vocabSize: int(raw, "vocab_size", 50257),
    maxPositions: int(raw, "n_positions", 1024),
    hiddenSize,
    numLayers: int(raw, "n_layer", 12),
    numHeads,
    headDim: hiddenSize / numHeads,
    innerSize: innerRaw === null || innerRaw === undefined ? 4 * hiddenSize : int(raw, "n_inner", 0),
    layerNormEpsilon: num(raw, "layer_norm_epsilon", 1e-5),
    activation: act,
    // GPT2LMHeadModel always ties lm_head to wte.
    tieWordEmbeddings: true,
    bosTokenId: optInt(raw, "bos_token_id"),
    eosTokenIds: intList(raw, "eos_token_id"),
    tokenizer: "none",
    raw,
  };
  config.tokenizer = tokenizerKind(config);
  return config;
}

function parseLlama(raw: Record<string, unknown>): LlamaConfig {
  const hiddenSize = int(raw, "hidden_size", 4096);
  const numHeads = int(raw, "num_attention_heads", 32);
  const numKeyValueHeads = raw.num_key_value_heads == null ? numHeads : int(raw, "num_key_value_heads", 0);
  if (numHeads % numKeyValueHeads !== 0) {
    throw new ModelError("CONFIG_INVALID", "num_attention_heads must be a multiple of num_key_value_heads", {
      meta: { numHeads, numKeyValueHeads },
    });
  }
  const headDim = raw.head_dim == null ? hiddenSize / numHeads : int(raw, "head_dim", 0);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ModelError("CONFIG_INVALID", "head_dim must be an even integer", { meta: { headDim } });
  }
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu")
    throw new ModelError("CONFIG_UNSUPPORTED", `unsupported hidden_act ${JSON.stringify(act)}`);
  // transformers ≥ 5 moves rope settings into rope_parameters; older configs use rope_theta + rope_scaling.
  const ropeParams = (raw.rope_parameters ?? raw.rope_scaling ?? null) as Record<string, unknown> | null;
  const ropeType = ropeParams?.rope_type ?? ropeParams?.type ?? "default";
  if (ropeType !== "default") {
    throw new ModelError("CONFIG_UNSUPPORTED", `unsupported rope type ${JSON.stringify(ropeType)}`);
  }
  const theta = ropeParams?.rope_theta ?? raw.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0))
    throw new ModelError("CONFIG_INVALID", "rope_theta must be > 0");
  const config: LlamaConfig = {
    modelType: "llama",
    vocabSize: int(raw, "vocab_size", 32000),
    maxPositions: int(raw, "max_position_embeddings", 2048),
    hiddenSize,
    numLayers: int(raw, "num_hidden_layers", 32),
    numHeads,
    headDim,
    intermediateSize: int(raw, "intermediate_size", 11008),
    numKeyValueHeads,
    rmsNormEps: num(raw, "rms_norm_eps", 1e-6),
    ropeTheta: theta,
    attentionBias: raw.attention_bias === true,
    mlpBias: raw.mlp_bias === true,
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    bosTokenId: optInt(raw, "bos_token_id"),
    eosTokenIds: intList(raw, "eos_token_id"),
    tokenizer: "none",
    raw,
  };
  config.tokenizer = tokenizerKind(config);
  return config;
}

/** Byte-level when the config says so; GPT-2 BPE for GPT-2's 50257-token vocabulary; else ids only. */
function tokenizerKind(c: CommonConfig): TokenizerKind {
  if (c.raw.tokenizer_class === BYTE_TOKENIZER_CLASS) return "bytes";
  if (c.vocabSize === 50257 || c.raw.tokenizer_class === "GPT2Tokenizer") return "gpt2";
  return "none";
}

const MAX_DIM = 1 << 20;

function int(raw: Record<string, unknown>, key: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > MAX_DIM) {
    throw new ModelError("CONFIG_INVALID", `${key} must be a positive integer ≤ ${MAX_DIM}`, {
      meta: { [key]: v },
    });
  }
  return v;
}

function num(raw: Record<string, unknown>, key: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ModelError("CONFIG_INVALID", `${key} must be a positive number`, { meta: { [key]: v } });
  }
  return v;
}

function optInt(raw: Record<string, unknown>, key: string): number | undefined {
  const v = raw[key];
  if (v === null || v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new ModelError("CONFIG_INVALID", `${key} must be a token id`, { meta: { [key]: v } });
  }
  return v;
}

function intList(raw: Record<string, unknown>, key: string): number[] {
  const v = raw[key];
  if (Array.isArray(v)) {
    return v.map((x, i) => {
      if (typeof x !== "number" || !Number.isInteger(x) || x < 0) {
        throw new ModelError("CONFIG_INVALID", `${key}[${i}] must be a token id`);
      }
      return x;
    });
  }
  const one = optInt(raw, key);
  return one === undefined ? [] : [one];
}

/** Builds a GPT-2 config.json object (Hugging Face field names) for models we create ourselves. */
export function gpt2ConfigJson(opts: {
  vocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  bosTokenId?: number;
  eosTokenId?: number;
  tokenizerClass?: string;
}): Record<string, unknown> {
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    activation_function: "gelu_new",
    vocab_size: opts.vocabSize,
    n_positions: opts.nPositions,
    n_embd: opts.nEmbd,
    n_layer: opts.nLayer,
    n_head: opts.nHead,
    n_inner: null,
    layer_norm_epsilon: 1e-5,
    attn_pdrop: 0,
    embd_pdrop: 0,
    resid_pdrop: 0,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    bos_token_id: opts.bosTokenId ?? null,
    eos_token_id: opts.eosTokenId ?? null,
    ...(opts.tokenizerClass === undefined ? {} : { tokenizer_class: opts.tokenizerClass }),
    dtype: "float32",
  };
}
