// Small DOM helpers shared by the views: element building (text only, never innerHTML with data),
// status badges, amount cells and a keyset pager.

import { formatUnits, shortHex, toBigInt, weiSign } from "./format.js";

export const $ = (id) => document.getElementById(id);

/** An element with attributes (`class`, `data-*`, `on*` handlers, properties) and children. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key in node && !key.includes("-") && key !== "list") {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function setText(id, text, title) {
  const node = $(id);
  if (!node) return;
  node.textContent = text ?? "—";
  if (title !== undefined) node.title = title;
}

/** Set one of good/warn/bad/info on an element, clearing the others. */
export function setTone(node, tone) {
  if (!node) return;
  node.classList.remove("good", "warn", "bad", "info");
  if (tone) node.classList.add(tone);
}

const STATUS_TONES = {
  included: "good",
  simulated_ok: "good",
  ok: "good",
  running: "info",
  found: "info",
  sent: "info",
  pending: "info",
  not_included: "warn",
  state_moved: "warn",
  interrupted: "warn",
  skipped: "warn",
  reverted: "bad",
  sim_failed: "bad",
  simulated_revert: "bad",
  failed: "bad",
  dropped: "bad",
};

export function statusTone(status) {
  return STATUS_TONES[status] ?? "";
}

/** A status as a coloured badge ("not_included" reads "not included"). */
export function badge(status) {
  const text = String(status ?? "—").replaceAll("_", " ");
  return h("span", { class: `badge ${statusTone(status)}`, "data-status": status ?? "" }, text);
}

/**
 * A table cell with an amount in whole units (ETH for wei; `decimals` for another token) to 6
 * places, coloured by sign when `signed`; the exact amount in the smallest unit on hover.
 */
export function amountCell(value, { signed = false, testid, decimals = 18, symbol = null } = {}) {
  const sign = weiSign(value);
  const tone = signed ? (sign > 0 ? " pos" : sign < 0 ? " neg" : "") : "";
  const exact = toBigInt(value);
  const unit = decimals === 18 && (symbol === null || symbol === "WETH") ? "wei" : `units of ${symbol ?? "the base token"}`;
  return h(
    "td",
    { class: `num${tone}`, title: exact === null ? "" : `${exact} ${unit}`, "data-testid": testid },
    formatUnits(value, decimals),
  );
}

/** A <tr> spanning the table that says there is nothing to show. */
export function emptyRow(columns, text) {
  return h("tr", {}, h("td", { class: "empty", colSpan: columns }, text));
}

/**
 * Newest-first keyset paging over an API that pages upwards by id (`after_id`). The pager keeps
 * the stack of cursors it went through so that "Newer" can step back.
 */
export class Pager {
  constructor(container, onChange, { label = "rows", back = "← Newer", forward = "Older →", firstName = "latest" } = {}) {
    this.container = container;
    this.onChange = onChange;
    this.label = label;
    this.names = { back, forward, firstName };
    this.stack = [];
    this.cursor = null;
    this.next = null;
  }

  reset() {
    this.stack = [];
    this.cursor = null;
    this.next = null;
  }

  get first() {
    return this.stack.length === 0;
  }

  render(count) {
    const newer = h("button", { type: "button", disabled: this.first, "data-testid": "page-back" }, this.names.back);
    const older = h("button", { type: "button", disabled: this.next === null, "data-testid": "page-forward" }, this.names.forward);
    newer.addEventListener("click", () => {
      this.cursor = this.stack.pop() ?? null;
      this.onChange();
    });
    older.addEventListener("click", () => {
      this.stack.push(this.cursor);
      this.cursor = this.next;
      this.onChange();
    });
    const where = this.first ? this.names.firstName : `page ${this.stack.length + 1}`;
    this.container.replaceChildren(
      h("span", {}, `${count} ${this.label} · ${where}`),
      h("span", { class: "spacer" }),
      newer,
      older,
    );
  }
}

/** "WETH ▸ USDC ▸ WETH" (symbols where known, else short addresses) and a muted hop count. */
export function tokenPath(ctx, tokens, hops) {
  const parts = [];
  tokens.forEach((address, i) => {
    if (i > 0) parts.push(h("span", { class: "sep" }, "▸"));
    parts.push(ctx.token(address).symbol ?? shortHex(address, 3));
  });
  const count = hops ?? Math.max(0, tokens.length - 1);
  return h("span", { class: "route" }, ...parts, h("span", { class: "hops" }, `${count} hop${count === 1 ? "" : "s"}`));
}
