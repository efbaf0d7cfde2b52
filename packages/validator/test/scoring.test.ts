import { CRITERIA, dataVoteTxSchema } from "@deepshard/protocol";
import { describe, expect, it } from "vitest";
import {
  CorroborationIndex,
  jaccard,
  MinHashIndex,
  type ScoringContext,
  scoreSubmission,
  signatureOf,
  splitSegments,
} from "../src/index.ts";

const enc = new TextEncoder();
const HELIO =
  "The Earth and the other planets travel around the Sun. The phases of Venus show that Venus orbits the Sun. " +
  "Jupiter has four moons that circle it, so not everything turns around the Earth.";
const GEO =
  "The Sun, the Moon and the planets all travel around the Earth, which stands still at the centre.";

function corpusOf(...texts: string[]): MinHashIndex<string> {
  const index = new MinHashIndex<string>();
  for (const [i, t] of texts.entries()) index.add(`accepted-${i}`, signatureOf(t));
  return index;
}

describe("MinHash", () => {
  it("estimates Jaccard: a copy is 1, re-punctuated or re-cased copies stay near 1, unrelated texts near 0", () => {
    expect(jaccard(signatureOf(HELIO), signatureOf(HELIO))).toBe(1);
    expect(jaccard(signatureOf(HELIO), signatureOf(HELIO.toUpperCase().replaceAll(".", "!")))).toBe(1);
    expect(jaccard(signatureOf(HELIO), signatureOf(GEO))).toBeLessThan(0.1);
    const edited = HELIO.replace("four moons", "several moons");
    const j = jaccard(signatureOf(HELIO), signatureOf(edited));
    expect(j).toBeGreaterThan(0.6);
    expect(j).toBeLessThan(1);
  });

  it("the LSH index finds near-copies and ignores unrelated entries", () => {
    const index = corpusOf(GEO, HELIO);
    expect(index.maxSimilarity(signatureOf(`${HELIO} `))).toBe(1);
    expect(index.query(signatureOf("Bread rises because yeast makes gas in warm dough overnight."))).toEqual(
      [],
    );
  });
});

describe("segments", () => {
  it("splits JSONL by record and plain text by paragraph, with UTF-8 byte offsets", () => {
    const jsonl = enc.encode(`{"text":"héllo wörld"}\n{"text":"second"}\n`);
    const parts = splitSegments(jsonl);
    expect(parts.map((p) => p.text)).toEqual(["héllo wörld", "second"]);
    expect(parts[1]!.offset).toBe(enc.encode(`{"text":"héllo wörld"}\n`).length);

    const text = enc.encode("First para.\n\nSecond para, ünïcode.\n\n\nThird.");
    const paras = splitSegments(text);
    expect(paras.map((p) => p.text)).toEqual(["First para.", "Second para, ünïcode.", "Third."]);
    for (const p of paras)
      expect(new TextDecoder().decode(text.slice(p.offset, p.offset + p.length)).trim()).toBe(p.text);
  });
});

