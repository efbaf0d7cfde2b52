/**
 * MinHash signatures over word shingles and a banded LSH index, for near-duplicate detection.
 * Every validator uses the same fixed seeds, so two validators agree on every similarity.
 */

/** Number of hash functions in a signature; estimates of Jaccard have standard error ≈ 1/√K ≈ 0.09. */
export const MINHASH_SIZE = 128;
const BANDS = 32;
const ROWS = MINHASH_SIZE / BANDS;

const SEEDS = (() => {
  const seeds = new Uint32Array(MINHASH_SIZE);
  let x = 0x9e3779b9;
  for (let i = 0; i < MINHASH_SIZE; i++) {
    x = mix32(x + 0x6d2b79f5);
    seeds[i] = x;
  }
  return seeds;
})();

/** murmur3's 32-bit finalizer: a fast bijective mix. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over a string's UTF-16 code units, then mixed. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return mix32(h);
}

/** Lower-cased words of a text, punctuation dropped (so re-punctuated copies still match). */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Hashes of the word n-grams of a text (the words themselves when it is shorter than n). */
export function shingles(text: string, n = 3): Set<number> {
  const w = words(text);
  const out = new Set<number>();
  if (w.length === 0) return out;
  if (w.length < n) {
    out.add(hashString(w.join(" ")));
    return out;
  }
  for (let i = 0; i + n <= w.length; i++) out.add(hashString(w.slice(i, i + n).join(" ")));
  return out;
}

export type MinHashSignature = Uint32Array;

/** The signature of a shingle set; an empty set gives all-ones (similar to nothing but itself). */
export function minhash(shingleSet: Set<number>): MinHashSignature {
  const sig = new Uint32Array(MINHASH_SIZE).fill(0xffffffff);
  for (const s of shingleSet) {
    for (let i = 0; i < MINHASH_SIZE; i++) {
      const h = mix32(s ^ SEEDS[i]!);
      if (h < sig[i]!) sig[i] = h;
    }
  }
  return sig;
}

export function signatureOf(text: string): MinHashSignature {
  return minhash(shingles(text));
}

/** Estimated Jaccard similarity: the fraction of positions where the signatures agree. */
export function jaccard(a: MinHashSignature, b: MinHashSignature): number {
  let same = 0;
  for (let i = 0; i < MINHASH_SIZE; i++) if (a[i] === b[i]) same++;
  return same / MINHASH_SIZE;
}

/**
 * A set of signatures with LSH banding (32 bands × 4 rows: a pair at Jaccard 0.5 shares a band with
 * probability 0.87, at 0.3 with 0.23), so a query compares against likely matches only.
 */
export class MinHashIndex<Id = string> {
  readonly #signatures = new Map<Id, MinHashSignature>();
  readonly #buckets = new Map<string, Id[]>();

  get size(): number {
    return this.#signatures.size;
  }

  add(id: Id, signature: MinHashSignature): void {
    if (this.#signatures.has(id)) return;
    this.#signatures.set(id, signature);
    for (const key of bandKeys(signature)) {
      const list = this.#buckets.get(key);
      if (list) list.push(id);
      else this.#buckets.set(key, [id]);
    }
  }

  /** Entries sharing at least one band with `signature`, with their estimated Jaccard, best first. */
  query(signature: MinHashSignature, filter?: (id: Id) => boolean): Array<{ id: Id; similarity: number }> {
    const seen = new Set<Id>();
    for (const key of bandKeys(signature)) {
      for (const id of this.#buckets.get(key) ?? []) seen.add(id);
    }
    const out: Array<{ id: Id; similarity: number }> = [];
    for (const id of seen) {
      if (filter && !filter(id)) continue;
      out.push({ id, similarity: jaccard(signature, this.#signatures.get(id)!) });
    }
    return out.sort((a, b) => b.similarity - a.similarity);
  }

  /** The highest estimated Jaccard against any entry (0 when no entry shares a band). */
  maxSimilarity(signature: MinHashSignature): number {
    return this.query(signature)[0]?.similarity ?? 0;
  }
}

function bandKeys(signature: MinHashSignature): string[] {
  const keys: string[] = [];
  for (let b = 0; b < BANDS; b++) {
    let h = b;
    for (let r = 0; r < ROWS; r++) h = mix32(h ^ signature[b * ROWS + r]!);
    keys.push(`${b}:${h}`);
  }
  return keys;
}
