/**
 * tfjs-core's Node bundle registers no gradient functions (the `@tensorflow/tfjs` union package
 * normally does, via `dist/register_all_gradients`). That file is ESM with extension-less relative
 * imports, which Node's resolver rejects, so a resolve hook adds the `.js` for tfjs-core's own files
 * only; the gradients then register into the engine's global registry shared with the Node bundle.
 */
import { registerHooks } from "node:module";
import * as tf from "@tensorflow/tfjs-core";

let loading: Promise<void> | undefined;

/** Registers every tfjs-core gradient function once per process; needed before tf.grad/variableGrads. */
export function ensureGradients(): Promise<void> {
  loading ??= load();
  return loading;
}

async function load(): Promise<void> {
  if (tf.getGradient("Sum") !== undefined) return;
  const hooks = registerHooks({
    resolve(specifier, context, nextResolve) {
      const fromCore = context.parentURL?.includes("/@tensorflow/tfjs-core/dist/") ?? false;
      if (fromCore && specifier.startsWith(".") && !specifier.endsWith(".js")) {
        return nextResolve(`${specifier}.js`, context);
      }
      return nextResolve(specifier, context);
    },
  });
  try {
    await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  } finally {
    hooks.deregister();
  }
}
