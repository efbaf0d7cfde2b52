/**
 * What an informant submits, built from a path on this machine:
 *
 * - a file is submitted byte for byte, plain text or JSONL (it must be UTF-8 and not empty);
 * - a folder becomes ONE submission (one stake, one vote), a JSONL blob: the files under it, in
 *   sorted order of their relative paths, each contributing records. A `.jsonl` file gives its
 *   lines (each must be a JSON object) as they are; any other file gives one record per paragraph,
 *   `{"source":"<relative path>","text":"<paragraph>"}`. Validators score JSONL per record, so
 *   a folder is scored file part by file part, and its segment weights name those parts.
 *
 * Hidden files and folders (a leading dot) are skipped. Sizes are checked before anything is read,
 * so a folder far over the limit is refused without loading it.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { InformantError } from "./errors.ts";

export interface SubmissionBlob {
  bytes: Uint8Array;
  /** `text` (a plain file), `jsonl` (a JSONL file, or a folder). */
  format: "text" | "jsonl";
  /** The files it was built from, relative to the path (just the file's name for a file). */
  files: string[];
}

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Builds the blob for `path`; more than `maxBytes` (of files read, or of the result) is TOO_LARGE. */
export async function buildSubmission(path: string, maxBytes: number): Promise<SubmissionBlob> {
  const info = await stat(path).catch((cause: NodeJS.ErrnoException) => {
    throw cause.code === "ENOENT"
      ? new InformantError("NOT_FOUND", `no such file or folder: ${path}`)
      : new InformantError("UNREADABLE", `cannot read ${path}: ${cause.code ?? cause.message}`, { cause });
  });
  if (info.isFile()) {
    if (info.size > maxBytes) throw tooLarge(path, info.size, maxBytes);
    const bytes = new Uint8Array(await readFile(path));
    const text = decode(bytes, path);
    if (text.trim() === "") throw new InformantError("EMPTY", `${path} holds no text`);
    return { bytes, format: isJsonl(text) ? "jsonl" : "text", files: [path.split(sep).pop() ?? path] };
  }
  if (!info.isDirectory()) throw new InformantError("NOT_FOUND", `${path} is neither a file nor a folder`);

  const files = await listFiles(path);
  let total = 0;
  for (const f of files) {
    total += f.size;
    if (total > maxBytes) throw tooLarge(path, total, maxBytes, "its files add up to at least");
  }
  const lines: string[] = [];
  const used: string[] = [];
  for (const f of files) {
    const name = relative(path, f.path).split(sep).join("/");
    const text = decode(new Uint8Array(await readFile(f.path)), name);
    const before = lines.length;
    if (name.endsWith(".jsonl")) {
      text.split("\n").forEach((line, i) => {
        if (line.trim() === "") return;
        if (!isJsonObject(line)) {
          throw new InformantError("BAD_JSONL", `${name} line ${i + 1} is not a JSON object`);
        }
        lines.push(line.replace(/\r$/, ""));
      });
    } else {
      for (const paragraph of text.split(/\r?\n[ \t]*\r?\n/)) {
        const trimmed = paragraph.trim();
        if (trimmed !== "") lines.push(JSON.stringify({ source: name, text: trimmed }));
      }
    }
    if (lines.length > before) used.push(name);
  }
  if (lines.length === 0) throw new InformantError("EMPTY", `${path} holds no text`);
  const bytes = encoder.encode(`${lines.join("\n")}\n`);
  if (bytes.length > maxBytes) throw tooLarge(path, bytes.length, maxBytes, "as JSONL it is");
  return { bytes, format: "jsonl", files: used };
}

async function listFiles(dir: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  const walk = async (d: string) => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith(".")) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push({ path: p, size: (await stat(p)).size });
    }
  };
  await walk(dir);
  return out;
}

function decode(bytes: Uint8Array, name: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new InformantError("NOT_TEXT", `${name} is not UTF-8 text (informants submit plain text or JSONL)`);
  }
}

function isJsonObject(line: string): boolean {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** JSONL when every non-empty line is a JSON object (as validators split it). */
function isJsonl(text: string): boolean {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  return lines.length > 0 && lines.every(isJsonObject);
}

function tooLarge(path: string, size: number, max: number, what = "it is"): InformantError {
  return new InformantError(
    "TOO_LARGE",
    `${path} is too large to submit: ${what} ${size} bytes, the node accepts at most ${max}`,
    { meta: { size, max } },
  );
}
