import { type CausalLM, evaluate, type Tokenizer } from "@deepshard/tensor";

/**
 * The canonical model's surprise on a text: mean next-token cross-entropy in nats, for the novelty
 * scorer. Texts shorter than two tokens carry no evidence and count as unsurprising (0).
 */
export function modelSurprise(model: CausalLM, tokenizer: Tokenizer): (text: string) => number {
  return (text) => {
    const ids = tokenizer.encode(text);
    return ids.length < 2 ? 0 : evaluate(model, [ids]).meanCrossEntropy;
  };
}

/** The reference for `modelSurprise`: the model's mean cross-entropy over texts it was trained on. */
export function corpusSurprise(model: CausalLM, tokenizer: Tokenizer, texts: readonly string[]): number {
  const sequences = texts.map((t) => tokenizer.encode(t)).filter((ids) => ids.length >= 2);
  return sequences.length === 0 ? 0 : evaluate(model, sequences).meanCrossEntropy;
}
