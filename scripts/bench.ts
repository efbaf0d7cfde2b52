/**
 * `npm run bench [-- --json] [--quick] [package ...]`: runs every package's `bench/index.ts` and prints one
 * table, or one JSON object per line ({package, metric, value, unit, target, pass}) with `--json`.
 * Ratios are computed from numbers measured in the same run. Exits 1 when a target is missed only with --strict.
 */
import { existsSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BenchModule, BenchRow } from "@deepshard/protocol";

const packages = ["protocol", "ledger", "tensor", "validator", "cli"];
const args = process.argv.slice(2);
const json = args.includes("--json");
const quick = args.includes("--quick");
const strict = args.includes("--strict");
const only = args.filter((a) => !a.startsWith("--"));
const root = join(import.meta.dirname, "..");
const log = (line: string) => process.stderr.write(`${line}\n`);

const rows: BenchRow[] = [];
for (const name of packages) {
  if (only.length > 0 && !only.includes(name)) continue;
  const file = join(root, "packages", name, "bench", "index.ts");
  if (!existsSync(file)) continue;
  log(`# ${name}`);
  const mod = (await import(pathToFileURL(file).href)) as { default: BenchModule };
  for (const row of await mod.default({ quick, log })) {
    rows.push(row);
    if (json) process.stdout.write(`${JSON.stringify({ target: null, pass: null, ...row })}\n`);
  }
}

if (!json) {
  const cpu = cpus();
  const header = ["package", "metric", "value", "unit", "target", "pass"];
  const table = rows.map((r) => [
    r.package,
    r.metric,
    formatNumber(r.value),
    r.unit,
    r.target ?? "",
    r.pass === undefined ? "" : r.pass ? "yes" : "NO",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(
    `machine: ${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
  );
  console.log(line(header));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const t of table) console.log(line(t));
}
if (strict && rows.some((r) => r.pass === false)) process.exitCode = 1;

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString("en-US");
  return v.toPrecision(3);
}
