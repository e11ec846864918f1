// Overview: mode, capital stage, kill switch and run; sync health and detection latency from the
// status; the gate to the next capital stage (each condition measured, required, pass/fail);
// self-scoring (what became of the opportunities, who took the rest); the PnL chart by day.

import { drawPnlChart } from "./chart.js";
import { $, h, setText, setTone } from "./dom.js";
import { formatAge, formatEth, formatInt, formatMs, formatTime, percentile } from "./format.js";

const LAG_WARN = 2; // blocks behind the head before sync health degrades
const LAG_BAD = 10;
const HEARTBEAT_WARN_S = 30;
const HEARTBEAT_BAD_S = 120;
const LATENCY_SAMPLES = 500;
const STAGE_REFRESH_MS = 5_000; // the stage gate and the scores are read again at most this often
const OUTCOMES = ["captured_us", "captured_other", "still_open", "closed", "never_real"];

export class OverviewView {
  constructor(ctx) {
    this.ctx = ctx;
    this.visible = false;
    this.latencies = new Map(); // opportunity id -> latency in ms
    this.pnlTimer = null;
    ctx.on("status", (status) => {
      this.renderStatus(status);
      if (this.visible) this.loadStage();
    });
    ctx.on("opportunity", (opp) => this.addLatency(opp));
    ctx.on("opportunities-loaded", (items) => items.forEach((opp) => this.addLatency(opp)));
    ctx.on("bundle", () => this.visible && this.schedulePnl());
    window.addEventListener("resize", () => this.visible && this.drawChart());
    for (const button of document.querySelectorAll("#pnl-series button")) {
      button.addEventListener("click", () => {
        this.series = button.dataset.series;
        this.drawChart();
      });
    }
  }

  show() {
    this.visible = true;
    if (this.ctx.status) this.renderStatus(this.ctx.status);
    this.loadPnl();
    this.loadStage(true);
    if (this.latencies.size === 0) this.loadLatencies();
  }

  /** The gate to the next capital stage, from /api/v1/stage (at most every few seconds). */
  async loadStage(now = false) {
    const at = Date.now();
    if (!now && this.stageAt && at - this.stageAt < STAGE_REFRESH_MS) return;
    this.stageAt = at;
    try {
      this.renderStage(await this.ctx.api.get("/api/v1/stage", {}, { quiet: true }));
    } catch (error) {
      this.renderStageError(error?.message ?? String(error));
    }
    try {
      this.renderScores(await this.ctx.api.get("/api/v1/scores", {}, { quiet: true }));
    } catch (error) {
      setText("ov-score-run", error?.message ?? String(error));
    }
  }

  /** Self-scoring of the newest run, from /api/v1/scores. */
  renderScores(s) {
    const badge = $("ov-score-badge");
    const rate = s.capturable_capture_rate;
    badge.textContent = rate === null || rate === undefined ? "nothing scored" : `${(rate * 100).toFixed(1)}% of capturable captured`;
    setTone(badge, rate === null || rate === undefined ? "info" : rate > 0 ? "good" : "warn");
    setText("ov-score-run", s.run_id ? `run ${s.run_id}: ${formatInt(s.scored)} opportunities scored` : "no run yet");
    for (const outcome of OUTCOMES) {
      const all = formatInt(s.outcomes?.[outcome] ?? 0);
      setText(`ov-score-${outcome}`, `${formatInt(s.capturable_outcomes?.[outcome] ?? 0)} capturable · ${all} found`);
    }
    setText(
      "ov-score-taken",
      `${formatEth(s.taken_by_others_profit_wei)} (capturable ones: ${formatEth(s.taken_by_others_expected_net_profit_wei)} expected net)`,
    );
    const sims = s.simulations ?? {};
    setText(
      "ov-score-simulated",
      `${formatInt(sims.simulated_ok ?? 0)} passed · ${formatInt(sims.simulated_revert ?? 0)} failed · ${formatInt(sims.unsimulated ?? 0)} not simulated`,
    );
    setText(
      "ov-score-missed",
      `${formatEth(s.going_live_net_profit_wei)} in ${formatInt(s.going_live_trades ?? 0)} simulated routes (every capturable: at most ${formatEth(s.missed_capturable_net_profit_wei)})`,
    );
    $("ov-score-takers").replaceChildren(
      ...(s.takers ?? []).map((t) =>
        h(
          "tr",
          { "data-testid": "score-taker" },
          h("td", { class: "mono" }, t.taker),
          h("td", {}, formatInt(t.opportunities)),
          h("td", {}, formatEth(t.profit_wei)),
        ),
      ),
    );
  }

