/**
 * Building and signing transactions, shared by the daemon (its role services send with the node
 * key) and by the client (commands sign locally, then post the bytes).
 */
import {
  DeepshardError,
  encodeAddress,
  publicKeyFromSecret,
  type SignedTx,
  sign,
  signingBytes,
  type TxPayload,
} from "@deepshard/protocol";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A transaction's own fields: what the sender chooses, without the envelope's chain id, nonce and fee. */
export type TxBody = DistributiveOmit<TxPayload, "v" | "chainId" | "nonce" | "fee">;

export interface TxEnvelope {
  chainId: string;
  nonce: bigint;
  fee: bigint;
}

export function signTx(secretKey: Uint8Array, body: TxBody, envelope: TxEnvelope): SignedTx {
  const payload = { v: 1, ...envelope, ...body } as TxPayload;
  return {
    payload,
    signer: publicKeyFromSecret(secretKey),
    signature: sign(secretKey, signingBytes(payload)),
  };
}

/** The node's account: its key signs the transactions its role services send. */
export interface NodeAccount {
  publicKey: Uint8Array;
  /** `ds1…` */
  address: string;
  secretKey: Uint8Array;
}

export function nodeAccount(secretKey: Uint8Array): NodeAccount {
  const publicKey = publicKeyFromSecret(secretKey);
  return { publicKey, address: encodeAddress(publicKey), secretKey };
}

/** A one-line JSON view of a transaction: type, sender, nonce, fee and its own fields. */
export function txView(tx: SignedTx): Record<string, unknown> {
  const { v: _v, chainId: _c, ...fields } = tx.payload;
  const view: Record<string, unknown> = { sender: encodeAddress(tx.signer) };
  for (const [k, value] of Object.entries(fields)) {
    view[k] = k === "to" && value instanceof Uint8Array ? encodeAddress(value) : value;
  }
  return view;
}

/** A token amount in the smallest unit, from a decimal string (`1000`, `1_000`). */
export function parseAmount(text: string, what = "amount"): bigint {
  const digits = text.replaceAll("_", "");
  if (!/^(0|[1-9][0-9]{0,19})$/.test(digits) || BigInt(digits) > 2n ** 64n - 1n) {
    throw new DeepshardError("BAD_AMOUNT", `${what} must be a whole number of tokens below 2^64`, {
      details: `got ${JSON.stringify(text.slice(0, 40))}`,
    });
  }
  return BigInt(digits);
}
