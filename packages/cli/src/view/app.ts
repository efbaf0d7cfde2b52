/**
 * The live view's ink components. Written with `createElement` rather than JSX so that Node runs
 * them as they are (its type stripping does not compile JSX).
 */
import { Box, Text, useInput, useStdin } from "ink";
import { createElement as h, type ReactNode, useSyncExternalStore } from "react";
import { accountName, type RoundRow, type SubmissionRow, type ViewState } from "./state.ts";
import type { ViewStore } from "./store.ts";

const ROWS = { validators: 8, accounts: 10, submissions: 6, rounds: 3, log: 6 };

const fmt = (n: bigint | number | undefined): string => (n === undefined ? "–" : n.toLocaleString("en-US"));
const short = (id: string | undefined): string => (id ? `${id.slice(0, 8)}…` : "–");
const col = (text: string, width: number): string =>
  text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
const rcol = (text: string, width: number): string => text.padStart(width);
const pct = (part: bigint, total: bigint): string =>
  total === 0n ? "–" : `${(Number((part * 10_000n) / total) / 100).toFixed(1)}%`;

function Panel(props: { title: string; grow?: number; children?: ReactNode }) {
  return h(
    Box,
    { flexDirection: "column", borderStyle: "round", paddingX: 1, flexGrow: props.grow ?? 1, flexBasis: 0 },
    h(Text, { bold: true, color: "cyan" }, props.title),
    props.children,
  );
}

function Line(props: { children?: ReactNode; color?: string; dim?: boolean }) {
  return h(
    Text,
    { wrap: "truncate-end", ...(props.color ? { color: props.color } : {}), dimColor: props.dim === true },
    props.children,
  );
}

function Header({ state }: { state: ViewState }) {
  const c = state.consensus;
  const parts = [
    state.chainId ? `chain ${state.chainId}` : "connecting…",
    `height ${state.height} final`,
    c ? `consensus ${c.height}/r${c.round} ${c.step}` : undefined,
    state.peers === undefined ? undefined : `${state.peers} peers`,
    state.mempool === undefined ? undefined : `mempool ${state.mempool}`,
    `price ${fmt(state.price)}`,
    state.supply
      ? `supply ${fmt(state.supply.actual)} ${state.supply.holds ? "✓" : "✗ MISMATCH"}`
      : undefined,
  ].filter(Boolean);
  return h(
    Box,
    { justifyContent: "space-between", paddingX: 1 },
    h(
      Box,
      { flexShrink: 1 },
      h(Text, { wrap: "truncate-end" }, h(Text, { bold: true }, state.title), `  ${parts.join(" · ")}`),
    ),
    h(Box, { flexShrink: 0, marginLeft: 2 }, h(Text, { dimColor: true }, "q / Ctrl-C stops")),
  );
}

function Validators({ state }: { state: ViewState }) {
  const rows = state.validators
    .slice(0, ROWS.validators)
    .map((v) =>
      h(
        Line,
        { key: v.address },
        `${col(accountName(state, v.address), 12)}${rcol(fmt(v.power), 11)}${rcol(pct(v.power, state.totalPower), 7)}`,
      ),
    );
  const more = state.validators.length - rows.length;
  return h(
    Panel,
    { title: `Validators ${state.validators.length} · power ${fmt(state.totalPower)}` },
    h(Line, { dim: true }, `${col("validator", 12)}${rcol("stake", 11)}${rcol("share", 7)}`),
    ...rows,
    more > 0 ? h(Line, { dim: true }, `… ${more} more`) : null,
  );
}

function Balances({ state }: { state: ViewState }) {
  const rows = state.accounts
    .slice(0, ROWS.accounts)
    .map((a) =>
      h(
        Line,
        { key: a.address },
        `${col(accountName(state, a.address), 12)}${rcol(fmt(a.balance), 12)}${rcol(a.bonded > 0n ? fmt(a.bonded) : "", 10)}`,
      ),
    );
  return h(
    Panel,
    { title: "Balances" },
    h(Line, { dim: true }, `${col("account", 12)}${rcol("balance", 12)}${rcol("bonded", 10)}`),
    ...rows,
  );
}

function Weights({ state }: { state: ViewState }) {
  const r = state.replication;
  const rep = r?.replication;
  const lines = [
    h(
      Line,
      { key: "id" },
      `canonical ${short(state.canonicalWeightsId)}  version ${state.weightsVersions ?? "–"}`,
    ),
    h(Line, { key: "price" }, `price ${fmt(state.price)}  value ${fmt(state.accumulatedValue)}`),
  ];
  if (r && rep) {
    const healthy = rep.underReplicated === 0 && rep.missing === 0;
    lines.push(
      h(
        Line,
        { key: "rep", color: healthy ? "green" : rep.missing > 0 ? "red" : "yellow" },
        `${r.chunkCount ?? "?"} chunks · min ${rep.min}/${rep.target} copies · ${rep.underReplicated} under · ${rep.missing} missing`,
      ),
      h(
        Line,
        { key: "placed" },
        `placed ${rep.placed}/${r.chunkCount ?? "?"} on ${rep.storageSet.length} storage nodes`,
      ),
      ...r.holders
        .slice(0, 6)
        .map((holder) =>
          h(
            Line,
            { key: holder.address, dim: true },
            `${col(accountName(state, holder.address), 16)}${rcol(String(holder.chunks), 6)} chunks`,
          ),
        ),
    );
  } else {
    lines.push(h(Line, { key: "none", dim: true }, "no shard placement known (no storage node in view)"));
  }
  return h(Panel, { title: "Weights · shards" }, ...lines);
}

