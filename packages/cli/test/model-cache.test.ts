import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChunkedWeights } from "@deepshard/tensor";
import { afterAll, describe, expect, it } from "vitest";
import type { BlobClient } from "../src/node/blobs/index.ts";
import { ChunkStore } from "../src/node/blobs/index.ts";
import type { WeightsDirectory } from "../src/node/roles/storage/directory.ts";
import { ModelCache } from "../src/node/roles/storage/models.ts";

const root = await mkdtemp(join(tmpdir(), "ds-model-cache-"));
afterAll(() => rm(root, { recursive: true, force: true }));

describe("ModelCache.adopt", () => {
  it("two builders of the same weights in one process both end with the one cached folder", async () => {
    const chunks = await ChunkStore.open(root);
    // adopt() moves folders only: it never fetches, so it needs no client or directory.
    const cache = new ModelCache(root, chunks, {} as BlobClient, {} as WeightsDirectory);
    const build = async () => {
      const dir = await cache.tempDir();
      await writeFile(join(dir, "model.safetensors"), "same bytes for both builders");
      return dir;
    };
    const [a, b] = await Promise.all([build(), build()]);
    const manifest = (await ChunkedWeights.open(a, { files: ["model.safetensors"] })).manifest;
    const [ta, tb] = await Promise.all([cache.adopt(manifest, a), cache.adopt(manifest, b)]);
    expect(ta).toBe(tb);
    expect(await readFile(join(ta, "model.safetensors"), "utf8")).toBe("same bytes for both builders");
    expect((await readdir(root)).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
  });
});
