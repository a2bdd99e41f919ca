"""The dApp as a product, in Debian's chromium against the whole local platform: the owner view
of eight vehicles in at most ten requests, no horizontal overflow at 390 px, no serious or
critical axe-core violation, a failing transaction said in words, and a session that renews its
token and, once it cannot, asks to sign in again.

This module's indexer issues 20-second tokens and refuses renewal 45 s after a sign-in, so
that the session's life runs inside a test. Screenshots go to artifacts/screenshots/.
"""

# The browser fixtures come from the dApp tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Request, expect

from stack.seed import OWNERS, dev_account
from tests.dapp.conftest import GRANTEE, ROOT, LocalPlatform
from tests.dapp.test_dapp import (  # fixtures shared with the other browser tests
    TIMEOUT_MS,
    browser,  # noqa: F401
    open_dapp,  # noqa: F401
    playwright,  # noqa: F401
)

pytestmark = pytest.mark.slow

TOKEN_TTL_S = 20
SESSION_MAX_S = 45
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
VIEWS = ("owner", "buyer", "holder")


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    return {
        "DIMO_INDEXER_JWT_TTL_S": str(TOKEN_TTL_S),
        "DIMO_INDEXER_SESSION_MAX_S": str(SESSION_MAX_S),
    }


def owner_index(stack: LocalPlatform) -> int:
    return next(i for i in OWNERS if dev_account(i).address == stack.fleet[0].owner)


@pytest.fixture(scope="module")
def eight_vehicles(stack: LocalPlatform) -> int:
    """The first vehicle's owner mints seven more (no device), so that it owns eight; waits
    until the indexer lists them; returns the owner's dev account index."""
    index = owner_index(stack)
    owner = dev_account(index)
    vehicle_id = stack.contract("VehicleId")
    for n in range(7):
        commitment = bytes.fromhex(f"{0xD0 + n:02x}" * 32)
        stack.send(owner, vehicle_id.functions.mint("Hyundai", "Kona Electric", 2019, commitment))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = httpx.get(f"{stack.api}/vehicles", params={"owner": owner.address}, timeout=10)
        if len(body.json()["items"]) == 8:
            return index
        time.sleep(0.5)
    pytest.fail("the indexer did not list the owner's eight vehicles within 60 s")


