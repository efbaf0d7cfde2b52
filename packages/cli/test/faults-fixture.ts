/**
 * What the fault tests need beyond the devnet library: restarting one node of a running devnet
 * from its data directory (after the test killed it), a rogue libp2p host, and polling.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { libp2pPrivateKey } from "@deepshard/protocol";
import { createHost, type Host } from "@deepshard/protocol/host";
import { DEVNET_PASSPHRASE, type DevnetNode } from "../src/node/devnet.ts";

const BIN = join(import.meta.dirname, "..", "bin", "deepshard.js");

export interface Restarted {
  child: ChildProcess;
  api: string;
  peerId: string;
}

/** Starts `node start` again on the node's data directory, bootstrapped to `peers`. */
export async function restartNode(
  node: DevnetNode,
  peers: DevnetNode[],
  env: Record<string, string>,
): Promise<Restarted> {
  const bootstrap = peers.map((p) => `${p.listen[0]!.replace(/\/p2p\/.*$/, "")}/p2p/${p.peerId}`);
  const log = await open(join(node.dataDir, "node.log"), "a");
  const child = spawn(
    process.execPath,
    [
      BIN,
      "node",
      "start",
      "--data-dir",
      node.dataDir,
      "--json",
      "--log-level",
      "warn",
      "--bootstrap",
      bootstrap.join(","),
    ],
    {
      stdio: ["ignore", "pipe", log.fd, "ipc"],
      env: {
        ...process.env,
        DEEPSHARD_PASSPHRASE: DEVNET_PASSPHRASE,
        DEEPSHARD_WEIGHTS_ANNOUNCE_MS: "1000",
        ...env,
        ...node.env,
      },
    },
  );
  await log.close();
  const line = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${node.name} did not restart in time`)), 60_000);
    child.once("exit", (code) => fail(new Error(`${node.name} exited with ${code} while restarting`)));
    createInterface({ input: child.stdout! }).once("line", (l) => {
      clearTimeout(timer);
      ok(l);
    });
  });
  child.removeAllListeners("exit");
  const started = JSON.parse(line) as { api: string; peerId: string };
  return { child, api: started.api, peerId: started.peerId };
}

/** Ends a restarted node (SIGTERM, then SIGKILL after `ms`). */
export function stopRestarted(r: Restarted, ms = 10_000): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => r.child.kill("SIGKILL"), ms);
    r.child.once("exit", () => {
      clearTimeout(timer);
      done();
    });
    r.child.kill("SIGTERM");
  });
}

/** A libp2p host outside the network's rules, dialled to `nodes`; its peer key is `secretKey` when given. */
export async function rogueHost(nodes: DevnetNode[], secretKey?: Uint8Array): Promise<Host> {
  const host = await createHost(secretKey ? { privateKey: libp2pPrivateKey(secretKey) } : {});
  for (const n of nodes) await host.dial(`${n.listen[0]!.replace(/\/p2p\/.*$/, "")}/p2p/${n.peerId}`);
  return host;
}

export { alive } from "./node-fixture.ts";

/** Polls `check` until it gives a value; fails after `timeoutMs` naming `what`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
