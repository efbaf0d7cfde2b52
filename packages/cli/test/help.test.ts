import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");

describe("deepshard --help", () => {
  it("prints usage and the subcommands that exist", () => {
    const out = execFileSync(process.execPath, [bin, "--help"], { encoding: "utf8" });
    expect(out).toMatch(/Usage: deepshard/);
    expect(out).toMatch(/^\s+keys\s/m);
  });

  it("rejects an unknown command with a clear error and exit code 1", () => {
    let status = 0;
    let stderr = "";
    try {
      execFileSync(process.execPath, [bin, "no-such-command"], { encoding: "utf8", stdio: "pipe" });
    } catch (err) {
      const e = err as { status: number; stderr: string };
      status = e.status;
      stderr = e.stderr;
    }
    expect(status).toBe(1);
    expect(stderr).toMatch(/unknown command 'no-such-command'/);
  });
});
