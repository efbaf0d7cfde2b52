/**
 * The encrypted key file of an account: the 32-byte secret seed sealed with XChaCha20-Poly1305 under
 * a key stretched from a passphrase by scrypt. The address stays readable, so a user can tell key
 * files apart without unlocking them.
 *
 *   { "version": 1, "address": "ds1…",
 *     "kdf": { "name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<hex 32 bytes>" },
 *     "cipher": { "name": "xchacha20poly1305", "nonce": "<hex 24 bytes>", "ciphertext": "<hex 48 bytes>" } }
 *
 * scrypt is Node's (OpenSSL, off the main thread); the default costs 128 MiB and about a quarter of
 * a second here. Reading refuses KDF parameters above a memory cap, so a hostile file cannot make
 * us allocate gigabytes.
 */
import { randomBytes, scrypt } from "node:crypto";
import { link, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { encodeAddress, parseAddress } from "./address.ts";
import { DeepshardError } from "./errors.ts";
import { type KeyPair, keyPairFromSecret, SECRET_KEY_LENGTH } from "./keys.ts";

export const KEYSTORE_VERSION = 1;

export type KeystoreErrorCode =
  | "WRONG_PASSPHRASE"
  | "CORRUPT"
  | "UNSUPPORTED"
  | "INVALID_KDF"
  | "KDF_TOO_COSTLY"
  | "ALREADY_EXISTS"
  | "READ_FAILED"
  | "WRITE_FAILED";

export class KeystoreError extends DeepshardError<KeystoreErrorCode> {
  override name = "KeystoreError";
}

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  n: number;
  r: number;
  p: number;
}

export interface KeystoreFile {
  version: 1;
  address: string;
  kdf: { name: "scrypt"; n: number; r: number; p: number; salt: string };
  cipher: { name: "xchacha20poly1305"; nonce: string; ciphertext: string };
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ n: 2 ** 17, r: 8, p: 1 });
/** scrypt needs 128·n·r bytes; no key file may ask for more. */
const MAX_KDF_MEMORY = 512 * 2 ** 20;
const MAX_P = 16;
/** A key file is under 1 KiB; anything far larger is not one. */
const MAX_FILE_BYTES = 64 * 1024;
const SALT_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;

function checkParams(params: ScryptParams): void {
  const { n, r, p } = params;
  const valid =
    Number.isSafeInteger(n) &&
    n >= 2 &&
    (n & (n - 1)) === 0 &&
    Number.isSafeInteger(r) &&
    r >= 1 &&
    Number.isSafeInteger(p) &&
    p >= 1;
  if (!valid) {
    throw new KeystoreError("INVALID_KDF", "scrypt parameters are invalid", {
      details: `n must be a power of two ≥ 2, r and p positive integers; got n=${n}, r=${r}, p=${p}`,
    });
  }
  if (128 * n * r > MAX_KDF_MEMORY || p > MAX_P) {
    throw new KeystoreError("KDF_TOO_COSTLY", "scrypt parameters exceed the allowed cost", {
      details: `n=${n}, r=${r}, p=${p} needs ${(128 * n * r) / 2 ** 20} MiB; the limit is ${MAX_KDF_MEMORY / 2 ** 20} MiB and p ≤ ${MAX_P}`,
    });
  }
}

function passphraseBytes(passphrase: string | Uint8Array): Uint8Array {
  if (passphrase instanceof Uint8Array) return passphrase;
  if (typeof passphrase !== "string") {
    throw new KeystoreError("UNSUPPORTED", "a passphrase is a string or bytes", {
      details: `got ${typeof passphrase}`,
    });
  }
  // The same passphrase typed on another keyboard or OS must unlock the file.
  return new TextEncoder().encode(passphrase.normalize("NFKC"));
}

function deriveKey(
  passphrase: string | Uint8Array,
  salt: Uint8Array,
  params: ScryptParams,
): Promise<Uint8Array> {
  const { n, r, p } = params;
  return new Promise((resolve, reject) => {
    scrypt(
      passphraseBytes(passphrase),
      salt,
      32,
      { N: n, r, p, maxmem: 128 * n * r * 2 + 2 ** 20 },
      (err, key) => {
        if (err) reject(new KeystoreError("UNSUPPORTED", "scrypt failed", { cause: err }));
        else resolve(new Uint8Array(key.buffer, key.byteOffset, key.length));
      },
    );
  });
}

const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex");

function fromHex(value: unknown, bytes: number, field: string): Uint8Array {
  if (typeof value !== "string" || value.length !== bytes * 2 || !/^[0-9a-f]*$/.test(value)) {
    throw new KeystoreError("CORRUPT", `key file field ${field} is not ${bytes} bytes of lowercase hex`, {
      meta: { field },
    });
  }
  return Uint8Array.from(Buffer.from(value, "hex"));
}

