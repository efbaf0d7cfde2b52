import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAddress } from "@deepshard/protocol";
import { afterAll, describe, expect, it } from "vitest";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const dir = mkdtempSync(join(tmpdir(), "deepshard-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  const { DEEPSHARD_PASSPHRASE: _, ...base } = process.env;
  return spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...base, ...env } });
}

describe("deepshard keys", () => {
  const file = join(dir, "alice.key");

  it("creates a key file and shows its address, with and without unlocking", () => {
    const made = run(["keys", "new", file, "--json"], { DEEPSHARD_PASSPHRASE: "correct horse" });
    expect(made.status, made.stderr).toBe(0);
    const info = JSON.parse(made.stdout);
    expect(isAddress(info.address)).toBe(true);
    expect(info.peerId).toMatch(/^12D3KooW/);
    expect((readFileSync(file, "utf8").match(/correct horse/) ?? []).length).toBe(0);

    const shown = JSON.parse(run(["keys", "show", file, "--json"]).stdout);
    expect(shown.address).toBe(info.address);

    const pass = join(dir, "pass.txt");
    writeFileSync(pass, "correct horse\n");
    const unlocked = run(["keys", "show", file, "--unlock", "--passphrase-file", pass, "--json"]);
    expect(unlocked.status, unlocked.stderr).toBe(0);
    expect(JSON.parse(unlocked.stdout).peerId).toBe(info.peerId);
  });

  it("says clearly when the passphrase is wrong, missing, or the file exists, without a stack trace", () => {
    const wrong = run(["keys", "show", file, "--unlock"], { DEEPSHARD_PASSPHRASE: "nope" });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/^error: wrong passphrase[^\n]*\n$/);
    expect(wrong.stderr).not.toMatch(/\bat .*\.ts:\d+/);

    const missing = run(["keys", "new", join(dir, "bob.key")]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(
      /^error: a passphrase is needed[^\n]*\(pass --passphrase-file <file> or set DEEPSHARD_PASSPHRASE\)\n$/,
    );

    const exists = run(["keys", "new", file], { DEEPSHARD_PASSPHRASE: "x" });
    expect(exists.status).toBe(1);
    expect(exists.stderr).toMatch(/already exists/);
  });
});
