/**
 * A submission cut into segments that are scored apart: a JSONL blob per record (its "text" field,
 * else the whole line), plain text per paragraph. Offsets are UTF-8 byte offsets into the blob, as a
 * `data.vote`'s segment weights name them.
 */
export interface Segment {
  /** Byte offset of the segment in the blob. */
  offset: number;
  /** Byte length of the segment in the blob. */
  length: number;
  /** The text that is scored. */
  text: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Splits a blob; JSONL when every non-empty line is a JSON object, else paragraphs. */
export function splitSegments(blob: Uint8Array): Segment[] {
  const text = decoder.decode(blob);
  const lines = splitWithOffsets(text, /\n/g);
  const nonEmpty = lines.filter((l) => l.text.trim() !== "");
  const records = nonEmpty.map((l) => jsonRecordText(l.text));
  if (nonEmpty.length > 0 && records.every((r) => r !== undefined)) {
    return nonEmpty.map((l, i) => ({ offset: l.offset, length: l.length, text: records[i]! }));
  }
  return splitWithOffsets(text, /\n[ \t]*\n/g)
    .filter((p) => p.text.trim() !== "")
    .map((p) => ({ offset: p.offset, length: p.length, text: p.text.trim() }));
}

function jsonRecordText(line: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const text = (value as Record<string, unknown>).text;
  return typeof text === "string" ? text : line;
}

/** Pieces of `text` between matches of `separator`, with byte offsets and lengths. */
function splitWithOffsets(
  text: string,
  separator: RegExp,
): Array<{ offset: number; length: number; text: string }> {
  const out: Array<{ offset: number; length: number; text: string }> = [];
  let start = 0;
  let byteOffset = 0;
  const push = (end: number) => {
    const piece = text.slice(start, end);
    const length = encoder.encode(piece).length;
    out.push({ offset: byteOffset, length, text: piece });
    byteOffset += length;
  };
  for (const m of text.matchAll(separator)) {
    push(m.index);
    byteOffset += encoder.encode(m[0]).length;
    start = m.index + m[0].length;
  }
  push(text.length);
  return out.filter((p) => p.length > 0);
}

/** Sentences of a text (for corroboration): split after . ! ? and line breaks. */
export function sentences(text: string): string[] {
  return text
    .split(/(?<=[.!?])\s+|\n+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
