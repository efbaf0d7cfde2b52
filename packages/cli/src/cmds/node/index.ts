import { readKeystore } from "@deepshard/protocol";
import type { Command } from "commander";
import { loadConfig } from "../../node/config.ts";
import type { Daemon } from "../../node/daemon.ts";
import { networkPaths, resolveChainId, resolveDataDir } from "../../node/datadir.ts";
import { createLogger, type Logger } from "../../node/logger.ts";
import { eventLine, printResult } from "../../util/output.ts";
import { resolvePassphrase } from "../../util/passphrase.ts";
import type { LiveViewHandle } from "../../view/index.ts";
import { type ApiOptions, addApiOptions, withClient } from "./common.ts";

interface StartOptions {
  dataDir?: string;
  chainId?: string;
  config?: string;
  roles?: string;
  listen?: string;
  bootstrap?: string;
  apiPort?: string;
  blockIntervalMs?: string;
  logLevel?: string;
  passphraseFile?: string;
  json?: boolean;
}

/** `deepshard node start|status`. */
export function registerNode(program: Command): void {
  const node = program.command("node").description("run a node of a network and ask it how it is doing");

  node
    .command("start")
    .description(
      "run the node daemon: ledger, consensus, libp2p, the HTTP API on 127.0.0.1 and the chosen roles",
    )
    .option("--data-dir <dir>", "data directory (default DEEPSHARD_DATA_DIR or ~/.deepshard)")
    .option("--chain-id <id>", "which network of the data directory (when it holds several)")
    .option("--config <file>", "config file (default <data-dir>/<chain-id>/config.json)")
    .option("--roles <list>", "comma-separated: validator,informant,trainer,storage,inference")
    .option("--listen <multiaddrs>", "libp2p listen addresses, comma-separated")
    .option("--bootstrap <multiaddrs>", "peers to dial at start (/…/p2p/<peer id>), comma-separated")
    .option("--api-port <port>", "HTTP API port on 127.0.0.1 (0: any free port)")
    .option("--block-interval-ms <ms>", "the pause after each block")
    .option("--log-level <level>", "debug, info, warn, error or silent")
    .option(
      "--passphrase-file <file>",
      "read the passphrase from a file (else DEEPSHARD_PASSPHRASE or a prompt)",
    )
    .option(
      "--json",
      "print JSON lines: one once the node runs (api, peer id, address, listen), then one per event " +
        "(the default when stdout is not a terminal)",
    )
    .addHelpText(
      "after",
      "\nEnvironment: DEEPSHARD_DATA_DIR, DEEPSHARD_CHAIN_ID, DEEPSHARD_ROLES, DEEPSHARD_LISTEN,\n" +
        "DEEPSHARD_BOOTSTRAP, DEEPSHARD_API_PORT, DEEPSHARD_BLOCK_INTERVAL_MS, DEEPSHARD_LOG_LEVEL,\n" +
        "DEEPSHARD_STOP_TIMEOUT_MS, DEEPSHARD_PASSPHRASE. Flags win over the environment, which wins\n" +
        "over the config file.\n\nExample:\n  deepshard node start --roles validator,storage --api-port 26680",
    )
    .action(async (options: StartOptions) => {
      const code = await runDaemon(options);
      // Whatever a library left scheduled, the daemon is done: exit with its verdict.
      process.exit(code);
    });

  addApiOptions(
    node.command("status").description("height, peers, roles and consensus of the running node"),
  ).action(async (options: ApiOptions) => {
    const status = await withClient(options, (client) => client.status());
    printResult(options, status, () =>
      [
        `chain ${status.chainId}  height ${status.height}  peers ${status.peers}`,
        `consensus height ${status.consensus.height} round ${status.consensus.round} ${status.consensus.step}`,
        `address ${status.address}`,
        `peer id ${status.peerId}`,
        `roles ${status.roles.join(", ") || "(none)"}`,
        `mempool ${status.mempool.txs} txs  validators ${status.validators}  price ${status.price}`,
      ].join("\n"),
    );
  });
}

