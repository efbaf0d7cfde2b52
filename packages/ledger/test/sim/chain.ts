/**
 * A small chain for store tests: simulated blocks, each with the bytes a store keeps and a way
 * to turn those bytes back into the block (so a store's log can be replayed).
 */
import { decodeEntry, encodeEntry } from "../../src/state/codec.ts";
import { type BlockInput, type BlockResult, StateMachine } from "../../src/state/machine.ts";
import type { LedgerState } from "../../src/state/tables.ts";
import { runSimulation } from "./generator.ts";

export interface ChainBlock {
  input: BlockInput;
  bytes: Uint8Array;
  result: BlockResult;
}

export function encodeBlockInput(block: BlockInput): Uint8Array {
  return encodeEntry(block);
}

export function decodeBlockInput(bytes: Uint8Array): BlockInput {
  return decodeEntry(bytes) as BlockInput;
}

export function makeChain(
  seed: number,
  blocks: number,
  opsPerBlock: number,
): { genesis: LedgerState; blocks: ChainBlock[] } {
  const out: ChainBlock[] = [];
  let genesis: LedgerState | undefined;
  runSimulation({
    seed,
    blocks,
    opsPerBlock,
    onBlock: (prev, _next, input, result) => {
      genesis ??= prev;
      out.push({ input, bytes: encodeBlockInput(input), result });
    },
  });
  return { genesis: genesis!, blocks: out };
}

const machine = new StateMachine();
export function replayBlock(state: LedgerState, bytes: Uint8Array): LedgerState {
  return machine.applyBlock(state, decodeBlockInput(bytes)).state;
}
