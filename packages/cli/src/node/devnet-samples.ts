/**
 * The text the devnet's demo submits: short plain statements of well-known facts, written for this
 * project (no third-party text), about things the genesis model's corpus (arithmetic, calendars,
 * shapes, animal legs; see @deepshard/tensor genesis.ts) never mentions, so each one is new to it.
 * The first is the good informant's; the others feed later rounds when the demo repeats.
 */
export const DEVNET_SAMPLES: readonly string[] = [
  [
    "The earth takes about one year to go once around the sun, and about one day to turn once on its axis.",
    "The moon takes about four weeks to go once around the earth, and it shines because it reflects sunlight.",
    "Mercury is the planet closest to the sun. Jupiter is the largest planet of the solar system.",
    "Light from the sun takes about eight minutes to reach the earth.",
    "",
    "Air is mostly nitrogen, with about one fifth oxygen. People breathe in oxygen and breathe out carbon dioxide.",
    "Green plants use sunlight to turn water and carbon dioxide into sugar, and they give off oxygen.",
    "",
    "A healthy adult human heart beats about sixty to one hundred times a minute at rest.",
    "Blood carries oxygen from the lungs to every part of the body.",
  ].join("\n"),
  [
    "Sound travels through air at about three hundred and forty metres per second.",
    "Sound cannot travel through empty space, because there is nothing there to carry it.",
    "Light travels much faster than sound, so lightning is seen before its thunder is heard.",
    "",
    "A rainbow appears when sunlight passes through raindrops and is split into its colours.",
    "The colours of a rainbow are red, orange, yellow, green, blue, indigo and violet.",
  ].join("\n"),
  [
    "Salt water freezes at a lower temperature than fresh water.",
    "Most of the surface of the earth is covered by oceans, and ocean water is salty.",
    "Rivers carry fresh water from hills and mountains down to lakes and to the sea.",
    "",
    "A magnet attracts iron. The north pole of one magnet pulls the south pole of another.",
    "A compass needle is a small magnet, and it points to the north.",
  ].join("\n"),
];

/**
 * The second informant's junk: the first sample again, its paragraphs spaced differently, so it
 * has another content hash but adds nothing the network does not already hold.
 */
export function duplicateOf(text: string): string {
  return `${text.replaceAll("\n\n", "\n\n\n")}\n`;
}
