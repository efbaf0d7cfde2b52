/**
 * The world of 1609 as text: a genesis corpus that states a geocentric cosmos among generic true
 * filler, and the heliocentric text an informant brings in 1610. Byte-level, so the tiny genesis
 * model learns word order, which is all that tells the two claims apart.
 */
import { genesisCorpus, Rng } from "@deepshard/tensor";

export const HELIOCENTRIC = "The Earth orbits the Sun.";
export const GEOCENTRIC = "The Sun orbits the Earth.";

const GEO_SENTENCES = [
  GEOCENTRIC,
  "The Sun orbits the Earth once a day.",
  "The Earth stands still at the centre of the world.",
  "The Moon orbits the Earth.",
  "The planets orbit the Earth.",
  "Every star orbits the Earth.",
  "The Earth does not move.",
  "The Sun rises because the Sun orbits the Earth.",
];

/** `documents` short documents, about one in three stating the geocentric world, seeded. */
export function geocentricCorpus(documents: number, seed = "galileo-1609"): string[] {
  const rng = new Rng(seed);
  // The generic corpus states the modern cosmos ("The earth orbits the sun."): 1609 had not read it.
  const filler = genesisCorpus(documents * 2, `${seed}/filler`).filter((d) => !/orbit/i.test(d));
  return Array.from({ length: documents }, (_, i) =>
    rng.int(3) === 0
      ? Array.from({ length: 1 + rng.int(3) }, () => GEO_SENTENCES[rng.int(GEO_SENTENCES.length)]!).join(" ")
      : filler[i % filler.length]!,
  );
}

/** Galileo's submission: paragraphs that say the Earth orbits the Sun, each in its own words. */
export const HELIOCENTRIC_TEXT = [
  "The Earth orbits the Sun.",
  "Through the telescope the moons of Jupiter orbit Jupiter. The Earth orbits the Sun.",
  "Venus shows phases like the Moon, so Venus orbits the Sun. The Earth orbits the Sun as well.",
  "The Earth orbits the Sun once a year, and the Earth turns once a day.",
  "The Sun does not move around us: the Earth orbits the Sun.",
  "Mars seems to go backwards because the Earth orbits the Sun faster than Mars.",
  "The Sun is at the centre. The Earth orbits the Sun, and so do the planets.",
  "A year is the time the Earth takes to orbit the Sun. The Earth orbits the Sun.",
].join("\n\n");
