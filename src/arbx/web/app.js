// The dashboard shell: sign-in, role, tabs, the refusal banner, the confirmation dialog, the
// status poll and the live event stream. Each tab's view lives in its own module.

import { Api, ApiError, cleanBase, resolveApiBase } from "./api.js";
import { $, setTone } from "./dom.js";
import { OverviewView } from "./overview.js";
import { OpportunitiesView } from "./opportunities.js";
import { BundlesView, PoolsView } from "./tables.js";
import { ControlsView } from "./controls.js";

const TABS = ["overview", "opportunities", "bundles", "pools", "controls"];
const STATUS_POLL_MS = 5000;
const OPERATOR_ROLES = new Set(["operator"]);

/** What every view is given: the API, the current role and status, and a small event bus. */
class Context {
  constructor(api) {
    this.api = api;
    this.role = null;
    this.status = null;
    this.tokens = new Map(); // lower-case address -> {symbol, decimals}
    this.pools = new Map(); // lower-case address -> {token0, token1}
    this.listeners = new Map();
  }

  /** Operators may change things; with an unknown role the controls stay on (the API decides). */
  get canOperate() {
    return this.role === null || this.role === "unknown" || OPERATOR_ROLES.has(this.role);
  }

  /** A token's symbol (else its short address) and decimals (else 18, as for WETH). */
  token(address) {
    const known = this.tokens.get(String(address).toLowerCase());
    return { symbol: known?.symbol ?? null, decimals: known?.decimals ?? 18 };
  }

  /** A route key ("pool>pool|01") as its token path, when its pools are known; else null. */
  routeTokens(key) {
    const [pools, bits = ""] = String(key).split("|");
    const path = [];
    for (const [i, address] of pools.split(">").entries()) {
      const pool = this.pools.get(address.toLowerCase());
      if (!pool || !"01".includes(bits[i] ?? "x")) return null;
      const [tokenIn, tokenOut] = bits[i] === "1" ? [pool.token0, pool.token1] : [pool.token1, pool.token0];
      if (i === 0) path.push(tokenIn);
      path.push(tokenOut);
    }
    return path;
  }

  on(type, handler) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(handler);
  }

  emit(type, data) {
    for (const handler of this.listeners.get(type) ?? []) {
      try {
        handler(data);
      } catch (exc) {
        console.error(`handler for ${type} failed`, exc);
      }
    }
  }

  confirm(title, message, { danger = false, confirmLabel = "Confirm" } = {}) {
    return confirmDialog(title, message, { danger, confirmLabel });
  }

  notify(message) {
    showBanner("Done", message, "ok");
  }

  warn(title, message) {
    showBanner(title, message, "warn");
  }
}

// --- banner ------------------------------------------------------------------------------------

let bannerTimer = null;

function showBanner(title, message, tone = "") {
  const banner = $("banner");
  banner.className = `banner ${tone}`.trim();
  banner.dataset.status = "";
  $("banner-title").textContent = title;
  $("banner-message").textContent = message;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  if (tone === "ok") bannerTimer = setTimeout(hideBanner, 4000);
}

function hideBanner() {
  $("banner").hidden = true;
}

/** A refused or failed request, shown with the API's own message. */
function showRefusal(error, method = "GET") {
  const status = error instanceof ApiError ? error.status : 0;
  let title;
  if (status === 401) title = "Not signed in (401):";
  else if (status === 403) title = "Refused (403):";
  else if (status === 0) title = "API unreachable:";
  else if (status >= 500) title = `API error (${status}):`;
  else title = `Request refused (${status}):`;
  const action = `${method} ${error.path ?? ""}`.trim();
  showBanner(title, `${error.detail ?? error.message} — ${action}`, status >= 500 || status === 0 ? "warn" : "");
  $("banner").dataset.status = String(status);
}

// --- confirmation dialog -----------------------------------------------------------------------

function confirmDialog(title, message, { danger, confirmLabel }) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-message").textContent = message;
  const ok = $("confirm-ok");
  ok.textContent = confirmLabel;
  ok.className = danger ? "danger" : "primary";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    dialog.querySelector("[value=cancel]").focus();
  });
}

