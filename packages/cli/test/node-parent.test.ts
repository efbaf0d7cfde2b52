import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeNetwork, PASSPHRASE } from "./node-fixture.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const root = await mkdtemp(join(tmpdir(), "ds-node-parent-"));
afterAll(() => rm(root, { recursive: true, force: true }));

describe("a node started with an IPC channel (as the devnet starts them)", () => {
  it("stops cleanly when its parent goes away", async () => {
    const net = await makeNetwork(join(root, "data"));
    const { DEEPSHARD_PASSPHRASE: _p, ...env } = process.env;
    const child = spawn(process.execPath, [bin, "node", "start", "--data-dir", net.dataDir, "--json"], {
      env: { ...env, DEEPSHARD_PASSPHRASE: PASSPHRASE },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once("data", () => resolve());
        child.once("exit", (code) => reject(new Error(`node exited early with ${code}`)));
      });
      // What the parent's death does to the channel, without killing the test runner.
      child.disconnect();
      const code = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r("still running"), 15_000)),
      ]);
      expect(code).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
