/**
 * The blob layer's stores on a real file system: content-addressed blobs verified while they stream
 * in, weight chunks verified against their weights id, and crash safety (a writer killed with SIGKILL
 * never leaves a partial blob under its final name).
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { ChunkedWeights } from "@deepshard/tensor";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlobError, BlobStore, ChunkStore } from "../src/node/blobs/index.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ds-blobs-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function blobError(p: Promise<unknown>, code: string): Promise<BlobError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BlobError);
  expect((err as BlobError).code).toBe(code);
  return err as BlobError;
}

/** Final-name files and temp files under `<dir>/blobs`. */
async function onDisk(): Promise<{ blobs: string[]; temps: string[] }> {
  const blobs = (await readdir(join(dir, "blobs"))).filter((n) => n !== ".tmp");
  const temps = await readdir(join(dir, "blobs", ".tmp"));
  return { blobs, temps };
}

describe("BlobStore", () => {
  it("stores bytes and streams by content hash, reads ranges, lists, deletes, and reopens", async () => {
    const store = await BlobStore.open(dir);
    const a = randomBytes(5000);
    const b = randomBytes(70_000);
    expect(await store.put(a, { maxBytes: 1 << 20 })).toEqual({ hash: sha256(a), size: 5000 });
    const chunks = [b.subarray(0, 1), b.subarray(1, 40_000), b.subarray(40_000)];
    const info = await store.put(Readable.from(chunks), {
      expectedHash: sha256(b),
      size: b.length,
      maxBytes: 1 << 20,
    });
    expect(info).toEqual({ hash: sha256(b), size: 70_000 });
    expect(store.has(sha256(a))).toBe(true);
    expect(store.has(Buffer.from(sha256(b), "hex"))).toBe(true);
    expect(store.totalSize).toBe(75_000);
    expect(Buffer.from(await store.get(sha256(b))).equals(b)).toBe(true);
    expect(Buffer.from(await store.read(sha256(b), 39_990, 20)).equals(b.subarray(39_990, 40_010))).toBe(
      true,
    );
    // A range running past the end is cut short; at the very end it is empty; past it, BAD_RANGE.
    expect((await store.read(sha256(a), 4990, 100)).byteLength).toBe(10);
    expect((await store.read(sha256(a), 5000, 100)).byteLength).toBe(0);
    await blobError(store.read(sha256(a), 5001, 1), "BAD_RANGE");
    await blobError(store.get(sha256(Buffer.from("absent"))), "NOT_FOUND");
    await blobError(store.get("not-a-hash"), "INVALID_ARGUMENT");
    expect(store.list().sort((x, y) => x.size - y.size)).toEqual([
      { hash: sha256(a), size: 5000 },
      { hash: sha256(b), size: 70_000 },
    ]);

    const again = await BlobStore.open(dir);
    expect(again.totalSize).toBe(75_000);
    expect(await again.delete(sha256(a))).toBe(true);
    expect(await again.delete(sha256(a))).toBe(false);
    expect(again.list()).toEqual([{ hash: sha256(b), size: 70_000 }]);
    expect((await onDisk()).blobs).toEqual([sha256(b)]);
  });

  it("refuses a stream larger than announced at the first byte too many, storing nothing", async () => {
    const store = await BlobStore.open(dir);
    let pulled = 0;
    async function* endless() {
      for (;;) {
        pulled++;
        yield new Uint8Array(1000);
      }
    }
    const err = await blobError(store.put(endless(), { size: 2500, maxBytes: 1 << 20 }), "TOO_LARGE");
    expect(err.meta).toMatchObject({ limit: 2500, received: 3000 });
    expect(pulled).toBe(3);
    // The same through maxBytes alone, and for a whole buffer (refused before any file is made).
    await blobError(store.put(endless(), { maxBytes: 1500 }), "TOO_LARGE");
    await blobError(store.put(new Uint8Array(10), { maxBytes: 9 }), "TOO_LARGE");
    expect(await onDisk()).toEqual({ blobs: [], temps: [] });
    expect(store.list()).toEqual([]);
    expect(store.totalSize).toBe(0);
  });

  it("refuses wrong hashes and short blobs, storing nothing", async () => {
    const store = await BlobStore.open(dir);
    const data = randomBytes(3000);
    const err = await blobError(
      store.put(data, { expectedHash: sha256(Buffer.from("other")), maxBytes: 1 << 20 }),
      "HASH_MISMATCH",
    );
    expect(err.meta.actual).toBe(sha256(data));
    await blobError(store.put(data, { size: 3001, maxBytes: 1 << 20 }), "SIZE_MISMATCH");
    await blobError(store.put(data, { expectedHash: "zz", maxBytes: 1 << 20 }), "INVALID_ARGUMENT");
    await blobError(store.put(data, { maxBytes: -1 }), "INVALID_ARGUMENT");
    expect(await onDisk()).toEqual({ blobs: [], temps: [] });
  });

  it("removes temp files left behind when it opens", async () => {
    await BlobStore.open(dir);
    await writeFile(join(dir, "blobs", ".tmp", "dead.part"), "half a blob");
    const store = await BlobStore.open(dir);
    expect(await onDisk()).toEqual({ blobs: [], temps: [] });
    expect(store.list()).toEqual([]);
  });
});

