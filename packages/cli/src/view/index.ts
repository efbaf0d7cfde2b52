/**
 * The live terminal view of `deepshard devnet` and `deepshard node start`:
 *
 *   const view = startLiveView({ title: "deepshard devnet", onQuit: stop });
 *   view.attach(nodes, (listener) => devnet.subscribe(({ node, event }) => listener(node, event)));
 *   …
 *   await view.stop();
 */
import { render } from "ink";
import { createElement } from "react";
import { LiveView } from "./app.ts";
import { type EventSubscriber, ViewSource } from "./source.ts";
import type { ViewNode } from "./state.ts";
import { ViewStore } from "./store.ts";

export { LiveView, NetworkView } from "./app.ts";
export { type EventSubscriber, ViewSource, type ViewSourceOptions } from "./source.ts";
export * from "./state.ts";
export { ViewStore } from "./store.ts";

export interface LiveViewOptions {
  title: string;
  /** Called on `q` or Ctrl-C (the terminal is in raw mode, so no SIGINT arrives). */
  onQuit: () => void;
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
  pollMs?: number;
}

export interface LiveViewHandle {
  store: ViewStore;
  /** Starts following `nodes`: their events and their API. */
  attach(nodes: ViewNode[], subscribe: EventSubscriber): void;
  /** Stops polling and leaves the screen as it was before. */
  stop(): Promise<void>;
}

export function startLiveView(options: LiveViewOptions): LiveViewHandle {
  const store = new ViewStore(options.title);
  const instance = render(createElement(LiveView, { store, onQuit: options.onQuit }), {
    stdout: options.stdout ?? process.stdout,
    stdin: options.stdin ?? process.stdin,
    exitOnCtrlC: false,
    alternateScreen: true,
  });
  let source: ViewSource | undefined;
  let stopped: Promise<void> | undefined;
  return {
    store,
    attach(nodes, subscribe) {
      source = new ViewSource({
        nodes,
        subscribe,
        dispatch: store.dispatch,
        ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
      });
      source.start();
    },
    stop() {
      stopped ??= (async () => {
        await source?.stop();
        store.flush();
        instance.unmount();
        await instance.waitUntilExit();
        store.close();
      })();
      return stopped;
    },
  };
}
