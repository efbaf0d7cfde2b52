import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendError, currentBackend, initBackend } from "../src/backend.ts";
import { ensureGradients } from "../src/gradients.ts";

const require = createRequire(import.meta.url);
const installed = (pkg: string) => {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  await ensureGradients();
});
afterAll(async () => {
  await initBackend({ backend: "auto", env: {} });
});

describe("backend selection", () => {
  it("auto picks the best present backend and reports why better ones were skipped", async () => {
    const report = await initBackend({ env: {} });
    expect(report.requested).toBe("auto");
    expect(report.source).toBe("default");
    expect(tf.getBackend()).toBe(report.tfBackend);
    expect(currentBackend()).toBe(report);
    // tfjs-node cannot install on this machine: the dynamic import fails and wasm is chosen.
    const absent = ["node-gpu", "node"].filter((n) => !installed(`@tensorflow/tfjs-${n}`));
    for (const name of absent) {
      expect(report.skipped.find((s) => s.name === name)?.reason).toMatch(
        /Cannot find|not found|ERR_MODULE/i,
      );
    }
    if (absent.length === 2) {
      expect(report.name).toBe("wasm");
      expect(report.deterministic).toBe(true);
      expect(report.wasm).toEqual({ simd: true, threads: 1, extraKernels: ["UnsortedSegmentSum"] });
    }
  });

  it("an explicit backend that cannot load is an error, not a silent fallback", async () => {
    if (installed("@tensorflow/tfjs-node")) return;
    const err = await initBackend({ backend: "node" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe("BACKEND_UNAVAILABLE");
    expect((err as BackendError).message).toContain("@tensorflow/tfjs-node");
  });

  it("reads DEEPSHARD_BACKEND, and the option overrides it", async () => {
    const fromEnv = await initBackend({ env: { DEEPSHARD_BACKEND: "cpu" } });
    expect([fromEnv.name, fromEnv.source, tf.getBackend()]).toEqual(["cpu", "env", "cpu"]);
    const fromOption = await initBackend({ backend: "wasm", env: { DEEPSHARD_BACKEND: "cpu" } });
    expect([fromOption.name, fromOption.source, tf.getBackend()]).toEqual(["wasm", "option", "wasm"]);
    const err = await initBackend({ env: { DEEPSHARD_BACKEND: "tpu" } }).catch((e: unknown) => e);
    expect((err as BackendError).code).toBe("UNKNOWN_BACKEND");
    expect((err as BackendError).details).toContain("DEEPSHARD_BACKEND");
  });
});

/** Runs `fn` on a backend and returns plain arrays, so results can be compared across backends. */
async function on(backend: "wasm" | "cpu", fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await initBackend({ backend });
  const out = tf.tidy(fn);
  const list = Array.isArray(out) ? out : [out];
  const values = await Promise.all(list.map(async (t) => new Float32Array(await t.data())));
  tf.dispose(list);
  return values;
}

describe("wasm kernels", () => {
  it("UnsortedSegmentSum matches cpu bit for bit, dropping out-of-range ids", async () => {
    const rows = 37;
    const width = 5;
    const data = Float32Array.from(
      { length: rows * width },
      (_, i) => Math.sin(i * 1.7) * 10 ** ((i % 7) - 3),
    );
    const ids = Int32Array.from({ length: rows }, (_, i) => ((i * 7) % 11) - 1); // includes -1
    ids[3] = 10; // beyond numSegments = 9
    const run = () => [
      tf.unsortedSegmentSum(tf.tensor2d(data, [rows, width]), tf.tensor1d(ids, "int32"), 9),
      tf.unsortedSegmentSum(tf.tensor3d(data, [rows, 1, width]), tf.tensor1d(ids, "int32"), 9),
      tf.unsortedSegmentSum(tf.tensor1d(Int32Array.from(ids), "int32"), tf.tensor1d(ids, "int32"), 4),
    ];
    const [cpu, wasm] = [await on("cpu", run), await on("wasm", run)];
    expect(wasm).toEqual(cpu);
    // Row 3 (id 10) and the rows with id -1 are dropped; sums are float64 in index order, rounded once.
    const expected = new Float64Array(9 * width);
    ids.forEach((s, i) => {
      if (s >= 0 && s < 9) for (let j = 0; j < width; j++) expected[s * width + j]! += data[i * width + j]!;
    });
    expect(wasm[0]).toEqual(Float32Array.from(expected));
  });

  it("tf.grad through tf.gather (an embedding lookup) runs on wasm and matches cpu", async () => {
    const vocab = 50;
    const dim = 16;
    const table = Float32Array.from({ length: vocab * dim }, (_, i) => Math.cos(i * 0.37));
    const tokens = Int32Array.from({ length: 64 }, (_, i) => (i * 13) % vocab);
    const grad = () => {
      const g = tf.grad((w: tf.Tensor) => tf.sum(tf.square(tf.gather(w, tf.tensor1d(tokens, "int32")))));
      return g(tf.tensor2d(table, [vocab, dim]));
    };
    const cpu = await on("cpu", grad);
    expect(tf.getBackend()).toBe("cpu");
    const wasm = await on("wasm", grad);
    expect(tf.getBackend()).toBe("wasm");
    expect(wasm).toEqual(cpu);
  });

  it("a small language-model step (embed, layer norm, attention, MLP, cross-entropy) backprops on wasm", async () => {
    const vocab = 40;
    const d = 12;
    const seq = 6;
    const seed = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k) * 0.3);
    const tokens = Int32Array.from({ length: seq }, (_, i) => (i * 7) % vocab);
    const targets = Int32Array.from({ length: seq }, (_, i) => (i * 7 + 3) % vocab);
    const step = () => {
      const wte = tf.tensor2d(seed(vocab * d, 0.11), [vocab, d]);
      const wqkv = tf.tensor2d(seed(d * 3 * d, 0.07), [d, 3 * d]);
      const wfc = tf.tensor2d(seed(d * 4 * d, 0.05), [d, 4 * d]);
      const wproj = tf.tensor2d(seed(4 * d * d, 0.03), [4 * d, d]);
      const loss = (wte: tf.Tensor, wqkv: tf.Tensor, wfc: tf.Tensor, wproj: tf.Tensor) => {
        const x = tf.gather(wte, tf.tensor1d(tokens, "int32")) as tf.Tensor2D;
        const { mean, variance } = tf.moments(x, -1, true);
        const h = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))) as tf.Tensor2D;
        const [q, k, v] = tf.split(tf.matMul(h, wqkv as tf.Tensor2D), 3, -1) as tf.Tensor2D[];
        const mask = tf.linalg.bandPart(tf.ones([seq, seq]), -1, 0);
        const scores = tf.add(
          tf.div(tf.matMul(q!, k!, false, true), Math.sqrt(d)),
          tf.mul(tf.sub(mask, 1), 1e9),
        );
        const attn = tf.matMul(tf.softmax(scores), v!);
        const mlp = tf.matMul(tf.tanh(tf.matMul(attn, wfc as tf.Tensor2D)), wproj as tf.Tensor2D);
        const y = tf.add(tf.add(x, attn), mlp) as tf.Tensor2D;
        const logits = tf.matMul(y, wte as tf.Tensor2D, false, true);
        return tf.losses.softmaxCrossEntropy(
          tf.oneHot(tf.tensor1d(targets, "int32"), vocab),
          logits,
        ) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads(loss)([wte, wqkv, wfc, wproj]);
      return [value, ...grads];
    };
    const cpu = await on("cpu", step);
    const wasm = await on("wasm", step);
    expect(wasm.length).toBe(5);
    for (const [i, w] of wasm.entries()) {
      const c = cpu[i]!;
      const scale = Math.max(...c.map(Math.abs), 1e-6);
      const maxDiff = Math.max(...w.map((v, j) => Math.abs(v - c[j]!)));
      expect(maxDiff / scale, `output ${i}`).toBeLessThan(1e-4);
    }
  });
});
