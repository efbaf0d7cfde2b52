/**
 * The packages as a library: submit data through a node's informant role, wait for the network's
 * outcome, read the balances. Against a running node (`deepshard devnet` prints each node's API):
 *
 *   npm run example:script -- --api http://127.0.0.1:26680
 *
 * Without --api it starts the examples' small devnet (lib/world.ts) and uses its informant node.
 */
import { parseArgs } from "node:util";
import { DeepshardClient, InformantClient, type SubmissionView } from "@deepshard/cli";
import { startWorld } from "./lib/world.ts";

export const SCRIPT_TEXT = [
  "Jupiter has four large moons: Io, Europa, Ganymede and Callisto.",
  "Io is the closest of them to Jupiter and goes around it in less than two days.",
  "Callisto is the farthest of the four and takes more than two weeks.",
].join("\n\n");

export interface ScriptResult {
  address: string;
  outcome: SubmissionView;
  balanceBefore: bigint;
  balanceAfter: bigint;
  supplyHolds: boolean;
}

export async function runScript(api: string, text = SCRIPT_TEXT, stake = 50n): Promise<ScriptResult> {
  const node = new DeepshardClient(api);
  const informant = new InformantClient(api);
  try {
    const { address } = await informant.status();
    const balanceBefore = (await node.account(address)).balance;
    const { submission } = await informant.submit(new TextEncoder().encode(text), { stake });
    const outcome = await informant.waitForOutcome(submission, { timeoutMs: 120_000 });
    const balanceAfter = (await node.account(address)).balance;
    return { address, outcome, balanceBefore, balanceAfter, supplyHolds: (await node.supply()).holds };
  } finally {
    await Promise.all([node.close(), informant.close()]);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { api: { type: "string" } } });
  const world = values.api ? undefined : await startWorld();
  try {
    const r = await runScript(values.api ?? world!.informant.api);
    console.log(
      `${r.address}: submission ${r.outcome.status} (stake ${r.outcome.stake}, reward ${r.outcome.reward ?? 0n})`,
    );
    console.log(`balance ${r.balanceBefore} → ${r.balanceAfter}; supply invariant holds: ${r.supplyHolds}`);
  } finally {
    await world?.stop();
  }
}
