/**
 * The transfer reader against the protocol's codec: on every canonical transfer it gives what
 * `decodeTx` gives, and it never accepts bytes that `decodeTx` refuses or reads differently
 * (mutated, truncated or extended encodings, other transaction types).
 */
import { decodeTx, encodeTx, type SignedTx, U64_MAX } from "@deepshard/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readTransfer } from "../src/mempool/transfer-bytes.ts";
import { txFromBytes } from "../src/mempool/tx-info.ts";

const chainIdArb = fc
  .tuple(
    fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789"),
    fc.string({ unit: fc.constantFrom(..."abcz09._-"), maxLength: 63 }),
  )
  .map(([first, rest]) => first + rest);
/** Integers around every boundary of the shortest encodings. */
const uintArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 30n }),
  fc.constantFrom(23n, 24n, 255n, 256n, 65_535n, 65_536n, 2n ** 32n - 1n, 2n ** 32n, U64_MAX),
  fc.bigInt({ min: 0n, max: U64_MAX }),
);
const bytesArb = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });

const transferArb: fc.Arbitrary<SignedTx> = fc.record({
  payload: fc.record({
    v: fc.constant(1 as const),
    type: fc.constant("transfer" as const),
    chainId: chainIdArb,
    nonce: uintArb,
    fee: uintArb,
    to: bytesArb(32),
    amount: uintArb,
  }),
  signer: bytesArb(32),
  signature: bytesArb(64),
});

/** What decodeTx makes of `bytes`, or the error code it throws. */
function reference(bytes: Uint8Array): SignedTx | string {
  try {
    return decodeTx(bytes);
  } catch (err) {
    return (err as { code: string }).code;
  }
}

describe("transfer bytes", () => {
  it("reads every canonical transfer as decodeTx does", () => {
    fc.assert(
      fc.property(transferArb, (tx) => {
        const bytes = encodeTx(tx);
        const read = readTransfer(bytes);
        expect(read).toEqual(decodeTx(bytes));
        expect(read).toEqual(tx);
      }),
      { numRuns: 500 },
    );
  });

  it("accepts no mutated, truncated or extended encoding that decodeTx refuses or reads otherwise", () => {
    const mutated = fc
      .tuple(
        transferArb,
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom("set", "cut", "add", "drop"),
      )
      .map(([tx, at, byte, how]) => {
        const bytes = encodeTx(tx);
        const i = at % bytes.length;
        if (how === "set") return Uint8Array.from(bytes, (b, k) => (k === i ? byte : b));
        if (how === "cut") return bytes.slice(0, i);
        if (how === "drop") return Uint8Array.of(...bytes.slice(0, i), ...bytes.slice(i + 1));
        return Uint8Array.of(...bytes.slice(0, i), byte, ...bytes.slice(i));
      });
    fc.assert(
      fc.property(mutated, (bytes) => {
        const read = readTransfer(bytes);
        if (read !== undefined) expect(read).toEqual(reference(bytes));
      }),
      { numRuns: 5000 },
    );
  });

  it("leaves other transaction types and non-canonical integers to decodeTx", () => {
    const tx = {
      payload: { v: 1, type: "bond", chainId: "c", nonce: 1n, fee: 1n, amount: 5n },
      signer: new Uint8Array(32),
      signature: new Uint8Array(64),
    } as SignedTx;
    expect(readTransfer(encodeTx(tx))).toBeUndefined();
    expect(txFromBytes(encodeTx(tx))).toEqual(tx);
    // A fee of 5 written in two bytes (0x18 0x05) instead of one.
    const transfer = encodeTx({
      payload: {
        v: 1,
        type: "transfer",
        chainId: "c",
        nonce: 1n,
        fee: 5n,
        to: new Uint8Array(32),
        amount: 1n,
      },
      signer: new Uint8Array(32),
      signature: new Uint8Array(64),
    } as SignedTx);
    const fee = transfer.indexOf(0x05, 95);
    const long = Uint8Array.of(...transfer.slice(0, fee), 0x18, ...transfer.slice(fee));
    expect(readTransfer(long)).toBeUndefined();
    expect(reference(long)).toBe("NON_CANONICAL");
    // The chain id "c" made "-": its characters may not start with a separator.
    const at = transfer.indexOf(0x63, transfer.length - 78);
    const dash = Uint8Array.from(transfer, (b, k) => (k === at ? 0x2d : b));
    expect(readTransfer(dash)).toBeUndefined();
    expect(reference(dash)).toBe("WRONG_TYPE");
  });
});
