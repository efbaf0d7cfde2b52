import { describe, expect, it } from "vitest";
import { BYTE_TOKENIZER_CLASS, gpt2ConfigJson, parseConfig } from "../src/config.ts";
import { BYTE_EOS, ByteTokenizer, GPT2Tokenizer, tokenizerFor } from "../src/tokenizer.ts";

const text = "Deepshard: one model, many peers — ünïcödé and 🙂.";

function streamAll(decode: (id: number) => string, ids: number[]): string[] {
  return ids.map(decode);
}

describe("byte-level tokenizer", () => {
  const tok = new ByteTokenizer();

  it("encodes UTF-8 bytes and decodes them back; specials decode to nothing", () => {
    const ids = tok.encode(text);
    expect(ids).toEqual(Array.from(new TextEncoder().encode(text)));
    expect(tok.decode([...ids, BYTE_EOS])).toBe(text);
  });

  it("streams without splitting multi-byte characters", () => {
    const pieces = streamAll(tok.streamDecoder(), tok.encode("é🙂"));
    expect(pieces).toEqual(["", "é", "", "", "", "🙂"]);
  });

  it("needs room for its special tokens", () => {
    expect(() => new ByteTokenizer(100)).toThrow(expect.objectContaining({ code: "TOKENIZER_UNAVAILABLE" }));
  });
});

describe("GPT-2 BPE tokenizer", () => {
  const tok = new GPT2Tokenizer();

  it("matches GPT-2's ids", () => {
    expect(tok.encode("Hello world")).toEqual([15496, 995]);
    expect(tok.vocabSize).toBe(50257);
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it("treats <|endoftext|> in text as text", () => {
    expect(tok.encode("<|endoftext|>")).not.toContain(50256);
  });

  it("streams whole characters only", () => {
    const ids = tok.encode("a🙂b");
    const pieces = streamAll(tok.streamDecoder(), ids);
    expect(pieces.join("")).toBe("a🙂b");
    expect(pieces.some((p) => p.includes("\uFFFD"))).toBe(false);
  });
});

describe("tokenizer chosen by config", () => {
  it("vocab 50257 → GPT-2 BPE, tokenizer_class → bytes, otherwise ids only", () => {
    const base = { vocabSize: 50257, nPositions: 8, nEmbd: 8, nLayer: 1, nHead: 1 };
    expect(tokenizerFor(parseConfig(gpt2ConfigJson(base))).kind).toBe("gpt2");
    const bytes = parseConfig(
      gpt2ConfigJson({ ...base, vocabSize: 258, tokenizerClass: BYTE_TOKENIZER_CLASS }),
    );
    expect(tokenizerFor(bytes).kind).toBe("bytes");
    expect(() => tokenizerFor(parseConfig(gpt2ConfigJson({ ...base, vocabSize: 1000 })))).toThrow(
      expect.objectContaining({ code: "TOKENIZER_UNAVAILABLE" }),
    );
  });
});
