/**
 * Account addresses: the 32-byte ed25519 public key in bech32m (BIP 350) with the prefix `ds`,
 * e.g. `ds1…` (61 characters). The checksum catches any typo of up to 4 characters, and bech32m
 * (not BIP 173's bech32) because bech32's checksum misses insertions before a final `p`.
 */
import { bech32, bech32m } from "@scure/base";
import { DeepshardError } from "./errors.ts";
import { PUBLIC_KEY_LENGTH } from "./keys.ts";

export const ADDRESS_PREFIX = "ds";
/** Longer inputs are refused before any decoding work. */
const MAX_ADDRESS_CHARS = 100;

export type AddressErrorCode = "INVALID_ADDRESS" | "WRONG_PREFIX" | "BAD_CHECKSUM" | "WRONG_LENGTH";

export class AddressError extends DeepshardError<AddressErrorCode> {
  override name = "AddressError";
}

/** The address of a 32-byte public key. */
export function encodeAddress(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH) {
    throw new AddressError("WRONG_LENGTH", `an address holds a ${PUBLIC_KEY_LENGTH}-byte public key`, {
      details: publicKey instanceof Uint8Array ? `got ${publicKey.length} bytes` : `got ${typeof publicKey}`,
    });
  }
  return bech32m.encode(ADDRESS_PREFIX, bech32m.toWords(publicKey));
}

/** The public key inside an address; an AddressError says what is wrong with a bad one. */
export function parseAddress(address: string): Uint8Array {
  if (typeof address !== "string") {
    throw new AddressError("INVALID_ADDRESS", "an address must be a string", {
      details: `got ${typeof address}`,
    });
  }
  const shown = address.length > MAX_ADDRESS_CHARS ? `${address.slice(0, 20)}…` : address;
  const meta = { address: shown };
  if (address.length > MAX_ADDRESS_CHARS) {
    throw new AddressError("INVALID_ADDRESS", "not a Deepshard address: too long", {
      details: `${address.length} characters, an address has 61`,
      meta,
    });
  }
  const separator = address.lastIndexOf("1");
  if (separator <= 0) {
    throw new AddressError("INVALID_ADDRESS", "not a Deepshard address: no `1` separator", {
      details: `expected ${ADDRESS_PREFIX}1…`,
      meta,
    });
  }
  const prefix = address.slice(0, separator).toLowerCase();
  if (prefix !== ADDRESS_PREFIX) {
    throw new AddressError("WRONG_PREFIX", `address prefix is "${prefix}", expected "${ADDRESS_PREFIX}"`, {
      meta,
    });
  }
  let words: number[];
  try {
    words = bech32m.decode(address as `${string}1${string}`, false).words;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/checksum/i.test(message)) {
      const isBech32 = bech32.decodeUnsafe(address, false) !== undefined;
      throw new AddressError(
        "BAD_CHECKSUM",
        "address checksum does not match: a character is wrong or missing",
        {
          details: isBech32
            ? "the checksum is bech32 (BIP 173); Deepshard addresses use bech32m (BIP 350)"
            : undefined,
          cause: err,
          meta,
        },
      );
    }
    throw new AddressError("INVALID_ADDRESS", "not a Deepshard address", {
      details: message,
      cause: err,
      meta,
    });
  }
  const bytes = bech32m.fromWordsUnsafe(words);
  if (!bytes || bytes.length !== PUBLIC_KEY_LENGTH) {
    throw new AddressError("WRONG_LENGTH", `address does not hold a ${PUBLIC_KEY_LENGTH}-byte public key`, {
      details: bytes
        ? `it holds ${bytes.length} bytes`
        : `${words.length} data characters do not make whole bytes`,
      meta,
    });
  }
  return bytes;
}

/** Whether `address` parses. */
export function isAddress(address: string): boolean {
  try {
    parseAddress(address);
    return true;
  } catch {
    return false;
  }
}