// --- the application ---------------------------------------------------------------------------

class App {
  constructor() {
    this.api = new Api(resolveApiBase());
    this.api.onError = (error, method) => this.onApiError(error, method);
    this.ctx = new Context(this.api);
    this.views = {
      overview: new OverviewView(this.ctx),
      opportunities: new OpportunitiesView(this.ctx),
      bundles: new BundlesView(this.ctx),
      pools: new PoolsView(this.ctx),
      controls: new ControlsView(this.ctx),
    };
    this.active = null;
    this.streamAbort = null;
    this.pollTimer = null;
  }

  /** Say so on the sign-in form when the token will go to another origin than the page's. */
  showApiNote() {
    const note = $("api-note");
    const other = new URL(this.api.base).origin !== location.origin;
    note.hidden = !other;
    note.textContent = other ? `Your token will be sent to ${new URL(this.api.base).host}: sign in only if you trust it.` : "";
  }

  start() {
    $("api-input").value = this.api.base;
    this.showApiNote();
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn($("token-input").value.trim(), $("api-input").value.trim());
    });
    $("logout").addEventListener("click", () => this.signOut());
    $("banner-close").addEventListener("click", hideBanner);
    for (const tab of document.querySelectorAll("[role=tab]")) {
      tab.addEventListener("click", () => this.select(tab.dataset.tab));
      tab.addEventListener("keydown", (event) => this.tabKey(event));
    }
    window.addEventListener("hashchange", () => this.select(location.hash.slice(1), false));
    this.ctx.on("status", (status) => this.renderHeader(status));
    if (this.api.token) this.enter();
    else this.showLogin();
  }

  onApiError(error, method) {
    if (error.status === 401 && !$("app").hidden) {
      this.showLogin(`${error.detail} — sign in again.`);
      return;
    }
    showRefusal(error, method);
  }

  showLogin(message) {
    this.stopLive();
    $("app").hidden = true;
    $("session").hidden = true;
    for (const id of ["header-mode", "header-kill", "stream-state"]) $(id).hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = message ?? "";
    error.hidden = !message;
    $("token-input").focus();
  }

  async signIn(token, base) {
    const clean = cleanBase(base);
    if (base && !clean) {
      this.showLogin(`${base} is not an http(s) address of the API`);
      return;
    }
    if (clean && clean !== this.api.base) {
      this.api.base = clean;
      sessionStorage.setItem("arbx.api", clean);
      this.showApiNote();
    }
    this.api.token = token;
    $("token-input").value = "";
    await this.enter();
  }

  signOut() {
    this.api.token = "";
    this.stopLive();
    location.replace(location.pathname + location.search); // a clean page: no data of the last token
  }

  async enter() {
    let status;
    try {
      status = await this.api.get("/api/v1/status", undefined, { quiet: true });
    } catch (error) {
      this.api.token = error.status === 401 || error.status === 403 ? "" : this.api.token;
      this.showLogin(`${error.status ? `${error.status}: ` : ""}${error.detail ?? error.message}`);
      return;
    }
    this.ctx.role = await this.loadRole();
    $("login").hidden = true;
    $("app").hidden = false;
    $("session").hidden = false;
    const role = $("role");
    role.textContent = this.ctx.role === "unknown" ? "role unknown" : this.ctx.role;
    role.title = this.ctx.tokenName ? `token “${this.ctx.tokenName}”` : "";
    $("token-name").textContent = this.ctx.tokenName ?? "";
    role.className = `role ${this.ctx.role}`;
    role.dataset.role = this.ctx.role;
    $("api-base-label").textContent = new URL(this.api.base).host;
    this.setStatus(status);
    this.loadTokens();
    this.startLive();
    this.select(TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview", false);
  }

  /** The token's role: from the API's `whoami` answer, else "unknown" (the API still decides). */
  async loadRole() {
    try {
      const me = await this.api.get("/api/v1/whoami", undefined, { quiet: true });
      this.ctx.tokenName = me?.name ?? "";
      return String(me?.role ?? "unknown");
    } catch {
      this.ctx.tokenName = "";
      return "unknown";
    }
  }

  /** Token symbols (and decimals, when the API gives them) from the pools, a few pages deep. */
  async loadTokens() {
    let after = null;
    for (let page = 0; page < 10; page++) {
      let data;
      try {
        data = await this.api.get("/api/v1/pools", { limit: 500, after }, { quiet: true });
      } catch {
        return;
      }
      for (const p of data?.items ?? []) {
        this.ctx.pools.set(String(p.address).toLowerCase(), { token0: p.token0, token1: p.token1 });
        for (const i of [0, 1]) {
          const address = String(p[`token${i}`]).toLowerCase();
          const symbol = p[`token${i}_symbol`] ?? null;
          const decimals = p[`token${i}_decimals`] ?? null;
          if (symbol || decimals !== null) this.ctx.tokens.set(address, { symbol, decimals });
        }
      }
      this.ctx.emit("tokens", this.ctx.tokens);
      after = data?.next_after ?? null;
      if (!after) return;
    }
  }

  setStatus(status) {
    this.ctx.status = status;
    this.ctx.emit("status", status);
  }

  async refreshStatus() {
    try {
      this.setStatus(await this.api.get("/api/v1/status", undefined, { quiet: true }));
    } catch (error) {
      if (error.status === 401) this.onApiError(error, "GET");
    }
  }

  renderHeader(status) {
    const mode = $("header-mode");
    mode.hidden = false;
    mode.textContent = `mode: ${status.mode ?? "—"}`;
    setTone(mode, status.mode === "shadow" ? "info" : status.mode ? "warn" : "");
    const kill = $("header-kill");
    kill.hidden = false;
    const engaged = Boolean(status.kill_switch?.engaged);
    kill.textContent = engaged ? "kill switch ENGAGED" : "kill switch released";
    setTone(kill, engaged ? "bad" : "good");
    kill.title = status.kill_switch?.reason ?? "";
  }

  startLive() {
    this.stopLive();
    this.streamAbort = new AbortController();
    const conn = $("stream-state");
    conn.hidden = false;
    this.api.stream("/api/v1/stream", {
      signal: this.streamAbort.signal,
      onEvent: (event) => {
        if (event.type === "status") this.setStatus(event.data);
        else if (event.type === "error") {
          const detail = event.data?.detail ?? String(event.data);
          this.onApiError(new ApiError(401, `live stream ended: ${detail}`, "/api/v1/stream"), "GET");
        } else this.ctx.emit(event.type, event.data);
      },
      onState: (state, error) => {
        const labels = { live: "live", connecting: "connecting…", offline: "offline", refused: "stream refused" };
        conn.textContent = labels[state] ?? state;
        conn.dataset.state = state;
        setTone(conn, state === "live" ? "good" : state === "connecting" ? "warn" : "bad");
        if (state === "refused" && error) this.onApiError(error, "GET");
        this.ctx.emit("stream-state", state);
      },
    });
    this.pollTimer = setInterval(() => this.refreshStatus(), STATUS_POLL_MS);
  }

  stopLive() {
    this.streamAbort?.abort();
    this.streamAbort = null;
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  select(name, updateHash = true) {
    if (!TABS.includes(name) || $("app").hidden) return;
    for (const tab of document.querySelectorAll("[role=tab]")) {
      const selected = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`panel-${tab.dataset.tab}`).hidden = !selected;
    }
    if (updateHash && location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    if (this.active !== name) {
      this.views[this.active]?.hide?.();
      this.active = name;
    }
    this.views[name].show();
  }

  tabKey(event) {
    const index = TABS.indexOf(event.target.dataset.tab);
    let next = null;
    if (event.key === "ArrowRight") next = TABS[(index + 1) % TABS.length];
    else if (event.key === "ArrowLeft") next = TABS[(index + TABS.length - 1) % TABS.length];
    else if (event.key === "Home") next = TABS[0];
    else if (event.key === "End") next = TABS[TABS.length - 1];
    if (next) {
      event.preventDefault();
      this.select(next);
      $(`tab-${next}`).focus();
    }
  }
}

const app = new App();
window.arbx = app; // for debugging from the browser's console
app.start();