/** Starts the daemon and waits for SIGINT/SIGTERM; returns the exit code. */
async function runDaemon(options: StartOptions): Promise<number> {
  const dataDir = resolveDataDir(options.dataDir);
  const chainId = await resolveChainId(dataDir, options.chainId);
  const paths = networkPaths(dataDir, chainId);
  const config = await loadConfig({
    chainId,
    file: options.config ?? paths.config,
    flags: {
      roles: options.roles,
      listen: options.listen,
      bootstrap: options.bootstrap,
      apiPort: options.apiPort,
      blockIntervalMs: options.blockIntervalMs,
      logLevel: options.logLevel,
    },
  });
  const { secretKey } = await readKeystore(paths.nodeKey, await resolvePassphrase(options));
  // A terminal gets the live view, the log in its panel; --json and pipes get JSON lines on stdout,
  // the log on stderr.
  const asJson = options.json === true || process.stdout.isTTY !== true;
  const live = !asJson;
  let view: LiveViewHandle | undefined;
  if (live) {
    const { startLiveView } = await import("../../view/index.ts");
    view = startLiveView({ title: `deepshard node ${chainId}`, onQuit: () => handler("SIGINT") });
  }
  const logView = view;
  const logger = logView
    ? createLogger(config.logLevel, (line) => logView.store.dispatch({ type: "log", line: line.trimEnd() }))
    : createLogger(config.logLevel);
  // Signals that arrive while the node is starting stop it as soon as it runs.
  let signalled: NodeJS.Signals | undefined;
  let onSignal = (signal: NodeJS.Signals) => {
    signalled = signal;
  };
  const handler = (signal: NodeJS.Signals) => onSignal(signal);
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  // A node started by a parent with an IPC channel (the devnet) stops when the parent goes away,
  // even when the parent was killed too hard to signal it: no orphan nodes.
  if (process.channel) {
    process.channel.unref();
    process.once("disconnect", () => handler("SIGTERM"));
  }
  // Loaded here, not at the top, so that other commands start without loading libp2p.
  const { Daemon, explainStartError } = await import("../../node/daemon.ts");
  const { roleFactories } = await import("../../node/roles.ts");
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({ paths, config, secretKey, logger, roles: roleFactories });
  } catch (err) {
    await view?.stop();
    throw explainStartError(err);
  }
  const running = daemon;
  view?.attach(
    [{ name: "node", api: running.apiUrl, roles: config.roles, address: running.account.address }],
    (listener) => running.events.subscribe(({ event }) => listener("node", event)),
  );
  if (asJson) printJsonLines(running, chainId, logger);
  return new Promise<number>((resolve) => {
    let stopping = false;
    onSignal = (signal) => {
      if (stopping) {
        logger.warn("second signal: exiting now", { signal });
        void view?.stop();
        resolve(1);
        return;
      }
      stopping = true;
      logger.info("signal received", { signal });
      Promise.all([daemon.stop(), view?.stop()]).then(([clean]) => resolve(clean ? 0 : 1));
    };
    if (signalled) onSignal(signalled);
  });
}

/**
 * The startup line first (a parent such as the devnet reads it for the API url, peer id and listen
 * addresses), then one line per event of the node, those of its start included. Whoever reads stdout
 * must keep reading: a pipe nobody drains would block the node on its next write.
 */
function printJsonLines(daemon: Daemon, chainId: string, logger: Logger): void {
  process.stdout.write(
    `${JSON.stringify({
      chainId,
      api: daemon.apiUrl,
      address: daemon.account.address,
      peerId: daemon.ledger.host.peerId.toString(),
      listen: daemon.ledger.host.addresses().map(String),
      height: daemon.height,
    })}\n`,
  );
  for (const { id, event } of daemon.events.since(0)) process.stdout.write(eventLine({ id, ...event }));
  const unsubscribe = daemon.events.subscribe(({ id, event }) =>
    process.stdout.write(eventLine({ id, ...event })),
  );
  // The reader went away (EPIPE): the node is still useful, only its event lines stop.
  let closed = false;
  process.stdout.on("error", (error) => {
    if (closed) return;
    closed = true;
    unsubscribe();
    logger.warn("stdout is closed: no more event lines", { error: error.message });
  });
}
