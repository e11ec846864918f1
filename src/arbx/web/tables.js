// Bundles & executions (PnL by builder and route, the bundles, one bundle's transactions) and
// Pools.

import { $, Pager, amountCell, badge, emptyRow, h, tokenPath } from "./dom.js";
import { formatInt, formatTime, shortHex } from "./format.js";
import { fetchNewestFirst } from "./paging.js";

const PAGE = 50;

export class BundlesView {
  constructor(ctx) {
    this.ctx = ctx;
    this.rows = [];
    this.loaded = false;
    this.selected = null;
    this.pager = new Pager($("bundle-pager"), () => this.load(), { label: "bundles" });
    $("bundle-status").addEventListener("change", () => {
      this.pager.reset();
      this.load();
    });
    ctx.on("bundle", (bundle) => this.onLive(bundle));
    ctx.on("tokens", () => this.renderPnl("route"));
  }

  show() {
    this.load();
    this.loadPnl();
  }

  async load() {
    this.loaded = true;
    const status = $("bundle-status").value;
    try {
      const page = await fetchNewestFirst(this.ctx.api, "/api/v1/bundles", {
        params: { status },
        cursor: this.pager.cursor,
        limit: PAGE,
      });
      this.rows = page.items;
      this.pager.next = page.next;
    } catch {
      this.rows = [];
    }
    this.render();
  }

  onLive(bundle) {
    if (!this.loaded || !bundle || bundle.id === undefined) return;
    const index = this.rows.findIndex((r) => r.id === bundle.id);
    if (index >= 0) {
      this.rows[index] = { ...this.rows[index], ...bundle };
    } else if (this.pager.first) {
      const status = $("bundle-status").value;
      if (status && bundle.status !== status) return;
      this.rows = [bundle, ...this.rows].slice(0, PAGE);
    } else {
      return;
    }
    this.render(bundle.id);
    if (this.selected === bundle.id) this.openDetail(bundle.id);
  }

  render(freshId) {
    const body = $("bundle-body");
    if (this.rows.length === 0) {
      body.replaceChildren(emptyRow(10, "No bundles yet. In shadow mode nothing is sent."));
    } else {
      body.replaceChildren(...this.rows.map((b) => this.row(b, b.id === freshId)));
    }
    this.pager.render(this.rows.length);
  }

  row(b, fresh) {
    const builders = Array.isArray(b.builders) ? b.builders : [];
    const txs = Array.isArray(b.tx_hashes) ? b.tx_hashes.length : b.transactions?.length;
    const classes = ["clickable", fresh ? "fresh" : "", this.selected === b.id ? "selected" : ""];
    return h(
      "tr",
      {
        class: classes.join(" ").trim(),
        "data-id": b.id,
        "data-testid": "bundle-row",
        tabIndex: 0,
        onclick: () => this.openDetail(b.id),
        onkeydown: (event) => event.key === "Enter" && this.openDetail(b.id),
      },
      h("td", { class: "num" }, b.id),
      h("td", { class: "num" }, formatInt(b.target_block)),
      h("td", {}, badge(b.status)),
      h("td", { title: builders.join(", ") }, builders.length ? builders.join(", ") : "—"),
      h("td", { class: "num" }, txs ?? "—"),
      amountCell(b.expected_net_profit, { signed: true }),
      amountCell(b.realized_profit, { signed: true }),
      amountCell(b.gas_cost),
      h("td", { class: "num" }, b.included_block === null || b.included_block === undefined ? "—" : formatInt(b.included_block)),
      h("td", {}, formatTime(b.sent_at)),
    );
  }

