import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_SCRYPT,
  decryptKeystore,
  encodeAddress,
  encryptKeystore,
  generateKeyPair,
  KeystoreError,
  type KeystoreFile,
  parseKeystore,
  readKeystore,
  writeKeystore,
} from "../src/index.ts";

/** Cheap for tests; the default is exercised once below. */
const kdf = { n: 1024, r: 8, p: 1 };
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(KeystoreError);
    return (err as KeystoreError).code;
  }
}

describe("keystore", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "keystore-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips through a file with mode 0600, leaving no temporary file", async () => {
    const { secretKey, publicKey } = generateKeyPair();
    const path = join(dir, "validator.json");
    const written = await writeKeystore(path, secretKey, "correct horse", { kdf });
    expect(written.address).toBe(encodeAddress(publicKey));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(["validator.json"]);
    const onDisk = JSON.parse(await readFile(path, "utf8")) as KeystoreFile;
    expect(onDisk).toEqual(written);
    expect(onDisk.kdf).toMatchObject({ name: "scrypt", ...kdf });
    expect(onDisk.cipher.name).toBe("xchacha20poly1305");
    expect(JSON.stringify(onDisk)).not.toContain(hex(secretKey));

    const pair = await readKeystore(path, "correct horse");
    expect(hex(pair.secretKey)).toBe(hex(secretKey));
    expect(hex(pair.publicKey)).toBe(hex(publicKey));
  });

  it("uses a fresh salt and nonce each time", async () => {
    const { secretKey } = generateKeyPair();
    const a = await encryptKeystore(secretKey, "pw", { kdf });
    const b = await encryptKeystore(secretKey, "pw", { kdf });
    expect(a.kdf.salt).not.toBe(b.kdf.salt);
    expect(a.cipher.nonce).not.toBe(b.cipher.nonce);
    expect(a.cipher.ciphertext).not.toBe(b.cipher.ciphertext);
  });

  it("unlocks the same passphrase however its Unicode was composed, and from bytes", async () => {
    const { secretKey } = generateKeyPair();
    const ks = await encryptKeystore(secretKey, "caf\u00e9", { kdf });
    expect(hex((await decryptKeystore(ks, "cafe\u0301")).secretKey)).toBe(hex(secretKey));
    const raw = await encryptKeystore(secretKey, new Uint8Array([1, 2, 3]), { kdf });
    expect(hex((await decryptKeystore(raw, new Uint8Array([1, 2, 3]))).secretKey)).toBe(hex(secretKey));
  });

  it("says WRONG_PASSPHRASE for a wrong passphrase", async () => {
    const { secretKey } = generateKeyPair();
    const ks = await encryptKeystore(secretKey, "right", { kdf });
    try {
      await decryptKeystore(ks, "wrong");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(KeystoreError);
      expect((err as KeystoreError).code).toBe("WRONG_PASSPHRASE");
      expect((err as KeystoreError).message).toContain("wrong passphrase");
      expect((err as KeystoreError).meta.address).toBe(ks.address);
    }
    expect(await codeOf(decryptKeystore(ks, ""))).toBe("WRONG_PASSPHRASE");
  });

  it("refuses corrupted and truncated files with typed errors", async () => {
    const { secretKey } = generateKeyPair();
    const ks = await encryptKeystore(secretKey, "pw", { kdf });
    const text = JSON.stringify(ks);
    const other = await encryptKeystore(generateKeyPair().secretKey, "pw", { kdf });
    const flip = (h: string) => (h[0] === "0" ? "1" : "0") + h.slice(1);
    const cases: [unknown, string][] = [
      [text.slice(0, text.length - 5), "CORRUPT"],
      [text.slice(0, 40), "CORRUPT"],
      ["", "CORRUPT"],
      ["null", "CORRUPT"],
      ["[]", "CORRUPT"],
      [{ ...ks, version: 2 }, "UNSUPPORTED"],
      [{ ...ks, address: "ds1nope" }, "CORRUPT"],
      [{ ...ks, address: other.address }, "CORRUPT"],
      [{ ...ks, kdf: undefined }, "CORRUPT"],
      [{ ...ks, kdf: { ...ks.kdf, name: "pbkdf2" } }, "UNSUPPORTED"],
      [{ ...ks, cipher: { ...ks.cipher, name: "aes-128-ctr" } }, "UNSUPPORTED"],
      [{ ...ks, kdf: { ...ks.kdf, n: 1000 } }, "INVALID_KDF"],
      [{ ...ks, kdf: { ...ks.kdf, n: "1024" } }, "INVALID_KDF"],
      [{ ...ks, kdf: { ...ks.kdf, n: 2 ** 30 } }, "KDF_TOO_COSTLY"],
      [{ ...ks, kdf: { ...ks.kdf, p: 1000 } }, "KDF_TOO_COSTLY"],
      [{ ...ks, kdf: { ...ks.kdf, salt: ks.kdf.salt.slice(2) } }, "CORRUPT"],
      [{ ...ks, cipher: { ...ks.cipher, nonce: ks.cipher.nonce.toUpperCase() } }, "CORRUPT"],
      [{ ...ks, cipher: { ...ks.cipher, ciphertext: ks.cipher.ciphertext.slice(0, 64) } }, "CORRUPT"],
      [{ ...ks, cipher: { ...ks.cipher, ciphertext: flip(ks.cipher.ciphertext) } }, "WRONG_PASSPHRASE"],
      [{ ...ks, cipher: { ...ks.cipher, nonce: flip(ks.cipher.nonce) } }, "WRONG_PASSPHRASE"],
      [{ ...ks, kdf: { ...ks.kdf, salt: flip(ks.kdf.salt) } }, "WRONG_PASSPHRASE"],
      [`${" ".repeat(70_000)}{}`, "CORRUPT"],
    ];
    for (const [input, code] of cases) {
      expect(await codeOf(decryptKeystore(input, "pw")), JSON.stringify(input).slice(0, 80)).toBe(code);
    }
    expect(() => parseKeystore(text.slice(0, -1))).toThrow(KeystoreError);

    const path = join(dir, "truncated.json");
    await writeFile(path, text.slice(0, text.length >> 1));
    expect(await codeOf(readKeystore(path, "pw"))).toBe("CORRUPT");
    expect(await codeOf(readKeystore(join(dir, "missing.json"), "pw"))).toBe("READ_FAILED");
  });

  it("does not replace an existing key file unless asked to", async () => {
    const path = join(dir, "key.json");
    const first = generateKeyPair();
    const second = generateKeyPair();
    await writeKeystore(path, first.secretKey, "pw", { kdf });
    expect(await codeOf(writeKeystore(path, second.secretKey, "pw", { kdf }))).toBe("ALREADY_EXISTS");
    expect(hex((await readKeystore(path, "pw")).secretKey)).toBe(hex(first.secretKey));
    await writeKeystore(path, second.secretKey, "pw", { kdf, overwrite: true });
    expect(hex((await readKeystore(path, "pw")).secretKey)).toBe(hex(second.secretKey));
    expect(await readdir(dir)).toEqual(["key.json"]);
    expect(
      await codeOf(writeKeystore(join(dir, "no", "such", "dir.json"), first.secretKey, "pw", { kdf })),
    ).toBe("WRITE_FAILED");
  });

  it("refuses bad inputs when sealing", async () => {
    expect(await codeOf(encryptKeystore(generateKeyPair().secretKey, "pw", { kdf: { n: 3 } }))).toBe(
      "INVALID_KDF",
    );
    expect(await codeOf(encryptKeystore(generateKeyPair().secretKey, 5 as unknown as string, { kdf }))).toBe(
      "UNSUPPORTED",
    );
    await expect(encryptKeystore(new Uint8Array(31), "pw", { kdf })).rejects.toMatchObject({
      code: "INVALID_SECRET_KEY",
    });
  });

  it("default cost takes well under a second", async () => {
    const { secretKey } = generateKeyPair();
    const t0 = performance.now();
    const ks = await encryptKeystore(secretKey, "pw");
    expect(ks.kdf).toMatchObject(DEFAULT_SCRYPT);
    expect(hex((await decryptKeystore(ks, "pw")).secretKey)).toBe(hex(secretKey));
    // two derivations; generous bound for a busy 2-core CI machine
    expect(performance.now() - t0).toBeLessThan(4000);
  });
});
