"""The dashboard in a real headless Chromium, against a running API on a real database.

The API runs in this process (uvicorn on a free loopback port, the app from
``arbx.api.create_app``) on a SQLite file and on a fresh PostgreSQL database, seeded with a run,
pools, opportunities and settled bundles; a thread plays the engine's heartbeat. Debian's
``chromium`` is driven by Playwright for Python (never ``playwright install``: no browser is
downloaded). The tests check that each page loads with the seeded data, that an opportunity
written to the database appears live, that an operator changes the mode ceiling through the
confirmation dialog and the API reflects it, and that a viewer cannot (the controls say so, and
a forced attempt is refused by the API with its message shown). Screenshots are saved in
``build/e2e-screenshots/``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from arbx.store import api_repo, make_engine, make_session_factory, upgrade
from arbx.store import risk_repo as rrepo
from tests.e2e.dashboard_stack import (
    BUILDERS,
    BUNDLES,
    CHAIN,
    DAYS,
    ETH,
    HEAD,
    OPPORTUNITIES,
    WETH,
    Heartbeat,
    Seeded,
    add_live_opportunity,
    api_call,
    postgres_database,
    seed,
    serve_api,
    serve_static,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "arbx" / "web"
SCREENSHOTS = ROOT / "build" / "e2e-screenshots"
TIMEOUT_MS = 10_000  # for each expectation and action in the browser
CHROMIUM_ENV = "ARBX_CHROMIUM"
CHROMIUM_DEFAULT = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# --- prerequisites ----------------------------------------------------------------------------


def _require_browser() -> str:
    """The Chromium binary; the test fails (not skips) with the install step when it is missing."""
    chromium = os.environ.get(CHROMIUM_ENV, CHROMIUM_DEFAULT)
    missing = []
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        missing.append(f"Chromium at {chromium} (install it: apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append(
            "the Python package playwright (install it: .venv/bin/pip install -e '.[dev]', "
            "which pins it; no `playwright install` is needed, the browser is Debian's)"
        )
    if missing:
        pytest.fail("the dashboard tests need " + " and ".join(missing), pytrace=False)
    return chromium


# --- fixtures ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stack:
    """A running API on a seeded database, and the tokens to use it."""

    backend: str
    base: str
    sessions: sessionmaker[Session]
    seeded: Seeded
    operator: str
    viewer: str
    heartbeat: Heartbeat
    static: str  # the dashboard's files from a plain static server


@pytest.fixture(scope="module")
def chromium() -> str:
    return _require_browser()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, chromium: str) -> Iterator[Stack]:
    backend: str = request.param
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arbx-e2e-")))
            url = f"sqlite:///{folder / 'arbx.db'}"
        else:
            url = stack.enter_context(postgres_database())
        upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        sessions = make_session_factory(engine)
        seeded = seed(sessions, datetime.now(UTC))
        with sessions.begin() as session:
            operator = api_repo.add_token(session, "ops-alice", "operator")
            viewer = api_repo.add_token(session, "viewer-bob", "viewer")
        static = stack.enter_context(serve_static(WEB))
        base = stack.enter_context(serve_api(sessions, static))
        heartbeat = stack.enter_context(Heartbeat(sessions, seeded.run_id))
        yield Stack(backend, base, sessions, seeded, operator, viewer, heartbeat, static)


@pytest.fixture(scope="module")
def playwright_instance(chromium: str) -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright, chromium: str) -> Iterator[Browser]:
    # A fresh profile for every run: Playwright starts Chromium with a temporary user-data dir.
    browser = playwright_instance.chromium.launch(
        executable_path=chromium, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    # Refused requests log "Failed to load resource" by design; a blocked asset or script does not.
    ctx.on("console", partial(_csp_violation, errors))
    try:
        yield ctx
    finally:
        ctx.close()
    assert errors == [], f"errors in the page: {errors}"


def _csp_violation(errors: list[str], message: ConsoleMessage) -> None:
    if message.type == "error" and "Content Security Policy" in message.text:
        errors.append(message.text)


def shot(page: Page, stack: Stack, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot as a test artifact: build/e2e-screenshots/<backend>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays on top of the image
    page.screenshot(path=str(SCREENSHOTS / f"{stack.backend}-{name}.png"), full_page=full_page)


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("API token").fill(token)
    page.get_by_test_id("login-submit").click()
    page.get_by_role("tablist").wait_for(state="visible")


def expect() -> Any:
    from playwright.sync_api import expect as _expect  # noqa: PLC0415

    _expect.set_options(timeout=TIMEOUT_MS)
    return _expect


# --- tests ------------------------------------------------------------------------------------


def test_wei_amounts_are_formatted_exactly(context: BrowserContext, stack: Stack) -> None:
    """The formatting module itself, in the browser: BigInt all the way, rounding half away."""
    page = context.new_page()
    page.goto(stack.base + "/")
    results = page.evaluate(
        """async () => {
            const f = await import("./format.js");
            return [
                f.formatWei("1"),
                f.formatWei("499999999999"),
                f.formatWei("500000000000"),
                f.formatWei("-1500000000000000000"),
                f.formatWei((2n ** 256n - 1n).toString()),
                f.formatWei("123456789012345678901234567890"),
                f.formatWei("9007199254740993"),
                f.formatWei("not a number"),
                String(f.parseEthToWei("1.000000000000000001")),
                String(f.parseEthToWei("0.05")),
                String(f.parseEthToWei("1e18")),
                f.weiToEthInput("50000000000000000"),
                f.formatUnits("1234567891", 6),
                f.formatUnits("150000000", 8, 6),
            ];
        }"""
    )
    assert results == [
        "0.000000",
        "0.000000",
        "0.000001",
        "−1.500000",
        "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457.584008",
        "123,456,789,012.345679",
        "0.009007",
        "—",
        "1000000000000000001",
        "50000000000000000",
        "null",
        "0.05",
        "1,234.567891",
        "1.500000",
    ]


def test_pages_load_with_the_seeded_data(context: BrowserContext, stack: Stack) -> None:
    """Overview, opportunities, bundles (with a bundle's transactions) and pools show the data."""
    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/", stack.operator)
    expect_(page.get_by_test_id("role")).to_have_text("operator")
    expect_(page.get_by_test_id("token-name")).to_have_text("ops-alice")

    expect_(page.get_by_test_id("overview-mode")).to_have_text("shadow")
    expect_(page.get_by_test_id("overview-stage")).to_have_text("Stage 0")
    expect_(page.get_by_test_id("overview-kill")).to_have_text("Released")
    expect_(page.get_by_test_id("overview-run")).to_have_text(f"#{stack.seeded.run_id}")
    expect_(page.get_by_test_id("sync-health")).to_have_text("healthy")
    expect_(page.get_by_test_id("stream-state")).to_have_text("live")
    expect_(page.get_by_test_id("pnl-bundles")).to_have_text(str(BUNDLES))
    expect_(page.get_by_test_id("pnl-opportunities")).to_have_text(str(OPPORTUNITIES))
    expect_(page.locator("#ov-lat-n")).not_to_have_text("—")
    # A bar group per day of bundles, two bars (expected, realized) in each.
    groups = page.locator("[data-testid=pnl-chart] svg g.bar-group")
    expect_(groups).to_have_count(DAYS)
    expect_(groups.first.locator("rect.bar")).to_have_count(2)
    # The heartbeat thread moves the head: the status stream (or the poll) shows it.
    head = page.get_by_test_id("head-block")
    first = head.inner_text()
    expect_(head).not_to_have_text(first, timeout=8_000)
    shot(page, stack, "overview")

    # What could have been captured next to the sum of all found, each named, exact in wei.
    pnl = api_call(stack.base, stack.viewer, "GET", "/api/v1/pnl")[1]["opportunities"]
    capturable, found = pnl["capturable_net_profit_wei"], pnl["expected_net_profit_wei"]
    assert int(capturable) > 0
    totals = page.get_by_test_id("pnl-totals")
    expect_(totals).to_contain_text("Capturable (best pool-disjoint set per block)")
    expect_(totals).to_contain_text("Sum of all found (overlapping)")
    expect_(page.get_by_test_id("pnl-capturable")).to_have_attribute("title", f"{capturable} wei")
    expect_(page.get_by_test_id("pnl-sum-found")).to_have_attribute("title", f"{found} wei")
    page.get_by_test_id("series-opportunities").click()
    expect_(page.locator("[data-testid=pnl-chart] g.bar-group rect.opportunities")).to_have_count(
        DAYS
    )
    expect_(page.locator("[data-testid=pnl-chart] g.bar-group rect.capturable")).to_have_count(DAYS)
    shot(page, stack, "overview-capturable", full_page=False)
    page.get_by_test_id("series-bundles").click()

    page.get_by_role("tab", name="Opportunities").click()
    rows = page.get_by_test_id("opportunity-row")
    expect_(rows).to_have_count(50)
    expect_(rows.first).to_have_attribute("data-id", str(stack.seeded.last_opportunity))
    expect_(rows.first).to_contain_text("WETH")
    page.get_by_test_id("page-forward").click()
    expect_(rows.first).to_have_attribute("data-id", str(stack.seeded.last_opportunity - 50))
    page.get_by_test_id("page-back").click()
    expect_(rows.first).to_have_attribute("data-id", str(stack.seeded.last_opportunity))
    rows.first.locator("td.clickable-cell").click()  # only this route: a quarter of them
    expect_(rows).to_have_count(OPPORTUNITIES // 4)
    page.get_by_role("button", name="Clear").click()
    expect_(rows).to_have_count(50)
    shot(page, stack, "opportunities", full_page=False)

    page.get_by_role("tab", name="Bundles & executions").click()
    bundles = page.get_by_test_id("bundle-row")
    expect_(bundles).to_have_count(BUNDLES)
    expect_(bundles.first).to_have_attribute("data-id", str(stack.seeded.bundles[-1]))
    expect_(bundles.first.locator("[data-status]")).to_have_text("sent")
    expect_(page.locator("[data-testid=pnl-builder] tbody tr")).to_have_count(len(BUILDERS))
    bundles.nth(1).click()
    detail = page.get_by_test_id("bundle-detail")
    expect_(detail).to_be_visible()
    expect_(detail.locator("[data-testid=bundle-transactions] tbody tr")).to_have_count(
        1 + (BUNDLES - 2) % 2
    )
    shot(page, stack, "bundles")

    page.get_by_role("tab", name="Pools").click()
    expect_(page.get_by_test_id("pool-row")).to_have_count(len(stack.seeded.pools))
    page.get_by_label("Family").select_option("uniswap_v3")
    expect_(page.get_by_test_id("pool-row")).to_have_count(4)
    expect_(page.get_by_test_id("pools-table")).to_contain_text("WBTC")
    shot(page, stack, "pools", full_page=False)


def test_a_new_opportunity_appears_live(context: BrowserContext, stack: Stack) -> None:
    """An opportunity written to the database (and notified) shows up without a reload."""
    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/#opportunities", stack.viewer)
    expect_(page.get_by_test_id("panel-opportunities")).to_be_visible()
    rows = page.get_by_test_id("opportunity-row")
    expect_(rows.first).to_be_visible()
    expect_(page.get_by_test_id("stream-state")).to_have_text("live")
    page.evaluate("window.__loads = performance.getEntriesByType('navigation').length")

    new_id = add_live_opportunity(stack.sessions, stack.seeded.run_id, HEAD + 100)
    row = page.locator(f"[data-testid=opportunity-row][data-id='{new_id}']")
    expect_(row).to_be_visible()
    expect_(rows.first).to_have_attribute("data-id", str(new_id))
    # 0.123456789... ETH gross, less 0.004 gas and a 10% builder share: exact to 6 decimals.
    expect_(row.get_by_test_id("net-profit")).to_have_text("0.107111")
    expect_(row.get_by_test_id("net-profit")).to_have_attribute("title", "107111110111111111 wei")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    shot(page, stack, "opportunity-live", full_page=False)


def test_an_operator_changes_the_mode(context: BrowserContext, stack: Stack) -> None:
    """Operator: mode ceiling through the confirmation dialog; cancel changes nothing."""
    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/", stack.operator)
    page.get_by_role("tab", name="Controls").click()
    expect_(page.get_by_test_id("controls-readonly")).to_be_hidden()
    select = page.get_by_test_id("mode-select")
    expect_(select).to_be_enabled()
    expect_(page.get_by_test_id("controls-mode")).not_to_have_text("—")  # the tab has loaded
    before = api_call(stack.base, stack.operator, "GET", "/api/v1/mode")[1]["mode"]

    select.select_option("limited")
    page.get_by_test_id("mode-reason").fill("e2e: stage one capital")
    page.get_by_test_id("mode-apply").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect_(dialog).to_be_visible()
    expect_(dialog).to_contain_text("to limited")
    page.get_by_test_id("confirm-cancel").click()
    expect_(dialog).to_be_hidden()
    assert api_call(stack.base, stack.operator, "GET", "/api/v1/mode")[1]["mode"] == before

    page.get_by_test_id("mode-apply").click()
    expect_(dialog).to_be_visible()
    shot(page, stack, "controls-confirm", full_page=False)
    page.get_by_test_id("confirm-ok").click()
    expect_(page.get_by_test_id("controls-mode")).to_have_text("limited")
    expect_(page.get_by_test_id("error-banner")).to_contain_text("Mode ceiling set to limited")

    status, mode = api_call(stack.base, stack.operator, "GET", "/api/v1/mode")
    assert status == 200
    assert (mode["mode"], mode["source"], mode["updated_by"]) == ("limited", "api", "api:ops-alice")
    audit = page.get_by_test_id("audit-row").first
    expect_(audit).to_contain_text("api:ops-alice")
    expect_(audit).to_contain_text("e2e: stage one capital")
    shot(page, stack, "controls-operator")


def test_an_operator_cannot_raise_the_mode_or_the_limits(
    context: BrowserContext, stack: Stack
) -> None:
    """A ceiling above the configured mode, or a cap above the configured one: 409, shown."""
    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/#controls", stack.operator)
    expect_(page.get_by_test_id("limits-source")).not_to_be_empty()  # the tab has loaded
    before = api_call(stack.base, stack.operator, "GET", "/api/v1/mode")[1]
    assert before["configured"] == "limited"

    page.get_by_test_id("mode-select").select_option("scaled")
    page.get_by_test_id("mode-reason").fill("e2e: more capital")
    page.get_by_test_id("mode-apply").click()
    page.get_by_test_id("confirm-ok").click()
    banner = page.get_by_test_id("error-banner")
    expect_(banner).to_have_attribute("data-status", "409")
    expect_(banner).to_contain_text("above the configured mode limited")
    shot(page, stack, "controls-mode-refused", full_page=False)
    after = api_call(stack.base, stack.operator, "GET", "/api/v1/mode")[1]
    assert (after["mode"], after["updated_at"]) == (before["mode"], before["updated_at"])

    page.get_by_test_id("limit-gas").fill("0.06")  # the settings allow 0.05 ETH a day
    page.get_by_test_id("limit-loss").fill("0.1")
    page.get_by_test_id("limit-failures").fill("5")
    page.get_by_test_id("limits-save").click()
    page.get_by_test_id("confirm-ok").click()
    expect_(banner).to_have_attribute("data-status", "409")
    expect_(banner).to_contain_text("daily_gas_cap_wei 60000000000000000 is above the configured")
    audit = api_call(stack.base, stack.viewer, "GET", "/api/v1/audit")[1]
    actions = [entry["action"] for entry in audit["items"][:2]]
    assert actions == ["refuse_set_limits", "refuse_set_mode"]


def test_an_operator_uses_the_kill_switch_and_sets_limits(
    context: BrowserContext, stack: Stack
) -> None:
    """Kill switch engaged and released through confirmations; limits saved; a bad one refused."""
    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/#controls", stack.operator)
    expect_(page.get_by_test_id("limits-source")).not_to_be_empty()

    page.get_by_test_id("kill-reason").fill("e2e: relay outage")
    page.get_by_test_id("kill-engage").click()
    expect_(page.get_by_test_id("confirm-dialog")).to_contain_text("Engage the kill switch?")
    page.get_by_test_id("confirm-ok").click()
    expect_(page.get_by_test_id("header-kill")).to_have_text("kill switch ENGAGED")
    expect_(page.get_by_test_id("controls-kill")).to_contain_text("e2e: relay outage")
    status = api_call(stack.base, stack.viewer, "GET", "/api/v1/status")[1]
    assert status["kill_switch"]["engaged"] is True
    assert status["kill_switch"]["actor"] == "api:ops-alice"
    page.get_by_role("tab", name="Overview").click()
    expect_(page.get_by_test_id("overview-kill")).to_have_text("Engaged")
    shot(page, stack, "overview-killed", full_page=False)

    page.get_by_role("tab", name="Controls").click()
    page.get_by_test_id("kill-release").click()
    page.get_by_test_id("confirm-ok").click()
    expect_(page.get_by_test_id("header-kill")).to_have_text("kill switch released")
    status = api_call(stack.base, stack.viewer, "GET", "/api/v1/status")[1]
    assert status["kill_switch"]["engaged"] is False

    # A cap of zero: the API refuses it, and the banner says why in the API's words.
    page.get_by_test_id("limit-gas").fill("0")
    page.get_by_test_id("limit-loss").fill("0.1")
    page.get_by_test_id("limit-failures").fill("5")
    page.get_by_test_id("limits-save").click()
    page.get_by_test_id("confirm-ok").click()
    banner = page.get_by_test_id("error-banner")
    expect_(banner).to_have_attribute("data-status", "422")
    expect_(banner).to_contain_text("daily_gas_cap_wei")
    expect_(banner).to_contain_text("must be between 1 and 2^256 - 1")
    shot(page, stack, "controls-limits-refused", full_page=False)

    page.get_by_test_id("limit-gas").fill("0.05")
    inputs = page.get_by_test_id("limit-max-input").locator("input")
    inputs.nth(0).fill(WETH)
    inputs.nth(1).fill(str(2 * ETH))
    page.get_by_test_id("limits-reason").fill("e2e: stage one caps")
    page.get_by_test_id("limits-save").click()
    expect_(page.get_by_test_id("confirm-dialog")).to_contain_text("Daily gas cap 0.050000 ETH")
    page.get_by_test_id("confirm-ok").click()
    expect_(banner).to_contain_text("Limits saved")
    limits = api_call(stack.base, stack.viewer, "GET", "/api/v1/limits")[1]
    assert limits["source"] == "api"
    assert limits["max_input"] == {WETH: str(2 * ETH)}
    assert (limits["daily_gas_cap_wei"], limits["daily_loss_cap_wei"]) == (
        str(5 * 10**16),
        str(10**17),
    )
    assert limits["max_consecutive_failures"] == 5
    expect_(page.get_by_test_id("limit-gas")).to_have_value("0.05")
    expect_(page.get_by_test_id("limits-source")).to_contain_text("api:ops-alice")


def test_a_viewer_cannot_change_the_mode(context: BrowserContext, stack: Stack) -> None:
    """Viewer: controls disabled with the reason; a forced attempt is refused, visibly."""
    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/", stack.viewer)
    expect_(page.get_by_test_id("role")).to_have_text("viewer")
    page.get_by_role("tab", name="Controls").click()
    note = page.get_by_test_id("controls-readonly")
    expect_(note).to_be_visible()
    expect_(note).to_contain_text("viewer role")
    expect_(page.get_by_test_id("mode-select")).to_be_disabled()
    expect_(page.get_by_test_id("mode-apply")).to_be_disabled()
    expect_(page.get_by_test_id("kill-engage")).to_be_disabled()
    expect_(page.get_by_test_id("limits-save")).to_be_disabled()
    expect_(page.get_by_test_id("limits-source")).not_to_be_empty()  # the tab finished loading
    before = api_call(stack.base, stack.operator, "GET", "/api/v1/mode")[1]

    # A tampered page (controls re-enabled): the API refuses, and the refusal is shown.
    page.evaluate(
        "document.querySelectorAll('#mode-form select, #mode-form button')"
        ".forEach((el) => { el.disabled = false; })"
    )
    target = "scaled" if before["mode"] != "scaled" else "shadow"
    page.get_by_test_id("mode-select").select_option(target)
    page.get_by_test_id("mode-apply").click()
    page.get_by_test_id("confirm-ok").click()
    banner = page.get_by_test_id("error-banner")
    expect_(banner).to_be_visible()
    expect_(banner).to_have_attribute("data-status", "403")
    expect_(banner).to_contain_text("Refused (403)")
    expect_(banner).to_contain_text("needs an operator token")
    shot(page, stack, "controls-viewer-refused")

    after = api_call(stack.base, stack.operator, "GET", "/api/v1/mode")[1]
    assert (after["mode"], after["updated_at"]) == (before["mode"], before["updated_at"])
    status, body = api_call(stack.base, stack.viewer, "PUT", "/api/v1/mode", {"mode": target})
    assert status == 403
    assert "operator" in body["detail"]

    page.get_by_test_id("logout").click()
    expect_(page.get_by_test_id("login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('arbx.token')") is None


def test_a_bad_token_is_refused_at_sign_in(context: BrowserContext, stack: Stack) -> None:
    expect_ = expect()
    page = context.new_page()
    page.goto(stack.base + "/")
    expect_(page.get_by_test_id("api-note")).to_be_hidden()  # same origin: nothing to warn of
    page.get_by_label("API token").fill("not-a-real-token")
    page.get_by_test_id("login-submit").click()
    error = page.get_by_test_id("login-error")
    expect_(error).to_be_visible()
    expect_(error).to_contain_text("401")
    expect_(error).to_contain_text("invalid or revoked token")
    expect_(page.locator("#app")).to_be_hidden()
    shot(page, stack, "login-refused", full_page=False)


def test_served_from_a_static_host(context: BrowserContext, stack: Stack) -> None:
    """The same files from another origin, pointed at the API with ?api=, work the same."""
    expect_ = expect()
    page = context.new_page()
    page.goto(f"{stack.static}/index.html?api={stack.base}")
    expect_(page.get_by_test_id("api-input")).to_have_value(stack.base)
    # The sign-in form says where the token will go, since it is not the page's own origin.
    expect_(page.get_by_test_id("api-note")).to_contain_text(stack.base.removeprefix("http://"))
    sign_in(page, f"{stack.static}/index.html?api={stack.base}", stack.viewer)
    expect_(page.get_by_test_id("overview-mode")).not_to_have_text("—")
    expect_(page.get_by_test_id("stream-state")).to_have_text("live")
    page.get_by_role("tab", name="Pools").click()
    expect_(page.get_by_test_id("pool-row")).to_have_count(len(stack.seeded.pools))


def test_served_from_a_static_host_with_a_config_file(
    context: BrowserContext, stack: Stack
) -> None:
    """The same files with config.js naming the API (as the web container writes it): no ?api=."""
    expect_ = expect()
    page = context.new_page()
    script = f'window.ARBX_CONFIG = {{ api: "{stack.base}" }};\n'
    page.route(
        "**/config.js",
        lambda route: route.fulfill(body=script, content_type="application/javascript"),
    )
    page.goto(f"{stack.static}/index.html")
    expect_(page.get_by_test_id("api-input")).to_have_value(stack.base)
    sign_in(page, f"{stack.static}/index.html", stack.viewer)
    expect_(page.get_by_test_id("overview-mode")).not_to_have_text("—")
    page.get_by_role("tab", name="Pools").click()
    expect_(page.get_by_test_id("pool-row")).to_have_count(len(stack.seeded.pools))


def test_the_overview_shows_what_the_next_stage_gate_needs(
    context: BrowserContext, stack: Stack
) -> None:
    """The gate panel: before any live start, then for the seeded key at stage 0 (its seeded
    opportunities measure the detection latency; no parity check was recorded)."""
    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/", stack.viewer)
    gate = page.get_by_test_id("stage-gate")
    expect_(page.get_by_test_id("gate-next")).to_have_text(
        "stage 0 shadow (shadow) → stage 1 limited 0.1 (limited)"
    )
    expect_(page.get_by_test_id("gate-note")).to_contain_text("no live engine has started")
    expect_(page.get_by_test_id("gate-conditions").locator("tr")).to_have_count(6)

    signer = api_call(stack.base, stack.viewer, "GET", "/api/v1/bundles")[1]["items"][0]["signer"]
    with stack.sessions.begin() as s:
        rrepo.set_risk_state(
            s,
            CHAIN,
            signer,
            mode="shadow",
            stage=0,
            stage_entered_at=datetime.now(UTC) - timedelta(days=6),
            reason="first start",
        )
    page.reload()
    expect_(page.get_by_test_id("gate-note")).to_be_hidden()
    status = api_call(stack.base, stack.viewer, "GET", "/api/v1/stage")[1]
    rows = page.get_by_test_id("gate-condition")
    expect_(rows).to_have_count(len(status["conditions"]))
    for i, condition in enumerate(status["conditions"]):
        row = rows.nth(i)
        expect_(row).to_have_attribute("data-passed", str(condition["passed"]).lower())
        expect_(row.get_by_test_id("gate-measured")).to_have_text(condition["measured"])
    latency = rows.filter(has_text="detection latency p99")
    expect_(latency).to_have_attribute("data-passed", "true")
    expect_(latency).to_contain_text("ms over")
    parity = rows.filter(has_text="parity checks")
    expect_(parity).to_have_attribute("data-passed", "false")
    needs = page.get_by_test_id("gate-needs")
    expect_(needs).to_contain_text("parity checks >= 100 (now 0)")
    expect_(page.get_by_test_id("gate-badge")).to_have_text(f"{len(status['needs'])} to go")
    expect_(page.get_by_test_id("gate-last-change")).to_have_text("no stage change recorded")
    expect_(gate).to_contain_text("limited 0.1")
    shot(page, stack, "overview-stage-gate")


def test_the_overview_shows_what_became_of_the_opportunities(
    context: BrowserContext, stack: Stack
) -> None:
    """The self-scoring panel: nothing scored, then the seeded run's first opportunities scored
    (one ours, two taken by one competitor's transaction, one closed), as the API sums them."""
    from arbx.domain.scoring import Score  # noqa: PLC0415
    from arbx.store import score_repo  # noqa: PLC0415

    expect_ = expect()
    page = context.new_page()
    sign_in(page, stack.base + "/", stack.viewer)
    panel = page.get_by_test_id("scores")
    run = stack.seeded.run_id
    expect_(page.get_by_test_id("score-rate")).to_have_text("nothing scored")
    taker = "0x" + "7a" * 20
    outcomes = [
        Score("captured_us", 2),
        Score("captured_other", 3, taker, "0x" + "01" * 32, 3 * ETH // 2, WETH),
        Score("captured_other", 3, taker, "0x" + "01" * 32, 3 * ETH // 2, WETH),
        Score("closed", 4),
    ]
    with stack.sessions.begin() as s:
        waiting = score_repo.unscored(s, run, HEAD)[: len(outcomes)]
        for opportunity, score in zip(waiting, outcomes, strict=True):
            score_repo.add_score(s, opportunity, run, CHAIN, 3, score)
    page.reload()
    body = api_call(stack.base, stack.viewer, "GET", "/api/v1/scores")[1]
    assert body["run_id"] == run
    expect_(page.get_by_test_id("score-run")).to_have_text(
        f"run {run}: {body['scored']} opportunities scored"
    )
    for outcome, count in body["outcomes"].items():
        best = body["capturable_outcomes"][outcome]
        expect_(page.get_by_test_id(f"score-{outcome}")).to_have_text(
            f"{best} capturable · {count} found"
        )
    assert sum(body["capturable_outcomes"].values()) >= 1
    rate = f"{body['capturable_capture_rate'] * 100:.1f}% of capturable captured"
    expect_(page.get_by_test_id("score-rate")).to_have_text(rate)
    expect_(page.get_by_test_id("score-taken")).to_contain_text("1.500000 ETH")
    row = page.get_by_test_id("score-taker")
    expect_(row).to_have_count(1)
    expect_(row).to_contain_text(taker)
    expect_(panel).to_contain_text("Going live")
    sims = body["simulations"]  # the seeded statuses: found, simulated_ok or simulated_revert
    assert sum(sims.values()) <= body["scored"]
    expect_(page.get_by_test_id("score-simulated")).to_have_text(
        f"{sims['simulated_ok']} passed · {sims['simulated_revert']} failed · "
        f"{sims['unsimulated']} not simulated"
    )
    expect_(page.get_by_test_id("score-missed")).to_contain_text(
        f" in {body['going_live_trades']} simulated routes (every capturable: at most "
    )
    shot(page, stack, "overview-scores")
