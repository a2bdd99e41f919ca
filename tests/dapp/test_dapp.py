"""The dApp in Debian's chromium, driven by Playwright, against the whole local platform: a
buyer buys a licence with a permit and reads only the vehicle it covers; a token holder
delegates, proposes, votes by signature (another votes by transaction), and after queueing and
executing through the timelock sees the feature flag change; an owner grants a scope, checks a
proof on-chain, opens an application's chart, claims rewards and licence revenue, and revokes.

The page's wallet is `window.ethereum` injected by the test: the dApp's own dev-wallet provider
(dapp/src/devwallet.js, over anvil's dev accounts) as an injected script. The token holder
uses the dApp's dev-wallet picker instead. Screenshots of every page go to
artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from web3 import Web3

from stack.seed import OWNERS, dev_account
from tests.dapp.conftest import (
    BUYER,
    GRANTEE,
    HOLDER,
    PRODUCT_PRICE,
    ROOT,
    LocalPlatform,
)

pytestmark = pytest.mark.slow

#: The dApp's dev-wallet provider as a classic script (it imports nothing).
DEV_WALLET = (
    (ROOT / "dapp" / "src" / "devwallet.js").read_text().replace("export function", "function")
)
#: Milliseconds a page may take to show the outcome of an action (a transaction, then the
#: indexer catching up with it).
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
    yield browser
    browser.close()


class Dapp:
    """One browser page of the dApp, signed in as one dev account."""

    def __init__(self, page: Page, shots: Path, errors: list[str]) -> None:
        self.page = page
        self.shots = shots
        self.errors = errors

    def done(self, text: str) -> None:
        """Waits until the status line reports success containing `text` (fails on an error)."""
        status = self.page.locator("#status")
        expect(status).to_have_attribute("data-kind", re.compile("ok|error"), timeout=TIMEOUT_MS)
        if status.get_attribute("data-kind") == "error":
            pytest.fail(f"the dApp reported: {status.inner_text()}")
        expect(status).to_contain_text(text, timeout=TIMEOUT_MS)

    def act(self, locator: Any, outcome: str) -> None:
        """Clicks `locator` and waits for the action's `outcome` in the status line."""
        locator.click()
        self.done(outcome)

    def until(self, what: str, check: Callable[[], bool], timeout_s: float = 30) -> None:
        """Refreshes the view until `check()` holds (the indexer follows the chain)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(300)
            if check():
                return
            self.page.click("#refresh")
            self.page.wait_for_timeout(700)
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")

    def rerender(self) -> None:
        """Renders the view again, as the refreshes after a transaction do (the focus stays
        where it is), and waits for the new render."""
        self.page.locator("#view > div").evaluate("el => { el.dataset.stale = '' }")
        self.page.evaluate("document.getElementById('refresh').click()")
        expect(self.page.locator("#view > div:not([data-stale])")).to_have_count(
            1, timeout=TIMEOUT_MS
        )

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@pytest.fixture
def open_dapp(browser: Browser, stack: LocalPlatform, screenshots: Path) -> Iterator[Any]:
    """Opens the dApp at a view with `window.ethereum` for dev account `index`, signed in."""
    contexts = []

    def open_as(index: int | None, view: str) -> Dapp:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        if index is not None:
            args = f"{json.dumps(stack.rpc_url)}, {json.dumps(dev_account(index).address)}"
            page.add_init_script(f"{DEV_WALLET}\nwindow.ethereum = devWalletProvider({args});")
        page.goto(f"{stack.api}/#{view}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
        dapp = Dapp(page, screenshots, errors)
        if index is not None:
            page.click("#connect-injected")
            expect(page.locator("#signed-in")).to_be_visible(timeout=TIMEOUT_MS)
            dapp.done("Signed in as " + dev_account(index).address)
        return dapp

    yield open_as
    for context in contexts:
        context.close()


def test_a_buyer_buys_a_licence_with_a_permit_and_reads_only_the_covered_vehicle(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    covered, other = stack.fleet[0].vehicle_id, stack.fleet[1].vehicle_id
    buyer = dev_account(BUYER).address
    token = stack.contract("DimoToken")
    before = token.functions.balanceOf(buyer).call()
    dapp = open_dapp(BUYER, "buyer")
    page = dapp.page
    products = page.locator("#products")
    expect(products).to_contain_text(f"#{stack.product_id}", timeout=TIMEOUT_MS)
    dapp.shot("buyer-products")

    # The permit is signed in the wallet (eth_signTypedData_v4); no approve transaction.
    nonce = token.functions.nonces(buyer).call()
    dapp.act(page.locator(f"button[data-product='{stack.product_id}']"), "Licence bought")
    assert token.functions.nonces(buyer).call() == nonce + 1, "the permit was used"
    assert token.functions.balanceOf(buyer).call() == before - PRODUCT_PRICE
    market = stack.contract("DataMarket")
    assert market.functions.licenceOf(buyer, stack.product_id).call() > 0
    dapp.until(
        "the licence to be indexed",
        lambda: (
            "active" in page.locator("#licences").inner_text()
            and f"#{covered}" in page.locator("#readable").inner_text()
        ),
    )
    assert f"#{other}" not in page.locator("#readable").inner_text()

    page.fill("input[name='query-vehicle']", str(covered))
    page.click("#query-button")
    result = page.locator("#query-result p").first
    expect(result).to_have_attribute("data-outcome", "data", timeout=TIMEOUT_MS)
    assert page.locator("#query-result tbody tr").count() > 0, "the covered vehicle's readings"
    assert "Speed" in page.locator("#query-result").inner_text()
    dapp.shot("buyer-covered-vehicle")

    page.fill("input[name='query-vehicle']", str(other))
    page.click("#query-button")
    expect(result).to_have_attribute("data-outcome", "denied", timeout=TIMEOUT_MS)
    assert page.locator("#query-result tbody tr").count() == 0
    dapp.shot("buyer-uncovered-vehicle")
    assert not dapp.errors


def test_a_token_holder_votes_and_after_execution_sees_the_feature_flag_change(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    holder = dev_account(HOLDER).address
    parameters = stack.contract("Parameters")
    key = Web3.keccak(text="FEATURE_GRID_PROGRAMMES")
    assert not parameters.functions.flag(key).call()
    # The dApp's own dev wallet (anvil's accounts), no injected wallet.
    dapp = open_dapp(None, "holder")
    page = dapp.page
    page.select_option("#dev-account", holder)
    page.click("#connect-dev")
    dapp.done("Signed in as " + holder)
    flag = page.locator("[data-flag='FEATURE_GRID_PROGRAMMES']")
    expect(flag).to_have_attribute("data-value", "false", timeout=TIMEOUT_MS)

    dapp.act(page.locator("#delegate"), "Delegated")
    assert stack.contract("DimoToken").functions.getVotes(holder).call() > 0
    choice = page.locator("select[name='flag']")
    expect(choice).to_have_value("FEATURE_COMMANDS_SCOPE")  # the first flag, by default
    page.select_option("select[name='flag']", "FEATURE_GRID_PROGRAMMES")
    page.select_option("select[name='flag-value']", "true")
    choice.focus()  # as after a pick with the mouse
    # A render while the form is being filled in (the delegation's own refreshes come 1.5 and
    # 4 s after it) keeps what was chosen: the proposal is the one the holder picked.
    dapp.rerender()
    expect(choice).to_have_value("FEATURE_GRID_PROGRAMMES")
    expect(choice).to_be_focused()
    dapp.act(page.locator("#propose-button"), "Proposed")
    # Once proposed, the form is back to its defaults.
    expect(choice).to_have_value("FEATURE_COMMANDS_SCOPE", timeout=TIMEOUT_MS)
    state = page.locator(".proposal-list span.state").first
    dapp.until("the proposal to be indexed", lambda: state.count() > 0)
    expect(page.locator(".proposal-list")).to_contain_text("Turn FEATURE_GRID_PROGRAMMES on")
    proposal_id = int(state.get_attribute("data-proposal") or 0)
    governor = stack.contract("DimoGovernor")
    delay, period, _, _ = governor.functions.settings().call()

    stack.move_time(delay + 1)
    dapp.until("voting to open", lambda: state.inner_text() == "Active")
    dapp.shot("holder-proposal-active")
    dapp.act(page.locator("button[data-vote='for-by-sig']"), "Vote cast by signature")
    assert governor.functions.hasVoted(proposal_id, holder).call()
    against, votes_for, _ = governor.functions.proposalVotes(proposal_id).call()
    assert votes_for == stack.contract("DimoToken").functions.getVotes(holder).call()
    # Another holder votes with a transaction of its own (castVote), from an injected wallet.
    other = open_dapp(BUYER, "holder")
    other_state = other.page.locator(".proposal-list span.state").first
    other.until("the proposal to show", lambda: other_state.count() > 0)
    other.act(other.page.locator("button[data-vote='against']"), "Vote cast")
    assert governor.functions.hasVoted(proposal_id, dev_account(BUYER).address).call()
    assert governor.functions.proposalVotes(proposal_id).call()[0] == against, "no votes delegated"

    stack.move_time(period + 1)
    dapp.until("the vote to end", lambda: state.inner_text() == "Succeeded")
    dapp.act(page.locator("button[data-action='queue']"), "Queue: done")
    dapp.until("the proposal to be queued", lambda: state.inner_text() == "Queued")
    timelock = stack.contract("DimoTimelock")
    stack.move_time(int(timelock.functions.getMinDelay().call()) + 1)
    dapp.act(page.locator("button[data-action='execute']"), "Execute: done")
    dapp.until("the proposal to be executed", lambda: state.inner_text() == "Executed")
    expect(flag).to_have_attribute("data-value", "true", timeout=TIMEOUT_MS)
    assert parameters.functions.flag(key).call()
    dapp.shot("holder-flag-changed")
    assert not dapp.errors


def test_an_owner_grants_a_scope_checks_a_proof_claims_rewards_and_revenue_and_revokes(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    vehicle = stack.fleet[0]
    owner = next(i for i in OWNERS if dev_account(i).address == vehicle.owner)
    grantee = dev_account(GRANTEE).address
    dapp = open_dapp(owner, "owner")
    page = dapp.page
    card = page.locator(f"#vehicle-{vehicle.vehicle_id}")
    card.locator("summary").click()  # cards are collapsed to a summary line
    expect(card).to_contain_text(vehicle.device, timeout=TIMEOUT_MS)
    expect(card.locator("table.latest")).to_contain_text("Speed")
    dapp.shot("owner-vehicles")

    # A render while the grantee is being typed keeps the text and the focus: typing goes on.
    typed = card.locator("input[name='grantee']")
    typed.fill(grantee[:20])
    dapp.rerender()
    expect(typed).to_be_focused()
    page.keyboard.type(grantee[20:])
    expect(typed).to_have_value(grantee)

    # Grant DRIVING and ODOMETER to the grantee.
    card.locator(f"input[name='grant-{vehicle.vehicle_id}-DRIVING']").check()
    card.locator(f"input[name='grant-{vehicle.vehicle_id}-ODOMETER']").check()
    dapp.act(card.get_by_role("button", name="Grant"), "Granted")
    rights = stack.contract("VehicleRights")
    scopes, _expiry = rights.functions.privilegesOf(vehicle.vehicle_id, grantee).call()
    assert scopes == 0b1100
    dapp.until(
        "the grant to be indexed", lambda: grantee in card.locator(".grant-list").inner_text()
    )
    assert "ODOMETER, DRIVING" in card.locator(".grant-list").inner_text()

    # The proof of a value, verified on-chain by AttestationAnchor.verifyReading.
    dapp.act(card.locator("button[data-signal='Vehicle.Speed']"), "The proof verifies on-chain")
    expect(card.locator(".proof p")).to_have_attribute("data-verified", "true")

    # An application's view with its chart.
    dapp.act(card.locator("button[data-app='battery']"), "Battery loaded")
    expect(card.locator("img.chart")).to_be_visible()
    dapp.shot("owner-grant-proof-battery")

    # Rewards of epoch 0: posted by the oracle quorum, claimed from the page with the API's proof.
    stack.post_rewards(0)
    claim = card.locator("button[data-epoch='0']")
    dapp.until("the epoch's rewards to be claimable", lambda: claim.count() == 1, 60)
    token = stack.contract("DimoToken")
    before = token.functions.balanceOf(vehicle.owner).call()
    dapp.act(claim, "Claimed")
    assert stack.contract("Rewards").functions.isClaimed(0, vehicle.vehicle_id).call()
    assert token.functions.balanceOf(vehicle.owner).call() > before
    dapp.until(
        "the claim to be indexed", lambda: "claimed by" in card.locator(".reward-list").inner_text()
    )

    # Licence revenue: the vehicle's share of the licences sold for the product it is in. It
    # streams over the licence's period to the opted-in, paired vehicles, so a day passes first.
    market = stack.contract("DataMarket")
    buyer = dev_account(BUYER)
    expiry = market.functions.licenceOf(buyer.address, stack.product_id).call()
    if expiry <= stack.w3.eth.get_block("latest")["timestamp"]:
        stack.send(buyer, token.functions.approve(market.address, PRODUCT_PRICE))
        stack.send(buyer, market.functions.buy(stack.product_id, 1))
    stack.move_time(86_400)
    share = market.functions.claimable(vehicle.vehicle_id, stack.product_id).call()
    assert share > 0
    revenue = card.locator("button[data-claim='revenue']")
    dapp.until("the revenue to be indexed", lambda: revenue.count() == 1)
    before = token.functions.balanceOf(vehicle.owner).call()
    start = stack.w3.eth.block_number
    dapp.act(revenue, "Revenue claimed")
    assert market.functions.claimable(vehicle.vehicle_id, stack.product_id).call() == 0
    # The claim pays what streamed until its block: the share seen above and what came since.
    (claimed,) = market.events.RevenueClaimed().get_logs(from_block=start + 1)
    assert claimed["args"]["vehicleId"] == vehicle.vehicle_id
    assert claimed["args"]["amount"] >= share
    assert token.functions.balanceOf(vehicle.owner).call() == before + claimed["args"]["amount"]
    dapp.until("the revenue claim to be indexed", lambda: revenue.count() == 0)
    dapp.shot("owner-rewards-and-revenue-claimed")

    dapp.act(card.locator(".grant-list button"), "Revoked")
    scopes, _expiry = rights.functions.privilegesOf(vehicle.vehicle_id, grantee).call()
    assert scopes == 0
    dapp.until("the revocation to be indexed", lambda: card.locator(".grant-list").count() == 0)
    assert not dapp.errors
