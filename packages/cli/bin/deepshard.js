#!/usr/bin/env node
// The deepshard command. Its sources are TypeScript run by Node's built-in type stripping (Node >= 22.18).
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `deepshard needs Node.js >= 22.18 (this is ${process.version}). ` +
      "Run it through npm (npx deepshard ...) so the repository's own Node 24 is used.\n",
  );
  process.exit(1);
}
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name !== "ExperimentalWarning") process.stderr.write(`${w.name}: ${w.message}\n`);
});
const { main } = await import("../src/main.ts");
await main(process.argv);
