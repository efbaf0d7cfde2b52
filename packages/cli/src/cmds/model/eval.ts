import { resolve } from "node:path";
import { DeepshardError } from "@deepshard/protocol";
import type { WindowScore } from "@deepshard/tensor";
import { logLikelihoods, tokenizerFor } from "@deepshard/tensor";
import { printResult } from "../../util/output.ts";
import { createProgress } from "../../util/progress.ts";
import { checkVocab, parseTexts, parseTokenIds, readInputFile } from "./inputs.ts";
import type { BackendCliOptions } from "./load.ts";
import { openModel } from "./load.ts";

export interface EvalCliOptions extends BackendCliOptions {
  text?: string;
  tokenIds?: string;
  batchSize: number;
  json?: boolean;
}

export async function evalHandler(dir: string, options: EvalCliOptions): Promise<void> {
  if ((options.text === undefined) === (options.tokenIds === undefined)) {
    throw new DeepshardError("USAGE", "give exactly one of --text FILE or --token-ids FILE");
  }
  // Read and parse the input before loading the model, so a bad file fails fast.
  const file = (options.text ?? options.tokenIds)!;
  const content = await readInputFile(file);
  const texts = options.text !== undefined ? parseTexts(content, file) : undefined;
  const { model, backend } = await openModel(dir, options);
  try {
    let sequences: number[][];
    if (texts) {
      const tokenizer = tokenizerFor(model.config);
      sequences = texts.map((t) => tokenizer.encode(t));
    } else {
      sequences = parseTokenIds(content, file);
      checkVocab(sequences, model.config.vocabSize, file);
    }
    if (!sequences.some((s) => s.length >= 2)) {
      throw new DeepshardError("INPUT_EMPTY", `${file} has nothing to score`, {
        details: "every sequence needs at least 2 tokens (the first one has no prediction)",
      });
    }
    // Scored in groups so long inputs can report progress; the sums are the same as in one call.
    const group = options.batchSize;
    const progress = createProgress({
      unit: "sequence",
      total: sequences.length,
      silent: options.json || sequences.length <= group,
    });
    const scores: WindowScore[] = [];
    try {
      for (let i = 0; i < sequences.length; i += group) {
        scores.push(...logLikelihoods(model, sequences.slice(i, i + group), { batchSize: group }));
        progress.update(Math.min(sequences.length, i + group));
      }
    } finally {
      progress.stop();
    }
    const tokens = scores.reduce((n, s) => n + s.tokens, 0);
    const meanCrossEntropy = -scores.reduce((a, s) => a + s.logLikelihood, 0) / tokens;
    const result = {
      model: resolve(dir),
      backend: backend.name,
      meanCrossEntropy,
      perplexity: Math.exp(meanCrossEntropy),
      tokens,
      sequences: sequences.length,
    };
    printResult(options, result, () =>
      [
        `mean cross-entropy ${meanCrossEntropy.toFixed(4)} nats/token`,
        `perplexity ${result.perplexity.toFixed(2)}`,
        `tokens ${tokens} scored in ${sequences.length} sequence${sequences.length === 1 ? "" : "s"} (backend ${backend.name})`,
      ].join("\n"),
    );
  } finally {
    model.dispose();
  }
}