def test_the_owner_view_of_eight_vehicles_takes_at_most_ten_requests(
    stack: LocalPlatform, open_dapp: Any, eight_vehicles: int
) -> None:
    dapp = open_dapp(eight_vehicles, "owner")
    page = dapp.page
    cards = page.locator("#vehicles details.vehicle")
    expect(cards).to_have_count(8, timeout=TIMEOUT_MS)
    requests: list[str] = []

    def seen(request: Request) -> None:
        requests.append(f"{request.method} {request.url}")

    page.on("request", seen)
    started = time.monotonic()
    page.click("#refresh")
    expect(page.locator("#view-owner[data-loading]")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(cards).to_have_count(8, timeout=TIMEOUT_MS)
    elapsed_ms = (time.monotonic() - started) * 1000
    page.remove_listener("request", seen)
    assert len(requests) <= 10, "\n".join(requests)
    assert elapsed_ms < 10_000
    # Collapsed, each with its summary line; the paired one reports its charge and last reading.
    assert page.locator("#vehicles details.vehicle[open]").count() == 0
    first = page.locator(f"#vehicle-{stack.fleet[0].vehicle_id} .summary-line")
    expect(first).to_contain_text("charged")
    expect(first).to_contain_text("seen")
    expect(page.locator("#overview")).to_contain_text("8 (")
    dapp.shot("owner-overview-eight-vehicles")
    # Opening a card draws it from the same answer: labels with units, not raw VSS paths.
    page.locator(f"#vehicle-{stack.fleet[0].vehicle_id} summary").click()
    signals = page.locator(f"#vehicle-{stack.fleet[0].vehicle_id} table.latest")
    expect(signals).to_contain_text("Battery charge")
    expect(signals).to_contain_text("km")
    assert "Vehicle.Powertrain.Range" not in signals.inner_text()
    dapp.shot("owner-card-open")
    assert not dapp.errors


def test_each_application_answers_in_plain_lines_with_its_chart_or_why_there_is_none(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    vehicle = stack.fleet[0].vehicle_id
    dapp = open_dapp(owner_index(stack), "owner")
    page = dapp.page
    card = page.locator(f"#vehicle-{vehicle}")
    card.locator("summary").click()
    out = card.locator(".app-output")
    for app in ("battery", "finance", "insurance", "energy"):
        dapp.act(card.locator(f"button[data-app='{app}']"), f"{app.capitalize()} loaded")
        # A few plain lines first, the JSON one click away (closed), never a cut-off dump.
        expect(out.locator("h5")).to_contain_text(f"{app.capitalize()} of vehicle #{vehicle}")
        expect(out.locator("details.raw")).not_to_have_attribute("open", "")
        assert not out.locator("details.raw pre.json").is_visible()
        chart = out.locator("img.chart, .energy-chart")
        reason = out.locator("p.empty", has_text="No chart:")
        expect(chart.or_(reason)).to_be_visible(timeout=TIMEOUT_MS)
        if app != "energy":
            # The PNG charts (insurance asks for the one day its route allows) are drawn.
            expect(out.locator("img.chart")).to_be_visible()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0",
                arg=out.locator("img.chart").element_handle(),
                timeout=TIMEOUT_MS,
            )
        dapp.shot(f"owner-app-{app}")
    assert not dapp.errors


@pytest.mark.parametrize("view", VIEWS)
def test_no_view_overflows_horizontally_at_390_px(
    stack: LocalPlatform, browser: Browser, view: str, screenshots: Any
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        index = owner_index(stack) if view == "owner" else 5
        page.goto(f"{stack.api}/?as={index}#{view}")
        expect(page.locator("#signed-in")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator(f"#view-{view}:not([data-loading])")).to_be_visible(timeout=TIMEOUT_MS)
        if view == "owner":
            page.locator("details.vehicle summary").first.click()
            page.locator("button[data-app='battery']").first.click()
            page.wait_for_timeout(1500)
        width = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(screenshots / f"mobile-390-{view}.png"), full_page=True)
        assert width <= 390, f"the {view} view is {width} px wide at a 390 px viewport"
    finally:
        context.close()


@pytest.mark.parametrize("view", VIEWS)
def test_axe_finds_no_serious_or_critical_violation(
    stack: LocalPlatform, browser: Browser, view: str
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        index = owner_index(stack) if view == "owner" else 5
        page.goto(f"{stack.api}/?as={index}#{view}")
        expect(page.locator(f"#view-{view}:not([data-loading])")).to_be_visible(timeout=TIMEOUT_MS)
        if view == "owner":
            page.locator("details.vehicle summary").first.click()
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => (await axe.run(document)).violations")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} - {[n['target'] for n in v['nodes']][:3]}"
            for v in result
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, "\n".join(bad)
    finally:
        context.close()


def test_a_purchase_without_enough_dimo_is_refused_in_words(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    """Dev account 8 holds no DIMO: the permit is signed, the purchase reverts in DimoToken
    with ERC20InsufficientBalance (selector 0xe450d38c), and the page says so in words."""
    token = stack.contract("DimoToken")
    assert token.functions.balanceOf(dev_account(GRANTEE).address).call() == 0
    dapp = open_dapp(GRANTEE, "buyer")
    page = dapp.page
    buy = page.locator(f"button[data-product='{stack.product_id}']")
    expect(buy).to_be_visible(timeout=TIMEOUT_MS)
    buy.click()
    status = page.locator("#status")
    expect(status).to_have_attribute("data-kind", "error", timeout=TIMEOUT_MS)
    expect(status).to_contain_text("Not enough DIMO")
    expect(status).to_contain_text("needs 10 DIMO")
    assert "0xe450d38c" not in status.inner_text()
    dapp.shot("buyer-insufficient-balance")


def test_the_session_renews_its_token_then_asks_to_sign_in_again_when_it_ends(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    dapp = open_dapp(owner_index(stack), "owner")
    page = dapp.page
    renewals: list[str] = []

    def seen(request: Request) -> None:
        if request.url.endswith("/auth/refresh"):
            renewals.append(request.url)

    page.on("request", seen)
    signed_at = time.monotonic()
    # Past the first token's life: the page renewed it, and the view still loads.
    page.wait_for_timeout((TOKEN_TTL_S + 5) * 1000)
    page.click("#refresh")
    expect(page.locator("#vehicles details.vehicle").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#signed-in")).to_be_visible()
    assert renewals, "the token was renewed before it expired"
    # Past the session's longest life: the renewal is refused and the page asks to sign in.
    left = SESSION_MAX_S + TOKEN_TTL_S - (time.monotonic() - signed_at)
    expect(page.locator("#session-ended")).to_be_visible(timeout=int(left * 1000) + TIMEOUT_MS)
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("session ended")
    expect(page.locator("#view")).to_have_text("Sign in again to see your data.")
    dapp.shot("owner-session-ended")
    # Signing in again brings the view back.
    page.click("#sign-in")
    expect(page.locator("#vehicles details.vehicle").first).to_be_visible(timeout=TIMEOUT_MS)
    assert not dapp.errors