/** Seals a secret seed under a passphrase. */
export async function encryptKeystore(
  secretKey: Uint8Array,
  passphrase: string | Uint8Array,
  options: { kdf?: Partial<ScryptParams> | undefined } = {},
): Promise<KeystoreFile> {
  const { publicKey } = keyPairFromSecret(secretKey);
  const params: ScryptParams = { ...DEFAULT_SCRYPT, ...options.kdf };
  checkParams(params);
  const salt = new Uint8Array(randomBytes(SALT_BYTES));
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const key = await deriveKey(passphrase, salt, params);
  const ciphertext = xchacha20poly1305(key, nonce).encrypt(secretKey);
  return {
    version: KEYSTORE_VERSION,
    address: encodeAddress(publicKey),
    kdf: { name: "scrypt", ...params, salt: toHex(salt) },
    cipher: { name: "xchacha20poly1305", nonce: toHex(nonce), ciphertext: toHex(ciphertext) },
  };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Checks the shape of a key file (already JSON-parsed, or as text) without unlocking it. */
export function parseKeystore(input: unknown): KeystoreFile {
  let value = input;
  if (typeof input === "string") {
    if (input.length > MAX_FILE_BYTES) throw new KeystoreError("CORRUPT", "not a key file: far too large");
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new KeystoreError("CORRUPT", "key file is not valid JSON (truncated or damaged?)", {
        cause: err,
      });
    }
  }
  if (!isObject(value)) throw new KeystoreError("CORRUPT", "key file is not a JSON object");
  if (value.version !== KEYSTORE_VERSION) {
    throw new KeystoreError("UNSUPPORTED", `key file version ${String(value.version)} is not supported`, {
      details: `this program reads version ${KEYSTORE_VERSION}`,
    });
  }
  const { address, kdf, cipher } = value;
  if (typeof address !== "string") throw new KeystoreError("CORRUPT", "key file has no address");
  try {
    parseAddress(address);
  } catch (err) {
    throw new KeystoreError("CORRUPT", "key file address is invalid", { cause: err });
  }
  if (!isObject(kdf) || !isObject(cipher))
    throw new KeystoreError("CORRUPT", "key file lacks its kdf or cipher");
  if (kdf.name !== "scrypt")
    throw new KeystoreError("UNSUPPORTED", `key derivation ${String(kdf.name)} is not supported`);
  if (cipher.name !== "xchacha20poly1305") {
    throw new KeystoreError("UNSUPPORTED", `cipher ${String(cipher.name)} is not supported`);
  }
  const params = { n: kdf.n, r: kdf.r, p: kdf.p } as ScryptParams;
  checkParams(params);
  fromHex(kdf.salt, SALT_BYTES, "kdf.salt");
  fromHex(cipher.nonce, NONCE_BYTES, "cipher.nonce");
  fromHex(cipher.ciphertext, SECRET_KEY_LENGTH + TAG_BYTES, "cipher.ciphertext");
  return {
    version: KEYSTORE_VERSION,
    address,
    kdf: { name: "scrypt", ...params, salt: kdf.salt as string },
    cipher: {
      name: "xchacha20poly1305",
      nonce: cipher.nonce as string,
      ciphertext: cipher.ciphertext as string,
    },
  };
}

/** Unlocks a key file; a wrong passphrase gives KeystoreError WRONG_PASSPHRASE. */
export async function decryptKeystore(file: unknown, passphrase: string | Uint8Array): Promise<KeyPair> {
  const ks = parseKeystore(file);
  const key = await deriveKey(passphrase, fromHex(ks.kdf.salt, SALT_BYTES, "kdf.salt"), ks.kdf);
  let secretKey: Uint8Array;
  try {
    secretKey = xchacha20poly1305(key, fromHex(ks.cipher.nonce, NONCE_BYTES, "cipher.nonce")).decrypt(
      fromHex(ks.cipher.ciphertext, SECRET_KEY_LENGTH + TAG_BYTES, "cipher.ciphertext"),
    );
  } catch (err) {
    // The tag covers the whole ciphertext: a wrong passphrase and a damaged ciphertext look alike.
    throw new KeystoreError("WRONG_PASSPHRASE", "wrong passphrase for this key file", {
      details: `key file of ${ks.address} (or its ciphertext is damaged)`,
      cause: err,
      meta: { address: ks.address },
    });
  }
  const pair = keyPairFromSecret(secretKey);
  if (encodeAddress(pair.publicKey) !== ks.address) {
    throw new KeystoreError("CORRUPT", "key file address does not match the key inside it", {
      details: `file says ${ks.address}, key is ${encodeAddress(pair.publicKey)}`,
    });
  }
  return pair;
}

/**
 * Writes a key file atomically with mode 0600: a temporary file beside it, fsync, then a link
 * (refuses to replace an existing key file unless `overwrite`) or a rename, then fsync of the
 * directory. A crash leaves either no file or the whole file.
 */
export async function writeKeystore(
  path: string,
  secretKey: Uint8Array,
  passphrase: string | Uint8Array,
  options: { kdf?: Partial<ScryptParams> | undefined; overwrite?: boolean | undefined } = {},
): Promise<KeystoreFile> {
  const ks = await encryptKeystore(secretKey, passphrase, { kdf: options.kdf });
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${toHex(new Uint8Array(randomBytes(6)))}.tmp`);
  try {
    const fh = await open(tmp, "wx", 0o600);
    try {
      await fh.chmod(0o600);
      await fh.writeFile(`${JSON.stringify(ks, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.overwrite) {
      await rename(tmp, path);
    } else {
      try {
        await link(tmp, path);
      } finally {
        await unlink(tmp);
      }
    }
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (err) {
    await unlink(tmp).catch(() => {});
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new KeystoreError("ALREADY_EXISTS", `a key file already exists at ${path}`, {
        details: "refusing to replace it; pass overwrite to do so",
        meta: { path },
      });
    }
    throw new KeystoreError("WRITE_FAILED", `cannot write key file ${path}`, { cause: err, meta: { path } });
  }
  return ks;
}

/** Reads and unlocks a key file. */
export async function readKeystore(path: string, passphrase: string | Uint8Array): Promise<KeyPair> {
  let text: string;
  try {
    const info = await stat(path);
    if (info.size > MAX_FILE_BYTES)
      throw new KeystoreError("CORRUPT", `${path} is far too large to be a key file`);
    text = await readFile(path, "utf8");
  } catch (err) {
    if (err instanceof KeystoreError) throw err;
    throw new KeystoreError("READ_FAILED", `cannot read key file ${path}`, { cause: err, meta: { path } });
  }
  return decryptKeystore(text, passphrase);
}
