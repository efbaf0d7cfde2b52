import { resolve } from "node:path";
import type { Command } from "commander";
import type { Devnet, DevnetEvent } from "../../node/devnet.ts";
import { jsonReplacer } from "../../util/output.ts";

interface DevnetOptions {
  nodes: string;
  roles: string;
  dir: string;
  json?: boolean;
  fresh?: boolean;
}

/** `deepshard devnet`: a local network of node processes, its events as they happen. */
export function registerDevnet(program: Command): void {
  program
    .command("devnet")
    .description("run a local network of node processes on loopback and show what happens (Ctrl-C stops it)")
    .option("--nodes <n>", "node processes", "4")
    .option(
      "--roles <list>",
      "role=count, comma-separated, spread over the nodes",
      "validator=4,storage=4,informant=2,trainer=3,inference=1",
    )
    .option("--dir <dir>", "where the devnet keeps its nodes and genesis model", ".deepshard-devnet")
    .option("--fresh", "wipe the devnet in --dir and create a new one")
    .option("--json", "print one JSON line per event")
    .addHelpText(
      "after",
      "\nExamples:\n  deepshard devnet\n  deepshard devnet --nodes 2 --roles validator=2,storage=2,trainer,informant,inference --fresh\n" +
        "\nEach node's log is <dir>/node-<i>/node.log; talk to a node with --api <url> (printed at start).",
    )
    .action(async (options: DevnetOptions) => {
      process.exitCode = await runDevnet(options);
    });
}

async function runDevnet(options: DevnetOptions): Promise<number> {
  const { Devnet: DevnetProcesses, prepareDevnet, spreadRoles } = await import("../../node/devnet.ts");
  const roles = spreadRoles(Number(options.nodes), options.roles);
  const say = (line: string, json: Record<string, unknown>) =>
    process.stdout.write(
      options.json ? `${JSON.stringify({ time: Date.now(), ...json }, jsonReplacer)}\n` : `${line}\n`,
    );
  const started = Date.now();
  const manifest = await prepareDevnet({
    dir: resolve(options.dir),
    roles,
    fresh: options.fresh === true,
    onProgress: (message) => say(message, { type: "devnet.progress", message }),
  });
  let stopping = false;
  let devnet: Devnet | undefined;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    say("stopping the devnet…", { type: "devnet.stopping" });
    void devnet?.stop();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  devnet = await DevnetProcesses.start(manifest, { logLevel: "info" });
  if (stopping) {
    await devnet.stop();
    return 0;
  }
  for (const n of devnet.nodes) {
    say(`${n.name}  ${n.roles.join(",").padEnd(40)} api ${n.api}  ${n.address}`, {
      type: "devnet.node",
      node: n.name,
      roles: n.roles,
      api: n.api,
      address: n.address,
      pid: n.pid,
    });
  }
  say(`devnet running (${((Date.now() - started) / 1000).toFixed(1)} s to start); Ctrl-C stops it`, {
    type: "devnet.running",
    weightsId: manifest.weightsId,
  });
  devnet.subscribe((e: DevnetEvent) => {
    const line = describe(e);
    if (line !== undefined) say(line, { node: e.node, ...e.event });
  });
  await new Promise<void>((done) => {
    const check = setInterval(() => {
      if (stopping) {
        clearInterval(check);
        done();
      }
    }, 100);
  });
  await devnet.stop();
  say("devnet stopped", { type: "devnet.stopped" });
  return 0;
}

/**
 * One line per event worth seeing: transactions and role events once, from the node that saw them
 * (transactions from the first node only), and a height line every ten blocks.
 */
function describe({ node, event }: DevnetEvent): string | undefined {
  const e = event as Record<string, unknown>;
  const fields = (skip: string[]) =>
    Object.entries(e)
      .filter(([k]) => !skip.includes(k))
      .map(([k, v]) => {
        const text = typeof v === "object" && v !== null ? JSON.stringify(v, jsonReplacer) : String(v);
        return `${k}=${text.length > 16 && typeof v === "string" ? `${text.slice(0, 12)}…` : text.slice(0, 120)}`;
      })
      .join(" ");
  if (event.type === "block") {
    return node === "node-0" && (event.height % 10 === 0 || event.txs > 0)
      ? `height ${event.height}  ${event.txs} txs  app ${event.appHash.slice(0, 12)}`
      : undefined;
  }
  if (event.type === "tx") {
    if (node !== "node-0") return undefined;
    return `  tx ${event.txType} from ${event.sender.slice(0, 12)}… ${event.code === 0 ? "ok" : `failed: ${event.log}`}`;
  }
  return `${node} ${event.type}  ${fields(["type"])}`;
}