  renderStage(g) {
    const next = g?.next;
    const badge = $("ov-gate-badge");
    if (!next) {
      badge.textContent = "last stage";
      setTone(badge, "info");
    } else {
      badge.textContent = g.gate_passed ? "gate passed" : `${g.needs.length} to go`;
      setTone(badge, g.gate_passed ? "good" : "warn");
    }
    const here = `stage ${g.stage.index} ${g.stage.name} (${g.stage.mode})`;
    setText(
      "ov-gate-next",
      next ? `${here} → stage ${next.index} ${next.name} (${next.mode})` : `${here}: the last stage`,
    );
    const note = $("ov-gate-note");
    note.hidden = !g.note;
    note.textContent = g.note ?? "";
    $("ov-gate-rows").replaceChildren(
      ...(g.conditions ?? []).map((c) =>
        h(
          "tr",
          { "data-testid": "gate-condition", "data-passed": String(c.passed) },
          h("td", {}, c.name),
          h("td", { "data-testid": "gate-measured" }, c.measured),
          h("td", {}, c.required),
          h("td", {}, h("span", { class: `badge ${c.passed ? "good" : "bad"}` }, c.passed ? "pass" : "fail")),
        ),
      ),
    );
    const needs = g.needs ?? [];
    $("ov-gate-needs").replaceChildren(
      ...(needs.length ? needs : [next ? "nothing: the engine promotes at its next evaluation" : "nothing: the last stage"]).map(
        (line) => h("li", {}, line),
      ),
    );
    const last = (g.history ?? [])[0];
    setText(
      "ov-gate-last",
      last ? `last change ${formatTime(last.at)}: ${last.kind} ${last.from_stage} → ${last.to_stage} (${last.reason})` : "no stage change recorded",
    );
  }

  renderStageError(message) {
    const badge = $("ov-gate-badge");
    badge.textContent = "unavailable";
    setTone(badge, "bad");
    setText("ov-gate-next", message);
    $("ov-gate-rows").replaceChildren();
    $("ov-gate-needs").replaceChildren();
    setText("ov-gate-last", "");
  }

  hide() {
    this.visible = false;
  }

  renderStatus(s) {
    const mode = s.mode ?? "—";
    setText("ov-mode", mode);
    setTone($("ov-mode").parentElement, mode === "shadow" ? "info" : mode === "—" ? "" : "warn");
    const ceiling = s.mode_ceiling
      ? `ceiling ${s.mode_ceiling} (${s.mode_ceiling_source === "api" ? "set by an operator" : "configured"})`
      : "no ceiling configured";
    const what = mode === "shadow" ? "never signs" : mode === "—" ? "" : "signs and sends bundles";
    setText("ov-mode-note", [what, ceiling].filter(Boolean).join(" · "));

    setText("ov-stage", s.stage === null || s.stage === undefined ? "—" : `Stage ${s.stage}`);
    setTone($("ov-stage").parentElement, s.stage > 0 ? "warn" : s.stage === 0 ? "info" : "");
    setText("ov-stage-name", [s.stage_name, s.risk_reason].filter(Boolean).join(" · "));

    const kill = s.kill_switch ?? {};
    setText("ov-kill", kill.engaged ? "Engaged" : "Released");
    setTone($("ov-kill").parentElement, kill.engaged ? "bad" : "good");
    setText("ov-kill-reason", kill.engaged ? kill.reason ?? "no reason given" : "trading allowed");

    setText("ov-run", s.run_id ? `#${s.run_id}` : "none");
    setText("ov-run-note", s.run_status ?? "");
    setTone($("ov-run").parentElement, s.run_status === "running" ? "good" : s.run_status === "failed" ? "bad" : "");

    setText("ov-chain", s.chain_id ?? "—");
    setText("ov-head", formatInt(s.head_block));
    setText("ov-synced", formatInt(s.synced_block));
    const lag = s.sync_lag_blocks;
    setText("ov-lag", lag === null || lag === undefined ? "—" : `${formatInt(lag)} block${lag === 1 ? "" : "s"}`);
    const age = s.heartbeat_age_s;
    setText(
      "ov-heartbeat",
      age === null || age === undefined ? "no heartbeat" : `${formatAge(age)} ago`,
      s.heartbeat_at ? formatTime(s.heartbeat_at) : "",
    );
    const health = syncHealth(s);
    const badge = $("ov-sync-badge");
    badge.textContent = health.label;
    badge.dataset.health = health.tone;
    setTone(badge, health.tone);
    badge.title = health.why;

    if (s.latency_ms && typeof s.latency_ms === "object") this.renderLatency(s.latency_ms);
  }

  /** One opportunity's detection latency into the window of the latest ones (once per id). */
  addLatency(opp) {
    const value = Number(opp?.latency_ms);
    if (!Number.isFinite(value) || this.latencies.has(opp.id)) return;
    this.latencies.set(opp.id, value);
    if (this.latencies.size > LATENCY_SAMPLES) {
      const oldest = [...this.latencies.keys()].sort((a, b) => a - b).slice(0, this.latencies.size - LATENCY_SAMPLES);
      oldest.forEach((id) => this.latencies.delete(id));
    }
    if (!this.ctx.status?.latency_ms) {
      const values = [...this.latencies.values()];
      this.renderLatency({
        p50: percentile(values, 50),
        p90: percentile(values, 90),
        p99: percentile(values, 99),
        samples: values.length,
      });
    }
  }

