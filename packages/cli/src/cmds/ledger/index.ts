import { DeepshardError } from "@deepshard/protocol";
import type { Command } from "commander";
import type { SendResult } from "../../node/client.ts";
import { parseAmount } from "../../node/tx.ts";
import { printResult } from "../../util/output.ts";
import {
  type ApiOptions,
  addApiOptions,
  addKeyOptions,
  type KeyOptions,
  keyAddress,
  signingKey,
  withClient,
} from "../node/common.ts";

export interface SendFlags extends KeyOptions {
  fee?: string;
  wait?: boolean;
  timeout?: string;
}

export function addSendOptions(cmd: Command): Command {
  return addKeyOptions(cmd)
    .option("--fee <amount>", "fee to pay (default: the chain's minimum)")
    .option("--wait", "wait until the transaction is in a block and report its outcome")
    .option("--timeout <seconds>", "how long --wait waits", "60");
}

export function sendOptions(flags: SendFlags) {
  const seconds = Number(flags.timeout ?? "60");
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new DeepshardError("BAD_FLAG", "--timeout must be a positive number of seconds", {
      details: `got "${flags.timeout}"`,
    });
  }
  return {
    fee: flags.fee === undefined ? undefined : parseAmount(flags.fee, "--fee"),
    wait: flags.wait ?? false,
    timeoutMs: seconds * 1000,
  };
}

export function describeSent(what: string, result: SendResult): string {
  return result.height === undefined
    ? `${what}: submitted ${result.hash}`
    : `${what}: included in block ${result.height} (${result.hash})`;
}

/** `deepshard ledger balance|transfer|block|tx|supply`, through the node's API. */
export function registerLedger(program: Command): void {
  const ledger = program
    .command("ledger")
    .description("accounts, transfers, blocks and the supply, from a node");

  addKeyOptions(
    ledger
      .command("balance")
      .description("balance, nonce and stake of an account")
      .argument("[address]", "a ds1… address (default: the signing key's)"),
  ).action(async (address: string | undefined, options: KeyOptions) => {
    const who = address ?? (await keyAddress(options));
    const info = await withClient(options, (client) => client.account(who));
    printResult(options, info, () =>
      [
        `address   ${info.address}`,
        `balance   ${info.balance}`,
        `bonded    ${info.bonded}`,
        `unbonding ${info.unbonding}`,
        `nonce     ${info.nonce}`,
      ].join("\n"),
    );
  });

  addSendOptions(
    ledger
      .command("transfer")
      .description("send tokens to an account")
      .argument("<to>", "the recipient's ds1… address")
      .argument("<amount>", "tokens, in the smallest unit"),
  ).action(async (to: string, amount: string, options: SendFlags) => {
    const value = parseAmount(amount);
    const opts = sendOptions(options);
    const key = await signingKey(options);
    const result = await withClient(options, (client) => client.transfer(key, to, value, opts));
    printResult(options, result, () => describeSent(`transfer of ${value} to ${to}`, result));
  });

  addApiOptions(
    ledger
      .command("block")
      .description("a committed block and its transactions")
      .argument("<height>", "a height, or `latest`"),
  ).action(async (height: string, options: ApiOptions) => {
    if (height !== "latest" && !/^[1-9][0-9]{0,14}$/.test(height)) {
      throw new DeepshardError("BAD_ARGUMENT", "a height is a whole number from 1, or `latest`", {
        details: `got "${height}"`,
      });
    }
    const block = await withClient(options, (client) =>
      client.block(height === "latest" ? "latest" : Number(height)),
    );
    printResult(options, block, () =>
      [
        `block ${block.height}  ${block.hash}`,
        `time ${new Date(block.time).toISOString()}  proposer ${block.proposer}`,
        `app hash ${block.appHash}`,
        `${block.txs.length} transaction${block.txs.length === 1 ? "" : "s"}`,
        ...block.txs.map(
          (t) =>
            `  ${t.hash}  ${t.type} from ${t.sender}${t.code === undefined ? "" : t.ok ? "  ok" : `  failed: ${t.log}`}`,
        ),
      ].join("\n"),
    );
  });

  addApiOptions(
    ledger
      .command("tx")
      .description("a transaction: pending, or where it was committed and how it went")
      .argument("<hash>"),
  ).action(async (hash: string, options: ApiOptions) => {
    const info = await withClient(options, (client) => client.tx(hash));
    printResult(options, info, () =>
      info.status === "pending"
        ? `${info.hash}: pending in the mempool`
        : [
            `${info.hash}: ${info.type} from ${info.sender}`,
            `committed in block ${info.height} at index ${info.index}`,
            info.code === undefined
              ? "outcome not known to this node"
              : info.ok
                ? "outcome ok"
                : `failed: ${info.log}`,
          ].join("\n"),
    );
  });

  addApiOptions(
    ledger
      .command("supply")
      .description("the supply: genesis + minted − burned = balances + bonded + unbonding + escrowed"),
  ).action(async (options: ApiOptions) => {
    const s = await withClient(options, (client) => client.supply());
    printResult(options, s, () =>
      [
        `at height ${s.height}`,
        `genesis ${s.genesis} + minted ${s.minted} − burned ${s.burned} = ${s.expected}`,
        `balances ${s.balances} + bonded ${s.bonded} + unbonding ${s.unbonding} + escrowed ${s.escrowed} = ${s.actual}`,
        s.holds ? "the supply adds up" : "THE SUPPLY DOES NOT ADD UP",
      ].join("\n"),
    );
  });
}
