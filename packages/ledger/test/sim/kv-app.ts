/**
 * A small application for consensus tests: its state is a hash chain over the committed
 * transactions, so two nodes agree on the app hash exactly when they executed the same blocks.
 * Evidence of double-signing becomes an `evidence` transaction that removes the validator (what the
 * ledger's state machine does with slashing and tombstoning).
 */
import { decode, encode, sha256Parts } from "@deepshard/protocol";
import {
  type ConsensusApp,
  type DuplicateVoteEvidence,
  type FinalizeBlockResponse,
  type InitChainRequest,
  type PrepareProposalRequest,
  type ProposalInfo,
  protocolCrypto,
  ValidatorSet,
  verifyEvidence,
} from "../../src/index.ts";

const EVIDENCE_TAG = new TextEncoder().encode("evidence:");

function evidenceTx(evidence: DuplicateVoteEvidence): Uint8Array {
  const body = encode(evidence);
  const tx = new Uint8Array(EVIDENCE_TAG.length + body.length);
  tx.set(EVIDENCE_TAG);
  tx.set(body, EVIDENCE_TAG.length);
  return tx;
}

function parseEvidenceTx(tx: Uint8Array): DuplicateVoteEvidence | undefined {
  if (tx.length <= EVIDENCE_TAG.length || !EVIDENCE_TAG.every((b, i) => tx[i] === b)) return undefined;
  return decode(tx.subarray(EVIDENCE_TAG.length)) as unknown as DuplicateVoteEvidence;
}

export class KvApp implements ConsensusApp<Uint8Array> {
  height = 0;
  appHash: Uint8Array = new Uint8Array(32);
  /** App hash (hex) after each committed height. */
  readonly hashes = new Map<number, string>();
  /** Validators punished for double-signing, by hex key. */
  readonly slashed = new Set<string>();
  private chainId = "";
  private readonly punish: boolean;

  /** @param punish whether evidence removes the validator (off: a Byzantine validator stays to keep attacking). */
  constructor(punish = true) {
    this.punish = punish;
  }
  private validators: ValidatorSet | undefined;
  private pending:
    | { height: number; appHash: Uint8Array; validators: ValidatorSet; removed: Uint8Array[] }
    | undefined;

  async info() {
    return { lastHeight: this.height, lastAppHash: this.appHash };
  }

  async initChain(request: InitChainRequest) {
    this.chainId = request.chainId;
    this.validators = ValidatorSet.create(request.validators);
    this.appHash = sha256Parts([new TextEncoder().encode(request.chainId)]);
    return { appHash: this.appHash };
  }

  async prepareProposal(request: PrepareProposalRequest<Uint8Array>) {
    const misbehavior = this.punish ? request.misbehavior : [];
    // One evidence transaction per culprit: the first removes it, a second would be invalid.
    const culprits = new Set<string>();
    const punish = misbehavior.filter((e) => {
      const culprit = Buffer.from(e.voteA.signer).toString("hex");
      if (culprits.has(culprit) || !this.evidenceValid(e, this.validators!)) return false;
      culprits.add(culprit);
      return true;
    });
    return [...punish.map(evidenceTx), ...request.txs].slice(0, request.maxTxs);
  }

  async processProposal(request: ProposalInfo<Uint8Array>) {
    return this.execute(request) !== undefined;
  }

  async finalizeBlock(request: ProposalInfo<Uint8Array>): Promise<FinalizeBlockResponse> {
    const result = this.execute(request);
    if (!result) throw new Error(`block ${request.height} is invalid for the application`);
    const { appHash, validators, removed } = result;
    this.pending = { height: request.height, appHash, validators, removed };
    return result.response;
  }

  async commit() {
    const p = this.pending!;
    this.height = p.height;
    this.appHash = p.appHash;
    this.validators = p.validators;
    this.hashes.set(p.height, Buffer.from(p.appHash).toString("hex"));
    for (const key of p.removed) this.slashed.add(Buffer.from(key).toString("hex"));
    this.pending = undefined;
  }

  private evidenceValid(evidence: DuplicateVoteEvidence, validators: ValidatorSet): boolean {
    try {
      verifyEvidence(evidence, { chainId: this.chainId, validators, crypto: protocolCrypto });
      return true;
    } catch {
      return false;
    }
  }

  /** Runs a block against the committed state without changing it; undefined when invalid. */
  private execute(request: ProposalInfo<Uint8Array>) {
    let validators = this.validators!;
    const removed: Uint8Array[] = [];
    for (const tx of request.txs) {
      const evidence = parseEvidenceTx(tx);
      if (!evidence) continue;
      if (!this.evidenceValid(evidence, validators)) return undefined;
      removed.push(evidence.voteA.signer);
      validators = validators.next([{ publicKey: evidence.voteA.signer, power: 0n }]);
    }
    const appHash = sha256Parts([this.appHash, ...request.txs]);
    return {
      appHash,
      validators,
      removed,
      response: {
        txResults: request.txs.map(() => ({ code: 0 })),
        validatorUpdates: removed.map((publicKey) => ({ publicKey, power: 0n })),
        appHash,
      },
    };
  }
}
