/** A hand-driven chain for unit tests of single rules: named actors, automatic nonces, one call per block. */
import { keyPairFromSecret, sha256Parts, type TxPayload } from "@deepshard/protocol";
import { createGenesis, genesisState, type ParamsOverrides } from "../../src/genesis/genesis.ts";
import { toHex } from "../../src/state/hashing.ts";
import { type BlockInput, type BlockResult, StateMachine, type TxOutcome } from "../../src/state/machine.ts";
import type { LedgerState } from "../../src/state/tables.ts";
import type { Meta } from "../../src/state/types.ts";

export interface TestActor {
  name: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  address: string;
}

export type TxBody = TxPayload extends infer T
  ? T extends unknown
    ? Omit<T, "v" | "chainId" | "nonce" | "fee">
    : never
  : never;

export function actor(name: string): TestActor {
  const kp = keyPairFromSecret(sha256Parts([new TextEncoder().encode(name)]));
  return { name, publicKey: kp.publicKey, secretKey: kp.secretKey, address: toHex(kp.publicKey) };
}

export const CHAIN_ID = "deepshard-test-1";

export class TestChain {
  state: LedgerState;
  readonly machine: StateMachine;
  readonly validators: TestActor[];
  readonly users: TestActor[];
  last: BlockResult | undefined;
  private txCount = 0;

  constructor(
    options: { validators?: number; stake?: bigint[]; params?: ParamsOverrides; machine?: StateMachine } = {},
  ) {
    const n = options.validators ?? 4;
    this.validators = Array.from({ length: n }, (_, i) => actor(`validator-${i}`));
    this.users = Array.from({ length: 4 }, (_, i) => actor(`user-${i}`));
    this.machine = options.machine ?? new StateMachine();
    this.state = genesisState(
      createGenesis({
        chainId: CHAIN_ID,
        accounts: [...this.validators, ...this.users].map((a) => ({
          address: a.publicKey,
          balance: 1_000_000n,
        })),
        validators: this.validators.map((v, i) => ({
          address: v.publicKey,
          bonded: options.stake?.[i] ?? 10_000n,
        })),
        params: options.params ?? {},
      }),
    );
  }

  get meta(): Meta {
    return this.state.tables.meta.get("meta")!;
  }

  balance(a: TestActor): bigint {
    return this.state.tables.accounts.get(a.address)?.balance ?? 0n;
  }

  bonded(a: TestActor): bigint {
    return this.state.tables.validators.get(a.address)?.bonded ?? 0n;
  }

  power(a: TestActor): bigint | undefined {
    return this.meta.validators.find((v) => v.address === a.address)?.power;
  }

  /** A signed-envelope-shaped tx with the signer's next nonce (signatures are the caller's concern). */
  tx(from: TestActor, body: TxBody, overrides: { nonce?: bigint; fee?: bigint; chainId?: string } = {}) {
    const nonce = overrides.nonce ?? (this.state.tables.accounts.get(from.address)?.nonce ?? 0n) + 1n;
    const payload = {
      v: 1,
      chainId: overrides.chainId ?? CHAIN_ID,
      nonce,
      fee: overrides.fee ?? 1n,
      ...body,
    } as TxPayload;
    const hash = sha256Parts([new TextEncoder().encode(`tx-${this.txCount++}`)]);
    return { tx: { payload, signer: from.publicKey, signature: new Uint8Array(64) }, hash };
  }

  /** Executes one block; `offline` validators are missing from its last commit. */
  block(
    txs: ReturnType<TestChain["tx"]>[] = [],
    options: { offline?: TestActor[]; proposer?: TestActor } = {},
  ): TxOutcome[] {
    const meta = this.meta;
    const offline = new Set((options.offline ?? []).map((a) => a.address));
    const input: BlockInput = {
      height: meta.height + 1,
      time: meta.time + 1000,
      hash: sha256Parts([new TextEncoder().encode(`block-${meta.height + 1}`)]),
      proposer: (options.proposer ?? this.validators[0]!).publicKey,
      lastCommitSigners:
        meta.height === 0
          ? null
          : meta.lastValidators
              .filter((v) => !offline.has(v.address))
              .map((v) => Buffer.from(v.address, "hex")),
      txs,
    };
    this.last = this.machine.applyBlock(this.state, input);
    this.state = this.last.state;
    return this.last.txResults;
  }

  /** Runs empty blocks until the chain is at `height`. */
  until(height: number, options: { offline?: TestActor[] } = {}): void {
    while (this.meta.height < height) this.block([], options);
  }
}