describe("ChunkStore", () => {
  async function weights(): Promise<ChunkedWeights> {
    const model = join(dir, "model");
    await rm(model, { recursive: true, force: true });
    await mkdir(model, { recursive: true });
    await writeFile(join(model, "config.json"), JSON.stringify({ model_type: "gpt2" }));
    await writeFile(join(model, "model.safetensors"), randomBytes(10_000));
    return ChunkedWeights.open(model, { files: ["config.json", "model.safetensors"], chunkSize: 1024 });
  }

  it("stores chunks with their proofs beside the manifest, and only chunks that verify", async () => {
    const w = await weights();
    const id = w.weightsId;
    const store = await ChunkStore.open(dir);
    await blobError(store.put(id, 0, new Uint8Array(1), []), "NO_MANIFEST");
    await store.putFrom(w, [1, 3, 5]);
    expect(store.indices(id)).toEqual([1, 3, 5]);
    const c = await w.chunk(2);
    const bad = Uint8Array.from(c.bytes);
    bad[7]! ^= 1;
    const err = await blobError(store.put(id, 2, bad, c.proof), "INVALID_CHUNK");
    expect(err.message).toContain("chunk 2");
    // A true chunk under another index fails too: the proof binds the position.
    await blobError(store.put(id, 4, c.bytes, c.proof), "INVALID_CHUNK");
    await store.put(id, 2, c.bytes, c.proof);
    expect(store.has(id, 2)).toBe(true);
    expect(await readdir(join(dir, "weights", id))).toContain("manifest.json");

    const again = await ChunkStore.open(dir);
    expect(again.weights()).toEqual([id]);
    expect(again.manifest(id)).toEqual(w.manifest);
    expect(again.indices(id)).toEqual([1, 2, 3, 5]);
    expect(again.totalSize).toBe(4 * 1024);
    const got = await again.get(id, 3);
    expect(got.bytes).toEqual(await w.readChunk(3));
    expect(got.proof).toEqual(w.proof(3));
    await blobError(again.get(id, 4), "NOT_FOUND");
    await again.delete(id, 3);
    expect((await ChunkStore.open(dir)).indices(id)).toEqual([1, 2, 5]);
    await again.delete(id);
    expect((await ChunkStore.open(dir)).weights()).toEqual([]);
  });

  it("refuses a second, different manifest for the same weights id", async () => {
    const w = await weights();
    const store = await ChunkStore.open(dir);
    await store.putManifest(w.manifest);
    await store.putManifest(JSON.parse(JSON.stringify(w.manifest)));
    const renamed = { ...w.manifest, files: w.manifest.files.map((f, i) => ({ ...f, name: `f${i}` })) };
    await blobError(store.putManifest(renamed), "MANIFEST_CONFLICT");
  });
});

describe("crash safety", () => {
  const STORE = fileURLToPath(new URL("../src/node/blobs/store.ts", import.meta.url));
  // Stores 256 KiB blobs in 16 KiB pieces, forever, saying which ones are stored.
  const CHILD = `
    import { randomBytes } from "node:crypto";
    import { setTimeout as sleep } from "node:timers/promises";
    const { BlobStore } = await import(${JSON.stringify(STORE)});
    const store = await BlobStore.open(process.argv[1]);
    process.stdout.write("ready\\n");
    for (;;) {
      async function* pieces() {
        for (let i = 0; i < 16; i++) {
          yield randomBytes(16384);
          if (i % 4 === 0) await sleep(1);
        }
      }
      const { hash } = await store.put(pieces(), { maxBytes: 1 << 20 });
      process.stdout.write("stored " + hash + "\\n");
    }
  `;

  async function lifeKilledAfter(ms: number): Promise<string[]> {
    const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, dir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stored: string[] = [];
    let stderr = "";
    let buffered = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line === "ready") setTimeout(() => child.kill("SIGKILL"), ms);
        if (line.startsWith("stored ")) stored.push(line.slice(7));
      }
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const signal = await new Promise((resolve) => child.once("exit", (_code, sig) => resolve(sig)));
    expect(signal, stderr).toBe("SIGKILL");
    return stored;
  }

  it("a writer killed with SIGKILL leaves whole blobs or nothing under a final name", async () => {
    const reported = new Set<string>();
    let interrupted = 0;
    for (const ms of [3, 17, 41, 90]) {
      for (const h of await lifeKilledAfter(ms)) reported.add(h);
      if ((await readdir(join(dir, "blobs", ".tmp"))).length > 0) interrupted++;
      // Every file under a final name is a whole blob: its content hashes to its name.
      for (const name of (await readdir(join(dir, "blobs"))).filter((n) => n !== ".tmp")) {
        expect(sha256(await readFile(join(dir, "blobs", name)))).toBe(name);
      }
      const store = await BlobStore.open(dir);
      for (const h of reported) expect(store.has(h)).toBe(true);
      expect(await readdir(join(dir, "blobs", ".tmp"))).toEqual([]);
    }
    expect(reported.size).toBeGreaterThan(0);
    // The child spends nearly all its time inside a write: kills land there.
    expect(interrupted).toBeGreaterThan(0);
  });
});