  async loadLatencies() {
    try {
      const page = await this.ctx.api.get("/api/v1/opportunities", { limit: 200 }, { quiet: true });
      (page?.items ?? []).forEach((opp) => this.addLatency(opp));
    } catch {
      // the opportunities tab reports its own errors
    }
  }

  renderLatency(stats) {
    setText("ov-lat-p50", formatMs(stats.p50));
    setText("ov-lat-p90", formatMs(stats.p90));
    setText("ov-lat-p99", formatMs(stats.p99));
    setText("ov-lat-n", stats.samples === undefined ? "—" : formatInt(stats.samples));
  }

  schedulePnl() {
    clearTimeout(this.pnlTimer);
    this.pnlTimer = setTimeout(() => this.loadPnl(), 1000);
  }

  async loadPnl() {
    let data;
    try {
      data = await this.ctx.api.get("/api/v1/pnl", { group_by: "day" });
    } catch {
      return;
    }
    this.pnl = data;
    const totals = data?.totals ?? {};
    const opps = data?.opportunities ?? {};
    const items = [
      ["Bundles", formatInt(totals.bundles), "pnl-bundles"],
      ["Included", formatInt(totals.included), "pnl-included"],
      ["Expected", formatEth(totals.expected_net_profit_wei), "pnl-expected"],
      ["Realized", formatEth(totals.realized_profit_wei), "pnl-realized"],
      ["Gas paid", formatEth(totals.gas_cost_wei), "pnl-gas"],
      ["Opportunities", formatInt(opps.opportunities), "pnl-opportunities"],
      // What one block could have taken (its best set of routes sharing no pool), next to the
      // sum of everything found, where routes through the same pools are each counted.
      ["Capturable (best pool-disjoint set per block)", formatEth(opps.capturable_net_profit_wei), "pnl-capturable", opps.capturable_net_profit_wei],
      ["Sum of all found (overlapping)", formatEth(opps.expected_net_profit_wei), "pnl-sum-found", opps.expected_net_profit_wei],
    ];
    $("ov-pnl-totals").replaceChildren(
      ...items.map(([label, value, testid, wei]) =>
        h("div", {}, h("dt", {}, label), h("dd", { "data-testid": testid, ...(wei === undefined ? {} : { title: `${wei} wei` }) }, value)),
      ),
    );
    if (!this.series) this.series = (data?.rows ?? []).length ? "bundles" : "opportunities";
    this.drawChart();
  }

  drawChart() {
    if (!this.pnl) return;
    for (const button of document.querySelectorAll("#pnl-series button")) {
      button.setAttribute("aria-pressed", String(button.dataset.series === this.series));
    }
    const byKey = (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    if (this.series === "opportunities") {
      const rows = (this.pnl.opportunities?.by_day ?? [])
        .map((d) => ({
          key: d.day,
          values: [d.capturable_net_profit_wei ?? "0", d.expected_net_profit_wei],
          note: `${d.opportunities} opportunities, ${d.capturable_opportunities ?? 0} capturable`,
        }))
        .sort(byKey);
      drawPnlChart($("pnl-chart"), rows, {
        series: [
          ["capturable", "capturable (best pool-disjoint set per block)"],
          ["opportunities", "sum of all found (overlapping routes)"],
        ],
        empty: "No opportunities recorded yet.",
        label: "Expected net profit per day, in ETH: what could have been captured, and the sum of all found",
      });
      return;
    }
    const rows = (this.pnl.rows ?? [])
      .map((r) => ({
        key: String(r.key),
        values: [r.expected_net_profit_wei, r.realized_profit_wei ?? "0"],
        note: `${r.bundles} bundles, ${r.included} included`,
      }))
      .sort(byKey);
    drawPnlChart($("pnl-chart"), rows, {
      series: [
        ["expected", "expected net profit (included bundles)"],
        ["realized", "realized profit"],
      ],
      empty: "No bundles sent yet: in shadow mode, see the opportunities' expected profit.",
      label: "Bundles' expected and realized profit per day, in ETH",
    });
  }
}

/** good / warn / bad for the engine's sync, with the reason. */
export function syncHealth(s) {
  const age = s.heartbeat_age_s;
  const lag = s.sync_lag_blocks;
  if (age === null || age === undefined) return { tone: "bad", label: "no engine", why: "no heartbeat recorded" };
  if (age >= HEARTBEAT_BAD_S) return { tone: "bad", label: "stale", why: `last heartbeat ${formatAge(age)} ago` };
  if (lag !== null && lag !== undefined && lag >= LAG_BAD) return { tone: "bad", label: "behind", why: `${lag} blocks behind` };
  if (age >= HEARTBEAT_WARN_S) return { tone: "warn", label: "slow", why: `last heartbeat ${formatAge(age)} ago` };
  if (lag !== null && lag !== undefined && lag >= LAG_WARN) return { tone: "warn", label: "lagging", why: `${lag} blocks behind` };
  return { tone: "good", label: "healthy", why: "in sync with the chain head" };
}
