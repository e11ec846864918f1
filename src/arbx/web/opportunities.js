// Opportunities: the latest first, new ones arriving live from the event stream while the first
// page is shown; filters and keyset paging to older ones.

import { $, Pager, amountCell, badge, emptyRow, h, tokenPath } from "./dom.js";
import { formatClock, formatInt, formatMs, formatTime, parseEthToWei } from "./format.js";
import { fetchNewestFirst } from "./paging.js";

const PAGE = 50;

export class OpportunitiesView {
  constructor(ctx) {
    this.ctx = ctx;
    this.rows = [];
    this.filters = {};
    this.loaded = false;
    this.pager = new Pager($("opp-pager"), () => this.load(), { label: "opportunities" });
    $("opp-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyFilters();
    });
    $("opp-clear").addEventListener("click", () => {
      $("opp-filters").reset();
      this.applyFilters();
    });
    ctx.on("opportunity", (opp) => this.onLive(opp));
    ctx.on("tokens", () => this.loaded && this.render());
  }

  show() {
    if (!this.loaded) this.load();
  }

  applyFilters() {
    const filters = {};
    const min = $("opp-min").value.trim();
    if (min) {
      const wei = parseEthToWei(min);
      if (wei === null) {
        $("opp-min").setCustomValidity("an amount in ETH, like 0.01");
        $("opp-min").reportValidity();
        return;
      }
      filters.min_net_profit = wei.toString();
    }
    $("opp-min").setCustomValidity("");
    const block = $("opp-block").value.trim();
    if (block) filters.block = block;
    const route = $("opp-route").value.trim();
    if (route) filters.route = route;
    this.filters = filters;
    this.pager.reset();
    this.load();
  }

  filterRoute(key) {
    $("opp-route").value = key;
    this.applyFilters();
  }

  async load() {
    this.loaded = true;
    let page;
    try {
      page = await fetchNewestFirst(this.ctx.api, "/api/v1/opportunities", {
        params: this.filters,
        cursor: this.pager.cursor,
        limit: PAGE,
      });
    } catch {
      this.render();
      return;
    }
    this.rows = page.items;
    this.pager.next = page.next;
    if (this.pager.first) this.ctx.emit("opportunities-loaded", this.rows);
    this.render();
  }

  /** A live opportunity joins the table when the first page shows and it passes the filters. */
  onLive(opp) {
    if (!this.loaded || !this.pager.first || !$("opp-live").checked) return;
    if (!this.matches(opp) || this.rows.some((r) => r.id === opp.id)) return;
    this.rows = [opp, ...this.rows].sort((a, b) => b.id - a.id).slice(0, PAGE);
    if (this.rows.length === PAGE) this.pager.next = this.rows[this.rows.length - 1].id;
    this.render(opp.id);
  }

  matches(opp) {
    const f = this.filters;
    if (f.block && String(opp.block_number) !== f.block) return false;
    if (f.route && opp.route_key !== f.route) return false;
    if (f.min_net_profit && BigInt(opp.net_profit) < BigInt(f.min_net_profit)) return false;
    return true;
  }

  render(freshId) {
    const body = $("opp-body");
    if (this.rows.length === 0) {
      body.replaceChildren(emptyRow(11, "No opportunities match."));
    } else {
      body.replaceChildren(...this.rows.map((opp) => row(this, opp, opp.id === freshId)));
    }
    this.pager.render(this.rows.length);
  }
}

function row(view, opp, fresh) {
  const { ctx } = view;
  // Every amount of an opportunity is in its base token (the first of its path).
  const base = ctx.token(Array.isArray(opp.tokens) ? opp.tokens[0] : "");
  const unit = { decimals: base.decimals, symbol: base.symbol };
  return h(
    "tr",
    { class: fresh ? "fresh" : "", "data-id": opp.id, "data-testid": "opportunity-row" },
    h("td", { class: "num" }, opp.id),
    h("td", { class: "num" }, formatInt(opp.block_number)),
    h(
      "td",
      {
        class: "clickable-cell",
        title: `${opp.route_key}\n(click: only this route)`,
        onclick: () => view.filterRoute(opp.route_key),
      },
      routeLabel(ctx, opp),
    ),
    amountCell(opp.amount_in, unit),
    amountCell(opp.gross_profit, { signed: true, ...unit }),
    amountCell(opp.gas_cost, unit),
    amountCell(opp.builder_payment, unit),
    amountCell(opp.net_profit, { signed: true, testid: "net-profit", ...unit }),
    h("td", { class: "num" }, formatMs(opp.latency_ms)),
    h("td", {}, badge(opp.status)),
    h("td", { title: formatTime(opp.detected_at) }, formatClock(opp.detected_at)),
  );
}

function routeLabel(ctx, opp) {
  const tokens = Array.isArray(opp.tokens) ? opp.tokens : [];
  return tokenPath(ctx, tokens, Array.isArray(opp.pools) ? opp.pools.length : undefined);
}
