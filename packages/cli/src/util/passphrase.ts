import { readFile } from "node:fs/promises";
import { DeepshardError } from "@deepshard/protocol";

export interface PassphraseOptions {
  passphraseFile?: string | undefined;
}

/**
 * The passphrase of a key file, from (in order) --passphrase-file, DEEPSHARD_PASSPHRASE, or a hidden
 * prompt on a terminal. Scripts use the first two; a missing passphrase is a clear error, never a hang.
 */
export async function resolvePassphrase(options: PassphraseOptions, confirm = false): Promise<string> {
  if (options.passphraseFile) {
    const text = await readFile(options.passphraseFile, "utf8").catch((cause: unknown) => {
      throw new DeepshardError("PASSPHRASE_UNREADABLE", `cannot read ${options.passphraseFile}`, { cause });
    });
    return text.replace(/\r?\n$/, "");
  }
  const env = process.env.DEEPSHARD_PASSPHRASE;
  if (env !== undefined) return env;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new DeepshardError("PASSPHRASE_REQUIRED", "a passphrase is needed to lock or unlock the key file", {
      details: "pass --passphrase-file <file> or set DEEPSHARD_PASSPHRASE",
    });
  }
  const first = await promptHidden("Passphrase: ");
  if (confirm && (await promptHidden("Repeat passphrase: ")) !== first) {
    throw new DeepshardError("PASSPHRASE_MISMATCH", "the two passphrases differ");
  }
  return first;
}

async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  let answer = "";
  try {
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return answer;
        if (ch === "\u0003") throw new DeepshardError("ABORTED", "aborted");
        if (ch === "\u007f") answer = answer.slice(0, -1);
        else answer += ch;
      }
    }
    return answer;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write("\n");
  }
}
