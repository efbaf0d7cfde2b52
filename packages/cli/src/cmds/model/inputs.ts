import { createReadStream } from "node:fs";
import { DeepshardError } from "@deepshard/protocol";

/** Inputs are read whole: refuse sizes that would exhaust memory instead of trying. */
export const MAX_INPUT_BYTES = 256 * 1024 * 1024;

/** Reads a whole input file, or stdin for "-"; pipes work too. Stops at MAX_INPUT_BYTES. */
export async function readInputFile(file: string): Promise<string> {
  const stream = file === "-" ? process.stdin : createReadStream(file);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_INPUT_BYTES) {
        throw new DeepshardError("INPUT_TOO_LARGE", `${file} is larger than ${MAX_INPUT_BYTES >> 20} MiB`, {
          details: "split it into several files",
        });
      }
      chunks.push(chunk);
    }
  } catch (cause) {
    if (cause instanceof DeepshardError) throw cause;
    throw new DeepshardError("INPUT_UNREADABLE", `cannot read ${file}`, { cause });
  } finally {
    if (stream !== process.stdin) stream.destroy();
  }
  return Buffer.concat(chunks).toString("utf8");
}

function invalid(file: string, where: string, problem: string): DeepshardError {
  return new DeepshardError("INPUT_INVALID", `${file}${where}: ${problem}`);
}

/**
 * Token id sequences: a JSON array of arrays of integers (a flat array is one sequence), or one
 * sequence per line as integers separated by spaces or commas (blank lines are skipped).
 */
export function parseTokenIds(text: string, file: string): number[][] {
  const trimmed = text.trim();
  if (trimmed === "") throw new DeepshardError("INPUT_EMPTY", `${file} is empty`);
  if (trimmed.startsWith("[")) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (cause) {
      throw new DeepshardError("INPUT_INVALID", `${file} is not valid JSON`, { cause });
    }
    const rows = (json as unknown[]).every((x) => typeof x === "number") ? [json] : (json as unknown[]);
    return rows.map((row, i) => {
      if (!Array.isArray(row)) throw invalid(file, ` sequence ${i}`, "not an array of token ids");
      return row.map((id, j) => {
        if (!isTokenId(id))
          throw invalid(file, ` sequence ${i}`, `${JSON.stringify(id)} at position ${j} is not a token id`);
        return id;
      });
    });
  }
  const rows: number[][] = [];
  for (const [n, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === "") continue;
    rows.push(
      line
        .trim()
        .split(/[\s,]+/)
        .map((word) => {
          const id = /^\d+$/.test(word) ? Number(word) : Number.NaN;
          if (!isTokenId(id)) throw invalid(file, ` line ${n + 1}`, `"${word}" is not a token id`);
          return id;
        }),
    );
  }
  return rows;
}

function isTokenId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Documents of a text file: JSONL with a string "text" field per line (recognised by its first
 * non-blank line, and then required of every line), else the whole file as one document.
 */
export function parseTexts(text: string, file: string): string[] {
  if (text.trim() === "") throw new DeepshardError("INPUT_EMPTY", `${file} is empty`);
  const lines = text.split(/\r?\n/);
  const first = lines.find((l) => l.trim() !== "")!;
  if (jsonText(first) === undefined) return [text];
  const docs: string[] = [];
  for (const [n, line] of lines.entries()) {
    if (line.trim() === "") continue;
    const doc = jsonText(line);
    if (doc === undefined)
      throw invalid(file, ` line ${n + 1}`, 'expected a JSON object with a string "text" field');
    docs.push(doc);
  }
  return docs;
}

function jsonText(line: string): string | undefined {
  if (!line.trimStart().startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line) as { text?: unknown };
    return typeof value.text === "string" ? value.text : undefined;
  } catch {
    return undefined;
  }
}

/** Every id below the model's vocabulary size; the error names the first that is not. */
export function checkVocab(sequences: readonly number[][], vocabSize: number, file: string): void {
  for (const [i, seq] of sequences.entries()) {
    const j = seq.findIndex((id) => id >= vocabSize);
    if (j >= 0) {
      throw new DeepshardError(
        "TOKEN_OUT_OF_RANGE",
        `${file} sequence ${i}: token id ${seq[j]} at position ${j} is outside the vocabulary`,
        {
          details: `the model's vocabulary has ids 0..${vocabSize - 1}`,
          meta: { sequence: i, position: j, id: seq[j], vocabSize },
        },
      );
    }
  }
}
