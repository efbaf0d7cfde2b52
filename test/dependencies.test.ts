/**
 * The dependency direction of the packages: protocol ← ledger, tensor ← validator ← cli; nothing imports cli.
 * Checked both in each package.json and in every import of every source file.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const allowed: Record<string, string[]> = {
  protocol: [],
  ledger: ["protocol"],
  tensor: ["protocol"],
  validator: ["protocol", "ledger", "tensor"],
  cli: ["protocol", "ledger", "tensor", "validator"],
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules") continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|tsx|js|mjs)$/.test(entry)) out.push(path);
  }
  return out;
}

/** The @deepshard/* packages named by import/export/require/dynamic import in `text`. */
function importedPackages(text: string): string[] {
  const found = new Set<string>();
  const re = /(?:from\s*|import\s*\(?\s*|require\s*\(\s*)["']@deepshard\/([a-z-]+)/g;
  for (const m of text.matchAll(re)) found.add(m[1]!);
  return [...found];
}

describe("package dependency direction", () => {
  it("finds imports of every form", () => {
    expect(
      importedPackages(
        `import { a } from "@deepshard/ledger";\nexport * from '@deepshard/tensor/x';\nawait import("@deepshard/cli");`,
      ).sort(),
    ).toEqual(["cli", "ledger", "tensor"]);
  });

  for (const [name, deps] of Object.entries(allowed)) {
    it(`${name} depends only on ${deps.join(", ") || "no package of ours"}`, () => {
      const dir = join(root, "packages", name);
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      const declared = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies, ...pkg.peerDependencies })
        .filter((d) => d.startsWith("@deepshard/"))
        .map((d) => d.slice("@deepshard/".length));
      expect(declared.filter((d) => !deps.includes(d))).toEqual([]);
      for (const file of sourceFiles(dir)) {
        const bad = importedPackages(readFileSync(file, "utf8")).filter(
          (d) => d !== name && !deps.includes(d),
        );
        expect(bad, `${file} imports ${bad.join(", ")}`).toEqual([]);
      }
    });
  }
});
