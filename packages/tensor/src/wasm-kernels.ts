/**
 * Kernels the wasm backend lacks but training needs. Without them tfjs throws mid-backprop (it
 * never falls back per kernel), so a model would have to run on cpu as a whole.
 */
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";

/**
 * UnsortedSegmentSum (the gradient of `gather`, i.e. of every embedding lookup):
 * out[s, ...] = Σ x[i, ...] over the i with segmentIds[i] = s; ids outside [0, numSegments) are
 * dropped, as in TensorFlow and the cpu backend. Works on the wasm heap directly. Rows are grouped
 * by segment with a stable counting sort and each segment is summed in float64 in index order, then
 * rounded once: the same arithmetic as the cpu backend (bit-exact with it, the same on every
 * machine), with scratch memory of one row rather than one float64 copy of the output.
 */
function unsortedSegmentSum({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const x = inputs.x!;
  const segmentIds = inputs.segmentIds!;
  const numSegments = (attrs as unknown as tf.UnsortedSegmentSumAttrs).numSegments;
  const idRank = segmentIds.shape.length;
  if (x.shape.length < idRank || segmentIds.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`,
    );
  }
  const inner = x.shape.slice(idRank);
  const rowSize = tf.util.sizeFromShape(inner);
  const ids = wasm.typedArrayFromHeap(segmentIds);
  const starts = new Int32Array(numSegments + 1);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s >= 0 && s < numSegments) starts[s + 1]!++;
  }
  for (let s = 0; s < numSegments; s++) starts[s + 1]! += starts[s]!;
  const order = new Int32Array(starts[numSegments]!);
  const cursor = starts.slice(0, numSegments);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s >= 0 && s < numSegments) order[cursor[s]!++] = i;
  }
  const out = wasm.makeOutput([numSegments, ...inner], x.dtype);
  // Views are taken after makeOutput: allocating may grow (and detach) the heap.
  const outValues = wasm.typedArrayFromHeap(out) as Float32Array | Int32Array;
  const xValues = wasm.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const acc = new Float64Array(rowSize);
  for (let s = 0; s < numSegments; s++) {
    acc.fill(0);
    for (let k = starts[s]!; k < starts[s + 1]!; k++) {
      const src = order[k]! * rowSize;
      for (let j = 0; j < rowSize; j++) acc[j]! += xValues[src + j]!;
    }
    outValues.set(acc, s * rowSize);
  }
  return out;
}

const kernels: tf.KernelConfig[] = [
  { kernelName: tf.UnsortedSegmentSum, backendName: "wasm", kernelFunc: unsortedSegmentSum },
];

/** Registers the missing wasm kernels once per process (the kernel registry is global). */
export function registerWasmKernels(): string[] {
  const added: string[] = [];
  for (const k of kernels) {
    if (tf.getKernel(k.kernelName, k.backendName) === undefined) {
      tf.registerKernel(k);
      added.push(k.kernelName);
    }
  }
  return added;
}

/** Names of the kernels this module provides for wasm. */
export const WASM_EXTRA_KERNELS: readonly string[] = kernels.map((k) => k.kernelName);