  async openDetail(id) {
    this.selected = id;
    for (const tr of $("bundle-body").children) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
    let b;
    try {
      b = await this.ctx.api.get(`/api/v1/bundles/${encodeURIComponent(id)}`);
    } catch {
      return;
    }
    const txs = b.transactions ?? [];
    const close = h("button", { type: "button", class: "ghost", "aria-label": "Close details" }, "Close");
    close.addEventListener("click", () => {
      this.selected = null;
      $("bundle-detail").hidden = true;
      this.render();
    });
    const facts = [
      ["Status", badge(b.status)],
      ["Run", b.run_id ?? "—"],
      ["Opportunity", b.opportunity_id ?? "—"],
      ["Signer", h("span", { class: "mono" }, b.signer ?? "—")],
      ["Bundle hash", h("span", { class: "mono" }, b.bundle_hash ?? "—")],
      ["Replacement UUID", h("span", { class: "mono" }, b.replacement_uuid ?? "—")],
      ["Included block hash", h("span", { class: "mono" }, b.included_block_hash ?? "—")],
      ["Gas used", formatInt(b.gas_used)],
      ["Settled", formatTime(b.settled_at)],
    ];
    const table = h(
      "table",
      { class: "data compact", "data-testid": "bundle-transactions", "aria-label": "Transactions" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Hash", "Nonce", "From", "To", "Gas limit", "Max fee (gwei)", "Priority (gwei)", "Status", "Gas used"].map(
            (name, i) => h("th", { scope: "col", class: [1, 4, 5, 6, 8].includes(i) ? "num" : "" }, name),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        txs.length
          ? txs.map((tx) =>
              h(
                "tr",
                {},
                h("td", { class: "mono", title: tx.hash }, shortHex(tx.hash, 8)),
                h("td", { class: "num" }, tx.nonce),
                h("td", { class: "mono", title: tx.from_address }, shortHex(tx.from_address)),
                h("td", { class: "mono", title: tx.to_address ?? "" }, shortHex(tx.to_address)),
                h("td", { class: "num" }, formatInt(tx.gas_limit)),
                h("td", { class: "num", title: `${tx.max_fee} wei` }, gwei(tx.max_fee)),
                h("td", { class: "num", title: `${tx.priority_fee} wei` }, gwei(tx.priority_fee)),
                h("td", {}, badge(tx.status)),
                h("td", { class: "num" }, formatInt(tx.gas_used)),
              ),
            )
          : emptyRow(9, "No transactions recorded."),
      ),
    );
    const panel = $("bundle-detail");
    panel.replaceChildren(
      h("div", { class: "detail-head" }, h("h2", {}, `Bundle #${b.id} · target block ${formatInt(b.target_block)}`), h("span", { class: "spacer" }), close),
      h("dl", { class: "kv" }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h2", { class: "section" }, "Transactions"),
      h("div", { class: "table-wrap" }, table),
    );
    panel.hidden = false;
    panel.scrollIntoView({ block: "nearest" });
  }

  /** A route key as its token path when the pools are known, else as short pool addresses. */
  routeLabel(key) {
    if (key === "-") return "no opportunity";
    const path = this.ctx.routeTokens(key);
    return path ? tokenPath(this.ctx, path) : shortRoute(key);
  }

  async loadPnl() {
    this.pnl = {};
    for (const group of ["builder", "route"]) {
      try {
        this.pnl[group] = await this.ctx.api.get("/api/v1/pnl", { group_by: group });
      } catch {
        continue;
      }
      this.renderPnl(group);
    }
  }

  renderPnl(group) {
    const data = this.pnl?.[group];
    if (!data) return;
    const rows = data.rows ?? [];
    const head = h(
      "tr",
      {},
      h("th", { scope: "col" }, group === "builder" ? "Builder" : "Route"),
      h("th", { scope: "col", class: "num" }, "Bundles"),
      h("th", { scope: "col", class: "num" }, "Included"),
      h("th", { scope: "col", class: "num" }, "Expected (ETH)"),
      h("th", { scope: "col", class: "num" }, "Realized (ETH)"),
    );
    const body = rows.length
      ? rows.map((r) =>
          h(
            "tr",
            {},
            group === "route"
              ? h("td", { class: "wrap", title: r.key }, this.routeLabel(r.key))
              : h("td", {}, r.key),
            h("td", { class: "num" }, formatInt(r.bundles)),
            h("td", { class: "num" }, formatInt(r.included)),
            amountCell(r.expected_net_profit_wei, { signed: true }),
            amountCell(r.realized_profit_wei, { signed: true }),
          ),
        )
      : [emptyRow(5, "No bundles yet.")];
    $(group === "builder" ? "pnl-builder" : "pnl-route").replaceChildren(h("thead", {}, head), h("tbody", {}, body));
  }
}

function shortRoute(key) {
  const pools = String(key).split("|")[0].split(">");
  return h("span", { class: "mono" }, pools.map((p) => shortHex(p, 3)).join(" ▸ "));
}

function gwei(wei) {
  if (wei === null || wei === undefined) return "—";
  const value = BigInt(wei);
  const whole = value / 10n ** 9n;
  const frac = ((value % 10n ** 9n) / 10n ** 7n).toString().padStart(2, "0");
  return `${formatInt(whole.toString())}.${frac}`;
}

export class PoolsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.loaded = false;
    this.pager = new Pager($("pool-pager"), () => this.load(), {
      label: "pools",
      back: "← Previous",
      forward: "Next →",
      firstName: "first page",
    });
    $("pool-family").addEventListener("change", () => {
      this.pager.reset();
      this.load();
    });
  }

  show() {
    if (!this.loaded) this.load();
  }

  async load() {
    this.loaded = true;
    let page;
    try {
      page = await this.ctx.api.get("/api/v1/pools", {
        family: $("pool-family").value,
        limit: PAGE,
        after: this.pager.cursor,
      });
    } catch {
      page = { items: [] };
    }
    const items = page?.items ?? [];
    this.pager.next = page?.next_after ?? null;
    const body = $("pool-body");
    body.replaceChildren(...(items.length ? items.map(poolRow) : [emptyRow(9, "No pools stored yet.")]));
    this.pager.render(items.length);
  }
}

function poolRow(p) {
  const token = (address, symbol) =>
    h("td", { class: "mono", title: address }, symbol ? `${symbol} ` : "", symbol ? h("span", { class: "muted" }, shortHex(address, 3)) : shortHex(address));
  return h(
    "tr",
    { "data-testid": "pool-row", "data-address": p.address },
    h("td", { class: "mono", title: p.address }, shortHex(p.address, 6)),
    h("td", {}, badge(p.family === "uniswap_v3" ? "V3" : p.family === "uniswap_v2" ? "V2" : p.family)),
    h("td", {}, p.venue ?? "—"),
    token(p.token0, p.token0_symbol),
    token(p.token1, p.token1_symbol),
    h("td", { class: "num" }, feeLabel(p)),
    h("td", { class: "num" }, p.tick_spacing ?? "—"),
    h("td", { class: "num" }, formatInt(p.created_block)),
    h("td", { class: "num" }, formatInt(p.last_synced_block)),
  );
}

/** V2 fees are stored in basis points, V3 fees in pips (millionths). */
function feeLabel(p) {
  if (p.fee === null || p.fee === undefined) return "—";
  const percent = p.family === "uniswap_v3" ? p.fee / 10_000 : p.fee / 100;
  return `${Number(percent.toFixed(4))}%`;
}
