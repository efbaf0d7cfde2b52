/**
 * Tokenizers chosen by a model's config: byte-level (ids 0–255 are the bytes of UTF-8 text, special
 * tokens follow) for tiny models, and GPT-2's BPE (r50k_base, shipped by gpt-tokenizer).
 */
import * as r50k from "gpt-tokenizer/encoding/r50k_base";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./config.ts";

export interface Tokenizer {
  readonly kind: "bytes" | "gpt2";
  readonly vocabSize: number;
  /** Token that ends a document (GPT-2's <|endoftext|>). */
  readonly eosTokenId: number;
  encode(text: string): number[];
  decode(ids: Iterable<number>): string;
  /** A decoder that turns ids into text as they arrive, holding back incomplete UTF-8 sequences. */
  streamDecoder(): (id: number) => string;
}

/** Special tokens of the byte-level tokenizer, after the 256 byte ids. */
export const BYTE_EOS = 256;
export const BYTE_PAD = 257;
export const BYTE_VOCAB = 258;

export class ByteTokenizer implements Tokenizer {
  readonly kind = "bytes";
  readonly vocabSize: number;
  readonly eosTokenId = BYTE_EOS;

  /** `vocabSize` may exceed 258 (a model with spare ids); ids ≥ 256 decode to nothing. */
  constructor(vocabSize = BYTE_VOCAB) {
    if (vocabSize < BYTE_VOCAB) {
      throw new ModelError(
        "TOKENIZER_UNAVAILABLE",
        `a byte-level tokenizer needs vocab_size ≥ ${BYTE_VOCAB}`,
      );
    }
    this.vocabSize = vocabSize;
  }

  encode(text: string): number[] {
    return Array.from(new TextEncoder().encode(text));
  }

  decode(ids: Iterable<number>): string {
    const bytes: number[] = [];
    for (const id of ids) if (id >= 0 && id < 256) bytes.push(id);
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }

  streamDecoder(): (id: number) => string {
    const decoder = new TextDecoder();
    return (id) => (id >= 0 && id < 256 ? decoder.decode(Uint8Array.of(id), { stream: true }) : "");
  }
}

export class GPT2Tokenizer implements Tokenizer {
  readonly kind = "gpt2";
  readonly vocabSize = r50k.vocabularySize;
  readonly eosTokenId = 50256;

  /** Plain text: "<|endoftext|>" in the input is text, not the special token (as tiktoken's default). */
  encode(text: string): number[] {
    return r50k.encode(text, { disallowedSpecial: new Set() });
  }

  decode(ids: Iterable<number>): string {
    return r50k.decode(ids);
  }

  streamDecoder(): (id: number) => string {
    // BPE tokens are byte sequences too: decode the pending ids and emit once they form whole characters.
    let pending: number[] = [];
    return (id) => {
      pending.push(id);
      const text = r50k.decode(pending);
      if (text.endsWith("\uFFFD") && pending.length < 8) return "";
      pending = [];
      return text;
    };
  }
}

/** The tokenizer a model's config asks for; a model without one works on token ids only. */
export function tokenizerFor(config: ModelConfig): Tokenizer {
  if (config.tokenizer === "bytes") return new ByteTokenizer(config.vocabSize);
  if (config.tokenizer === "gpt2") return new GPT2Tokenizer();
  throw new ModelError(
    "TOKENIZER_UNAVAILABLE",
    `no tokenizer for this ${config.modelType} model (vocab ${config.vocabSize})`,
    {
      details: `use token ids, or set "tokenizer_class" in config.json (GPT2Tokenizer or DeepshardByteTokenizer)`,
    },
  );
}