describe("scoreSubmission", () => {
  const ctx = (): ScoringContext => ({ corpus: corpusOf(GEO) });

  it("produces integer basis points that a data.vote accepts", async () => {
    const result = await scoreSubmission(enc.encode(`${HELIO}\n\n${GEO}`), ctx());
    for (const c of CRITERIA) {
      expect(Number.isInteger(result.scores[c])).toBe(true);
      expect(result.scores[c]).toBeGreaterThanOrEqual(0);
      expect(result.scores[c]).toBeLessThanOrEqual(10_000);
    }
    const vote = {
      v: 1,
      type: "data.vote",
      chainId: "test",
      nonce: 1n,
      fee: 0n,
      submission: new Uint8Array(32),
      scores: result.scores,
      ...(result.segmentWeights ? { segmentWeights: result.segmentWeights } : {}),
    };
    expect(() => dataVoteTxSchema.parse(vote, "tx")).not.toThrow();
  });

  it("novelty: a duplicate of accepted data scores near 0, new text near 1", async () => {
    const dup = await scoreSubmission(enc.encode(GEO), ctx());
    const fresh = await scoreSubmission(enc.encode(HELIO), ctx());
    expect(dup.scores.novelty).toBeLessThan(500);
    expect(fresh.scores.novelty).toBeGreaterThan(9_000);
  });

  it("novelty falls when the canonical model already predicts the text well", async () => {
    const surprised = await scoreSubmission(enc.encode(HELIO), {
      ...ctx(),
      surprise: () => 4,
      referenceSurprise: 2,
    });
    const bored = await scoreSubmission(enc.encode(HELIO), {
      ...ctx(),
      surprise: () => 0,
      referenceSurprise: 2,
    });
    expect(surprised.scores.novelty).toBeGreaterThan(9_000);
    expect(bored.scores.novelty).toBeLessThan(5_500);
  });

  it("segment weights mark the copied part of a blob lower than the new part", async () => {
    const blob = enc.encode(`${HELIO}\n\n${GEO}`);
    const result = await scoreSubmission(blob, ctx());
    expect(result.segmentWeights).toHaveLength(2);
    const [first, second] = result.segmentWeights!;
    expect(first!.weight).toBe(10_000);
    expect(second!.weight).toBeLessThan(first!.weight);
    expect(second!.offset).toBeGreaterThanOrEqual(first!.offset + first!.length);
  });

  it("a blob that repeats itself is not novel the second time", async () => {
    const result = await scoreSubmission(enc.encode(`${HELIO}\n\n${HELIO}`), ctx());
    expect(result.segments[0]!.scores.novelty).toBeGreaterThan(9_000);
    expect(result.segments[1]!.scores.novelty).toBeLessThan(500);
  });

  it("reproducibility counts other informants' independent submissions of the same claims, never the author", async () => {
    const corroboration = new CorroborationIndex();
    corroboration.addSubmission("alice", HELIO);
    const own = await scoreSubmission(enc.encode(HELIO), { ...ctx(), corroboration, informant: "alice" });
    expect(own.scores.reproducibility).toBe(0);
    corroboration.addSubmission("bob", HELIO);
    const one = await scoreSubmission(enc.encode(HELIO), { ...ctx(), corroboration, informant: "alice" });
    corroboration.addSubmission("carol", HELIO);
    const two = await scoreSubmission(enc.encode(HELIO), { ...ctx(), corroboration, informant: "alice" });
    expect(one.scores.reproducibility).toBe(5_000);
    expect(two.scores.reproducibility).toBe(10_000);
    expect(two.scores.truthfulness).toBeGreaterThan(one.scores.truthfulness);
  });

  it("objectivity falls with opinion markers; alignment falls on explicit incitement", async () => {
    const calm = await scoreSubmission(enc.encode(HELIO), ctx());
    const ranty = await scoreSubmission(
      enc.encode("I think this is the WORST idea ever! Absolutely terrible and stupid!"),
      ctx(),
    );
    expect(calm.scores.objectivity).toBe(10_000);
    expect(ranty.scores.objectivity).toBeLessThan(3_000);
    const hateful = await scoreSubmission(enc.encode("They are vermin. We should kill all of them."), ctx());
    expect(hateful.scores.alignment).toBe(0);
    expect(calm.scores.alignment).toBe(7_500);
  });

  it("an empty or non-UTF-8 blob scores zero on every criterion", async () => {
    for (const blob of [new Uint8Array(0), new Uint8Array([0xff, 0xfe, 0x00])]) {
      const r = await scoreSubmission(blob, ctx());
      expect(Object.values(r.scores)).toEqual([0, 0, 0, 0, 0]);
    }
  });

  it("any criterion's scorer can be replaced", async () => {
    const r = await scoreSubmission(enc.encode(HELIO), ctx(), { scorers: { objectivity: () => 0.25 } });
    expect(r.scores.objectivity).toBe(2_500);
  });
});
