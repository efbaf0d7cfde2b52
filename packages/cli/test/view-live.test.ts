/**
 * The live view against a real daemon (validator and informant roles): its source follows the
 * node's events and API, and the rendered frame shows the height, the validators, a submission
 * with its vote, the price and the balances.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { createElement } from "react";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InformantClient } from "../src/node/roles/informant/client.ts";
import { LiveView, ViewSource, ViewStore } from "../src/view/index.ts";
import { GOOD_TEXT, makeDataNetwork, type RunningNode, startDataNode, until } from "./roles-data-fixture.ts";

let dir: string;
let node: RunningNode;
let informant: InformantClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-view-"));
  const net = await makeDataNetwork(dir, [true]);
  node = await startDataNode(net, 0, { roles: ["validator", "informant"], informant: { maxBytes: 4_096 } });
  informant = new InformantClient(node.daemon.apiUrl);
  await until(() => node.daemon.height >= 1);
});

afterAll(async () => {
  await informant?.close();
  await node?.daemon.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the live view of a running node", () => {
  it("shows the height, the validator, a submission and its vote, and the price", async () => {
    const daemon = node.daemon;
    const store = new ViewStore("deepshard node", [], { notifyMs: 20 });
    const source = new ViewSource({
      nodes: [
        {
          name: "node",
          api: daemon.apiUrl,
          roles: ["validator", "informant"],
          address: daemon.account.address,
        },
      ],
      subscribe: (listener) => daemon.events.subscribe(({ event }) => listener("node", event)),
      dispatch: store.dispatch,
      pollMs: 200,
    });
    const ui = render(createElement(LiveView, { store, onQuit: () => {} }));
    try {
      source.start();
      const sent = await informant.submit(new TextEncoder().encode(GOOD_TEXT), { stake: 100n });
      await until(() => {
        const s = store.getState().submissions.find((x) => x.id === sent.submission);
        return s !== undefined && s.status === "accepted" && s.votes.some((v) => v.combined !== undefined);
      }, 20_000);
      await until(
        () => store.getState().accounts.some((a) => a.balance > 0n) && store.getState().price !== undefined,
      );
      // Freeze the state (the price rises with every block) and let the view draw it.
      await source.stop();
      store.flush();
      const state = store.getState();
      const price = `price ${state.price!.toLocaleString("en-US")}`;
      await until(() => {
        const drawn = ui.lastFrame() ?? "";
        return drawn.includes("accepted") && drawn.includes(price);
      }, 5_000);
      const frame = ui.lastFrame()!;
      expect(frame).toMatch(new RegExp(`height ${state.height - 1}|height ${state.height}`));
      expect(frame).toContain(price);
      expect(frame).toContain("Validators 1");
      expect(frame).toMatch(/node\s+100,000\s+100\.0%/);
      expect(frame).toContain(`${sent.submission.slice(0, 8)}…`);
      expect(frame).toMatch(/1 votes: node \d+%/);
      expect(frame).toMatch(/accepted\s+value \d+\/\d+ reward \d+/);
      const balance = state.accounts.find((a) => a.address === daemon.account.address)!.balance;
      expect(frame).toContain(balance.toLocaleString("en-US"));
      expect(state.supply?.holds).toBe(true);
    } finally {
      await source.stop();
      ui.unmount();
      store.close();
    }
  });
});
