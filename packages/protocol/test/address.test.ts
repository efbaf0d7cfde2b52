import { bech32, bech32m } from "@scure/base";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ADDRESS_PREFIX,
  AddressError,
  encodeAddress,
  isAddress,
  keyPairFromSecret,
  parseAddress,
} from "../src/index.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(AddressError);
    return (err as AddressError).code;
  }
}

describe("addresses", () => {
  const publicKey = keyPairFromSecret(new Uint8Array(32).fill(7)).publicKey;
  const address = encodeAddress(publicKey);

  it("look like ds1… and round-trip", () => {
    expect(address).toMatch(/^ds1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/);
    expect(address).toHaveLength(61);
    expect(hex(parseAddress(address))).toBe(hex(publicKey));
    expect(hex(parseAddress(address.toUpperCase()))).toBe(hex(publicKey));
    expect(isAddress(address)).toBe(true);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        expect(hex(parseAddress(encodeAddress(key)))).toBe(hex(key));
      }),
    );
  });

  it("match BIP 350's reference algorithm on known keys (a change here changes every account)", () => {
    // computed with the reference Python code of BIP 350
    expect(encodeAddress(new Uint8Array(32))).toBe(
      "ds1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqjqzsyw",
    );
    const rfc8032Test1 = Buffer.from(
      "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
      "hex",
    );
    expect(encodeAddress(Uint8Array.from(rfc8032Test1))).toBe(
      "ds16adfsqvzky9t042tlmfujeq88g8wzuhnm2nzxfd0qgdx3ac82ydqte348w",
    );
  });

  it("catch every single-character substitution as a bad checksum", () => {
    for (let i = 3; i < address.length; i++) {
      for (const c of CHARSET) {
        if (c === address[i]) continue;
        const typo = address.slice(0, i) + c + address.slice(i + 1);
        expect(codeOf(() => parseAddress(typo))).toBe("BAD_CHECKSUM");
      }
    }
  });

  it("say which part is wrong", () => {
    const other = bech32m.encode("cosmos", bech32m.toWords(publicKey));
    expect(codeOf(() => parseAddress(other))).toBe("WRONG_PREFIX");
    expect(codeOf(() => parseAddress(`dx${address.slice(2)}`))).toBe("WRONG_PREFIX");
    expect(codeOf(() => parseAddress(address.slice(0, -1)))).toBe("BAD_CHECKSUM");
    expect(codeOf(() => parseAddress(`${address}q`))).toBe("BAD_CHECKSUM");

    const short = bech32m.encode(ADDRESS_PREFIX, bech32m.toWords(publicKey.subarray(0, 20)));
    expect(codeOf(() => parseAddress(short))).toBe("WRONG_LENGTH");
    const long = bech32m.encode(ADDRESS_PREFIX, bech32m.toWords(new Uint8Array(33)));
    expect(codeOf(() => parseAddress(long))).toBe("WRONG_LENGTH");

    const oldChecksum = bech32.encode(ADDRESS_PREFIX, bech32.toWords(publicKey));
    try {
      parseAddress(oldChecksum);
      expect.unreachable();
    } catch (err) {
      expect((err as AddressError).code).toBe("BAD_CHECKSUM");
      expect((err as AddressError).message).toContain("bech32m");
    }

    expect(codeOf(() => parseAddress(""))).toBe("INVALID_ADDRESS");
    expect(codeOf(() => parseAddress("dsqqqq"))).toBe("INVALID_ADDRESS");
    expect(codeOf(() => parseAddress(`${address.slice(0, 10)}b${address.slice(11)}`))).toBe(
      "INVALID_ADDRESS",
    );
    expect(codeOf(() => parseAddress(address.slice(0, 30) + address.slice(30).toUpperCase()))).toBe(
      "INVALID_ADDRESS",
    );
    expect(codeOf(() => parseAddress(`ds1${"q".repeat(100_000)}`))).toBe("INVALID_ADDRESS");
    expect(codeOf(() => parseAddress(42 as unknown as string))).toBe("INVALID_ADDRESS");
    expect(codeOf(() => encodeAddress(new Uint8Array(31)))).toBe("WRONG_LENGTH");
    expect(isAddress("ds1")).toBe(false);
  });

  it("never throw anything but an AddressError on random strings", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 120 }),
          fc.string({ unit: fc.constantFrom(...`${CHARSET}1DS`), maxLength: 70 }).map((s) => `ds1${s}`),
        ),
        (s) => {
          try {
            parseAddress(s);
          } catch (err) {
            expect(err).toBeInstanceOf(AddressError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
