// Controls for operators: mode, limits and the kill switch, each behind a confirmation; the audit
// log. A viewer sees them disabled with the reason; the API refuses them anyway, and any refusal
// is shown in the banner with the API's message.

import { $, emptyRow, h } from "./dom.js";
import { formatEth, formatTime, parseEthToWei, weiToEthInput } from "./format.js";

export class ControlsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.limits = null;
    $("mode-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.changeMode();
    });
    $("kill-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.engageKill();
    });
    $("kill-release").addEventListener("click", () => this.releaseKill());
    $("mode-select").addEventListener("change", () => {
      this.modeTouched = true;
    });
    $("limits-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveLimits();
    });
    $("lim-add").addEventListener("click", () => this.addInputRow("", ""));
    ctx.on("status", (status) => this.renderStatus(status));
  }

  show() {
    this.applyRole();
    this.loadMode();
    this.loadLimits();
    this.loadAudit();
  }

  applyRole() {
    const readonly = !this.ctx.canOperate;
    const note = $("controls-readonly");
    note.hidden = !readonly;
    note.textContent = readonly
      ? `Your token has the ${this.ctx.role} role: it can see everything but change nothing. ` +
        "Mode, limits and the kill switch need an operator token."
      : "";
    for (const form of ["mode-form", "kill-form", "limits-form"]) {
      const node = $(form);
      node.classList.toggle("readonly", readonly);
      for (const field of node.querySelectorAll("input, select, button")) field.disabled = readonly;
      node.title = readonly ? "needs an operator token" : "";
    }
    if (this.ctx.status) this.renderStatus(this.ctx.status); // engage or release, not both
  }

  renderStatus(s) {
    $("ctl-mode-effective").textContent = s.mode ?? "—";
    if (s.mode_ceiling !== undefined) this.renderCeiling(s.mode_ceiling, s.mode_ceiling_source);
    const engaged = Boolean(s.kill_switch?.engaged);
    const current = $("ctl-kill-current");
    current.textContent = engaged ? `ENGAGED — ${s.kill_switch?.reason ?? "no reason"}` : "released";
    current.className = engaged ? "neg" : "pos";
    if (this.ctx.canOperate) {
      $("kill-engage").disabled = engaged;
      $("kill-release").disabled = !engaged;
    }
  }

  renderCeiling(mode, source) {
    $("ctl-mode-current").textContent = mode ?? "none";
    $("ctl-mode-source").textContent = source === "api" ? "(set by an operator)" : source ? "(configured)" : "";
  }

  async loadMode() {
    try {
      const data = await this.ctx.api.get("/api/v1/mode");
      this.renderCeiling(data?.mode ?? null, data?.source);
      $("ctl-mode-effective").textContent = data?.effective_mode ?? "—";
      if (data?.updated_by) $("ctl-mode-source").title = `${data.updated_by}, ${formatTime(data.updated_at)}`;
      if (!this.modeTouched) $("mode-select").value = data?.source === "api" ? data.mode : "";
    } catch {
      // shown in the banner
    }
  }

  async changeMode() {
    const mode = $("mode-select").value || null;
    const reason = $("mode-reason").value.trim();
    const current = $("ctl-mode-current").textContent;
    const target = mode ?? "the configured mode";
    const effect =
      mode === "shadow"
        ? "The engine stops signing and only records and simulates."
        : mode === null
          ? "The settings file decides again."
          : "The engine may sign and send bundles, within its stage's limits.";
    const ok = await this.ctx.confirm(
      "Change the mode ceiling?",
      `From ${current} to ${target}.\n${effect}` + (reason ? `\nReason: ${reason}` : ""),
      { danger: mode !== "shadow", confirmLabel: mode ? `Set ${mode}` : "Use configured" },
    );
    if (!ok) return;
    try {
      const data = await this.ctx.api.put("/api/v1/mode", { mode, reason: reason || null });
      this.renderCeiling(data?.mode ?? null, data?.source);
      $("ctl-mode-effective").textContent = data?.effective_mode ?? "—";
      $("mode-reason").value = "";
      this.modeTouched = false;
      this.ctx.notify(`Mode ceiling set to ${data?.mode ?? "the configured one"}.`);
      this.afterChange();
    } catch {
      // the banner shows the refusal
    }
  }

  async engageKill() {
    const reason = $("kill-reason").value.trim() || "operator kill switch (dashboard)";
    const ok = await this.ctx.confirm(
      "Engage the kill switch?",
      `Every live engine on this chain drops to shadow within one block and stays there until the switch is released.\nReason: ${reason}`,
      { danger: true, confirmLabel: "Engage kill switch" },
    );
    if (!ok) return;
    try {
      await this.ctx.api.post("/api/v1/kill", { reason });
      $("kill-reason").value = "";
      this.ctx.notify("Kill switch engaged.");
      this.afterChange();
    } catch {
      // the banner shows the refusal
    }
  }

  async releaseKill() {
    const reason = $("kill-reason").value.trim();
    const ok = await this.ctx.confirm(
      "Release the kill switch?",
      "Engines may trade again in their configured mode." + (reason ? `\nReason: ${reason}` : ""),
      { confirmLabel: "Release" },
    );
    if (!ok) return;
    try {
      await this.ctx.api.post("/api/v1/unkill", reason ? { reason } : {});
      $("kill-reason").value = "";
      this.ctx.notify("Kill switch released.");
      this.afterChange();
    } catch {
      // the banner shows the refusal
    }
  }

  async loadLimits() {
    try {
      this.limits = await this.ctx.api.get("/api/v1/limits");
    } catch {
      return;
    }
    const l = this.limits ?? {};
    $("lim-source").textContent =
      l.source === "api"
        ? `Set by ${l.updated_by ?? "an operator"} at ${formatTime(l.updated_at)}.`
        : l.source === "configured"
          ? "From the settings file (no operator has changed them)."
          : "No limits known to the API: the engine uses its configured ones.";
    $("lim-gas").value = weiToEthInput(l.daily_gas_cap_wei);
    $("lim-loss").value = weiToEthInput(l.daily_loss_cap_wei);
    $("lim-fail").value = l.max_consecutive_failures ?? "";
    $("lim-inputs").replaceChildren();
    for (const [token, amount] of Object.entries(l.max_input ?? {})) this.addInputRow(token, String(amount));
    if (!Object.keys(l.max_input ?? {}).length) this.addInputRow("", "");
    this.applyRole();
  }

  addInputRow(token, amount) {
    const remove = h("button", { type: "button", class: "ghost", "aria-label": "Remove this cap" }, "×");
    const row = h(
      "div",
      { class: "row" },
      h("input", { value: token, placeholder: "0x… token address or *", "aria-label": "Token", spellcheck: false }),
      h("input", { value: amount, placeholder: "amount (smallest unit)", inputmode: "numeric", "aria-label": "Max input" }),
      remove,
    );
    remove.addEventListener("click", () => row.remove());
    $("lim-inputs").append(row);
  }

  readLimits() {
    const gas = parseEthToWei($("lim-gas").value);
    const loss = parseEthToWei($("lim-loss").value);
    const failures = $("lim-fail").value.trim();
    if (gas === null) throw new Error("daily gas cap: an amount in ETH, like 0.05");
    if (loss === null) throw new Error("daily loss cap: an amount in ETH, like 0.1");
    if (!/^\d+$/.test(failures)) throw new Error("max consecutive failures: a whole number");
    const maxInput = {};
    for (const row of $("lim-inputs").children) {
      const [tokenInput, amountInput] = row.querySelectorAll("input");
      const token = tokenInput.value.trim();
      const amount = amountInput.value.trim();
      if (!token && !amount) continue;
      if (!token || !/^\d+$/.test(amount)) throw new Error(`max input ${token || "(no token)"}: a token and a whole amount`);
      maxInput[token] = amount;
    }
    return {
      max_input: maxInput,
      daily_gas_cap_wei: gas.toString(),
      daily_loss_cap_wei: loss.toString(),
      max_consecutive_failures: Number(failures),
      reason: $("lim-reason").value.trim() || null,
    };
  }

  async saveLimits() {
    let body;
    try {
      body = this.readLimits();
    } catch (exc) {
      this.ctx.warn("Invalid limits:", exc.message);
      return;
    }
    const caps = Object.entries(body.max_input).map(([t, a]) => `${t}: ${a}`).join(", ") || "none";
    const ok = await this.ctx.confirm(
      "Save these limits?",
      `Daily gas cap ${formatEth(body.daily_gas_cap_wei)}\nDaily loss cap ${formatEth(body.daily_loss_cap_wei)}\n` +
        `Max consecutive failures ${body.max_consecutive_failures}\nMax input ${caps}`,
      { confirmLabel: "Save limits" },
    );
    if (!ok) return;
    try {
      await this.ctx.api.put("/api/v1/limits", body);
      $("lim-reason").value = "";
      this.ctx.notify("Limits saved.");
      this.afterChange();
      this.loadLimits();
    } catch {
      // the banner shows the refusal
    }
  }

  afterChange() {
    this.loadAudit(); // the new status arrives on the live stream
  }

  async loadAudit() {
    let data;
    try {
      data = await this.ctx.api.get("/api/v1/audit", { limit: 20 }, { quiet: true });
    } catch (error) {
      $("audit-body").replaceChildren(emptyRow(4, error.status === 403 ? "The audit log needs an operator token." : `Audit log unavailable: ${error.detail}`));
      return;
    }
    const items = Array.isArray(data) ? data : data?.items ?? [];
    $("audit-body").replaceChildren(
      ...(items.length
        ? items.map((a) =>
            h(
              "tr",
              { "data-testid": "audit-row" },
              h("td", {}, formatTime(a.at)),
              h("td", {}, a.actor),
              h("td", {}, a.action),
              h("td", { class: "wrap change", title: `before: ${json(a.before)}\nafter: ${json(a.after)}` }, describeChange(a.before, a.after)),
            ),
          )
        : [emptyRow(4, "No changes recorded.")]),
    );
  }
}

/** What an audit entry changed: one "field: before → after" line per changed field, nested
 * objects flattened ("limits.daily_gas_cap_wei"), then the reason given with the change. */
export function describeChange(before, after) {
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!isObject(before) && !isObject(after)) return `${short(before)} → ${short(after)}`;
  const old = flatten(before);
  const now = flatten(after);
  const lines = [];
  for (const key of new Set([...Object.keys(old), ...Object.keys(now)])) {
    if (AUDIT_NOISE.has(key.split(".").pop())) continue;
    if (JSON.stringify(old[key] ?? null) !== JSON.stringify(now[key] ?? null)) {
      lines.push(h("div", {}, h("span", { class: "muted" }, `${key}: `), `${short(old[key])} → ${short(now[key])}`));
    }
  }
  if (isObject(after) && after.reason) lines.push(h("div", { class: "muted" }, `reason: ${after.reason}`));
  return lines.length ? lines : "no change";
}

const AUDIT_NOISE = new Set(["reason", "chain_id", "updated_at", "actor"]);

function flatten(value, prefix = "", out = {}) {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else if (prefix) {
    out[prefix] = value;
  }
  return out;
}

function short(value) {
  const text = json(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

function json(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}
