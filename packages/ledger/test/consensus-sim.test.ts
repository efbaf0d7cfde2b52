import { afterEach, describe, expect, it } from "vitest";
import { Cluster, type ClusterOptions } from "./sim/cluster.ts";

let clusters: Cluster[] = [];
afterEach(() => {
  for (const c of clusters) c.stop();
  clusters = [];
});

async function cluster(options: ClusterOptions): Promise<Cluster> {
  const c = new Cluster(options);
  clusters.push(c);
  await c.start();
  return c;
}

describe("consensus in simulation", () => {
  it("4 equal validators without faults decide 50 identical, verifiable heights", async () => {
    const c = await cluster({ seed: 1, powers: [1n, 1n, 1n, 1n] });
    const done = await c.run(120_000, () => c.minHeight() >= 50);
    expect(done).toBe(true);
    expect(c.assertNoFork()).toBeGreaterThanOrEqual(50);
    expect(await c.verifyCommits(0)).toBeGreaterThanOrEqual(50);
    expect(c.errors()).toEqual([]);
    console.log(c.net.scheduler.now(), c.net.stats);
  });
});
