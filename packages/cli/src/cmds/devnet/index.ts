import { resolve } from "node:path";
import type { Command } from "commander";
import type { Devnet, DevnetEvent } from "../../node/devnet.ts";
import { eventLine, jsonReplacer } from "../../util/output.ts";
import type { LiveViewHandle } from "../../view/index.ts";

interface DevnetOptions {
  nodes: string;
  roles: string;
  dir: string;
  json?: boolean;
  fresh?: boolean;
  demo: boolean;
  byzantine?: boolean;
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
    .option("--json", "print one JSON line per event (the default when stdout is not a terminal)")
    .option(
      "--no-demo",
      "do not drive the demo workload (sample data, a training round, a license, a generated sample)",
    )
    .option("--byzantine", "make one trainer dishonest (it returns the base weights), so its slash shows")
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
  // A terminal gets the live view once the nodes run; --json and pipes (scripts) get JSON lines.
  const asJson = options.json === true || process.stdout.isTTY !== true;
  const live = !asJson;
  let view: LiveViewHandle | undefined;
  const say = (line: string, json: Record<string, unknown>) => {
    if (view) view.store.dispatch({ type: "log", line });
    else process.stdout.write(asJson ? eventLine(json) : `${line}\n`);
  };
  const started = Date.now();
  const manifest = await prepareDevnet({
    dir: resolve(options.dir),
    roles,
    fresh: options.fresh === true,
    onProgress: (message) => say(message, { type: "devnet.progress", message }),
  });
  let stopping = false;
  let devnet: Devnet | undefined;
  let viewClosed: Promise<void> = Promise.resolve();
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const closing = view;
    view = undefined;
    viewClosed = (closing?.stop() ?? Promise.resolve()).then(() => {
      say("stopping the devnet…", { type: "devnet.stopping" });
    });
    void devnet?.stop();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const { DevnetDemo, makeByzantine } = await import("../../node/devnet-demo.ts");
  if (options.byzantine) makeByzantine(manifest);
  devnet = await DevnetProcesses.start(manifest, { logLevel: "info" });
  if (stopping) {
    await devnet.stop();
    return 0;
  }
  const demo = options.demo ? DevnetDemo.start(devnet, { say, dir: resolve(options.dir) }) : undefined;
  if (live) {
    const { startLiveView } = await import("../../view/index.ts");
    const running = devnet;
    view = startLiveView({ title: "deepshard devnet", onQuit: stop });
    view.attach(running.nodes, (listener) => running.subscribe(({ node, event }) => listener(node, event)));
    say(
      `devnet running (${((Date.now() - started) / 1000).toFixed(1)} s to start); logs in ${resolve(options.dir)}/node-<i>/node.log`,
      {},
    );
  } else {
    printRunning(devnet, manifest.weightsId, started, say, demo);
  }
  await new Promise<void>((done) => {
    const check = setInterval(() => {
      if (stopping) {
        clearInterval(check);
        done();
      }
    }, 100);
  });
  await demo?.stop();
  await devnet.stop();
  await viewClosed;
  say("devnet stopped", { type: "devnet.stopped" });
  return 0;
}

/** The line output: each node, then one line per event worth seeing. */
function printRunning(
  devnet: Devnet,
  weightsId: string,
  started: number,
  say: (line: string, json: Record<string, unknown>) => void,
  demo: { narrates(e: DevnetEvent): boolean } | undefined,
): void {
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
    weightsId,
  });
  devnet.subscribe((e: DevnetEvent) => {
    // The demo tells its steps in words; the raw lines would repeat them.
    if (demo?.narrates(e)) return;
    const line = describe(e);
    if (line !== undefined) say(line, { node: e.node, ...e.event });
  });
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