const STATUS_COLOR: Record<string, string> = {
  open: "yellow",
  accepted: "green",
  rejected: "red",
  failed: "red",
  expired: "gray",
  closed: "gray",
};

function submissionLines(state: ViewState, s: SubmissionRow): ReactNode[] {
  const votes = s.votes
    .map(
      (v) =>
        `${accountName(state, v.voter)}${v.combined === undefined ? "" : ` ${(v.combined / 100).toFixed(0)}%`}`,
    )
    .join(", ");
  const outcome =
    s.status === "open"
      ? s.closesAt === undefined
        ? ""
        : `closes at ${s.closesAt}`
      : s.value === undefined
        ? ""
        : `value ${s.value}/${s.threshold ?? "?"}${s.reward === undefined ? "" : ` reward ${fmt(s.reward)}`}`;
  const size = s.size === undefined ? "–" : `${s.size} B`;
  return [
    h(
      Line,
      { key: s.id, color: STATUS_COLOR[s.status] ?? "white" },
      `${col(short(s.id), 11)}${col(accountName(state, s.informant), 14)}${rcol(fmt(s.stake), 9)}${rcol(size, 10)}  ${col(s.status, 9)}${outcome}`,
    ),
    h(Line, { key: `${s.id}-votes`, dim: true }, `  ${s.votes.length} votes${votes ? `: ${votes}` : ""}`),
  ];
}

function Submissions({ state }: { state: ViewState }) {
  const open = state.submissions.filter((s) => s.status === "open").length;
  const shown = state.submissions.slice(-ROWS.submissions);
  return h(
    Panel,
    { title: `Data submissions · ${open} open · ${state.submissions.length} seen` },
    h(
      Line,
      { dim: true },
      `${col("id", 11)}${col("informant", 14)}${rcol("stake", 9)}${rcol("size", 10)}  ${col("status", 9)}outcome`,
    ),
    ...(shown.length === 0
      ? [h(Line, { key: "none", dim: true }, "none yet")]
      : shown.flatMap((s) => submissionLines(state, s))),
  );
}

function roundLines(state: ViewState, r: RoundRow): ReactNode[] {
  const accepts = r.verdicts.reduce((a, v) => a + v.accepts, 0);
  const rejects = r.verdicts.reduce((a, v) => a + v.rejects, 0);
  const reasons = [...new Set(r.verdicts.flatMap((v) => v.reasons))];
  const head = `round ${r.id}${r.phase ? ` · ${r.phase}` : ""}${r.verdictEnd === undefined ? "" : ` · ends ${r.verdictEnd}`} · ${r.trainers.length} trainers · ${r.verdicts.length} verdicts ${accepts}✓ ${rejects}✗${reasons.length ? ` ${reasons.join(",")}` : ""}`;
  return [
    h(Line, { key: `r${r.id}`, color: "white" }, head),
    ...r.trainers.map((t) =>
      h(
        Line,
        {
          key: `r${r.id}-${t.trainer}`,
          color: t.outcome === "slashed" ? "red" : t.outcome === "rewarded" ? "green" : "gray",
        },
        `  ${col(accountName(state, t.trainer), 14)}${col(t.weightsId ? `revealed ${short(t.weightsId)}` : t.committed ? "committed" : t.trained ? "trained" : "training", 22)}${t.outcome ?? ""}${t.canonical ? " · canonical" : ""}`,
      ),
    ),
  ];
}

function Rounds({ state }: { state: ViewState }) {
  const shown = state.rounds.slice(-ROWS.rounds);
  return h(
    Panel,
    { title: "Training rounds" },
    ...(shown.length === 0
      ? [h(Line, { key: "none", dim: true }, "no round yet")]
      : shown.flatMap((r) => roundLines(state, r))),
  );
}

function Recent({ state }: { state: ViewState }) {
  const errors = Object.entries(state.errors).map(([node, message]) =>
    h(Line, { key: `e-${node}`, color: "red" }, `${node}: ${message}`),
  );
  return h(
    Panel,
    { title: "Recent" },
    ...errors,
    ...state.log
      .slice(-ROWS.log)
      .map((line, i) => h(Line, { key: `l${state.log.length - i}`, dim: true }, line)),
  );
}

/** The whole screen for one state; pure, for tests and for `LiveView`. */
export function NetworkView({ state }: { state: ViewState }) {
  return h(
    Box,
    { flexDirection: "column" },
    h(Header, { state }),
    h(Box, { flexDirection: "row" }, h(Validators, { state }), h(Balances, { state }), h(Weights, { state })),
    h(Submissions, { state }),
    h(Box, { flexDirection: "row" }, h(Rounds, { state }), h(Recent, { state })),
  );
}

function QuitKeys({ onQuit }: { onQuit: () => void }) {
  useInput((input, key) => {
    if (input === "q" || (key.ctrl && input === "c")) onQuit();
  });
  return null;
}

/** The view bound to a store; `q` or Ctrl-C calls `onQuit` (raw mode swallows the SIGINT). */
export function LiveView({ store, onQuit }: { store: ViewStore; onQuit: () => void }) {
  const state = useSyncExternalStore(store.subscribe, store.getState);
  const { isRawModeSupported } = useStdin();
  return h(
    Box,
    { flexDirection: "column" },
    isRawModeSupported ? h(QuitKeys, { onQuit }) : null,
    h(NetworkView, { state }),
  );
}
