"""The three five-minute walkthroughs ("Try it", docs/dapp.md), followed step by step in Debian's
chromium against a fresh `make run` (`dimo stack run` with its demo seed, on free ports, with
three vehicles and a day of history): an owner claims the first epoch's rewards, a data buyer
buys a licence and reads the vehicles it covers, a token holder votes on the demo's proposal and,
after the voting period and the timelock (the test moves the chain's clock instead of waiting),
executes it. Each uses the dApp's own dev-wallet picker, as a newcomer would.
Screenshots of every step go to artifacts/screenshots/.
"""

# The browser fixtures come from the dApp tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from web3 import Web3

from benchmarks.dapp import demo_run
from protocol.deployment import Deployment
from tests.dapp.conftest import Chain
from tests.dapp.test_dapp import TIMEOUT_MS, browser, playwright  # noqa: F401

pytestmark = pytest.mark.slow


class FreshRun:
    """The running platform: its API and its chain."""

    def __init__(self, api: str, chain: Chain) -> None:
        self.api = api
        self.chain = chain


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory: pytest.TempPathFactory, dapp_dist: Path) -> Iterator[FreshRun]:
    """`make run`'s command on free ports with three vehicles, until its demo is seeded."""
    data = tmp_path_factory.mktemp("fresh-run")
    with demo_run(data, vehicles=3, timeout_s=600) as run:
        output = "\n".join(run.output)
        assert "demo epoch 0 rewards" in output, output[-4000:]
        assert "demo product #1 (battery and charging" in output
        assert "demo proposal open for votes" in output
        # The roles `make run` prints are the ones the dApp's picker shows.
        assert re.search(r"5 0x\w+ +0x\w+ +data buyer", output), output[:4000]
        record = Deployment.load(data / "deployments" / "31337.json")
        yield FreshRun(run.api, Chain(run.rpc, record))


def open_page(browser: Browser, api: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(api)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
    return page


def use_dev_account(page: Page, index: int, role: str) -> None:
    """Step 1 of each walkthrough: pick the account by its role in the dev wallet, Use."""
    picker = page.locator("#dev-account")
    expect(picker.locator("option").nth(index)).to_contain_text(role, timeout=TIMEOUT_MS)
    picker.select_option(index=index)
    page.click("#connect-dev")
    expect(page.locator("#signed-in")).to_be_visible(timeout=TIMEOUT_MS)


def ok(page: Page, text: str) -> None:
    status = page.locator("#status")
    expect(status).to_have_attribute("data-kind", re.compile("ok|error"), timeout=TIMEOUT_MS)
    assert status.get_attribute("data-kind") == "ok", status.inner_text()
    expect(status).to_contain_text(text, timeout=TIMEOUT_MS)


def until(page: Page, what: str, check: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        page.click("#refresh")
        page.wait_for_timeout(1500)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def test_the_owner_walkthrough_claims_the_first_epochs_rewards(
    fresh_run: FreshRun, browser: Browser, screenshots: Path
) -> None:
    page = open_page(browser, fresh_run.api)
    use_dev_account(page, 2, "owner")
    overview = page.locator("#overview")
    expect(overview).to_contain_text("Vehicles", timeout=TIMEOUT_MS)
    card = page.locator("#vehicles details.vehicle").first
    expect(card.locator(".summary-line")).to_contain_text("charged")
    page.screenshot(path=str(screenshots / "walkthrough-owner-1-overview.png"), full_page=True)
    card.locator("summary").click()
    expect(card.locator("table.latest")).to_contain_text("Battery charge")
    # The rewards of epoch 0 open for claims after the local one-minute challenge delay.
    claim = card.locator("button[data-epoch='0']")
    until(page, "epoch 0 to be claimable", lambda: claim.count() == 1)
    claim.click()
    ok(page, "Claimed")
    until(page, "the claim to show", lambda: "claimed by" in card.inner_text())
    page.screenshot(path=str(screenshots / "walkthrough-owner-2-claimed.png"), full_page=True)


def test_the_buyer_walkthrough_buys_a_licence_and_reads_the_covered_vehicles(
    fresh_run: FreshRun, browser: Browser, screenshots: Path
) -> None:
    page = open_page(browser, fresh_run.api)
    page.click("a[data-view='buyer']")
    use_dev_account(page, 5, "data buyer")
    expect(page.locator("#buyer-balance")).to_contain_text("1,000 DIMO", timeout=TIMEOUT_MS)
    products = page.locator("#products")
    expect(products).to_contain_text("#1")
    expect(products).to_contain_text("#2")
    page.screenshot(path=str(screenshots / "walkthrough-buyer-1-products.png"), full_page=True)
    page.click("button[data-product='1']")
    ok(page, "Licence bought")
    readable = page.locator("#readable")
    until(page, "the covered vehicles to show", lambda: "#1" in readable.inner_text())
    page.fill("input[name='query-vehicle']", "1")
    page.click("#query-button")
    result = page.locator("#query-result p").first
    expect(result).to_have_attribute("data-outcome", "data", timeout=TIMEOUT_MS)
    expect(page.locator("#query-result")).to_contain_text("Battery charge")
    page.screenshot(path=str(screenshots / "walkthrough-buyer-2-query.png"), full_page=True)


def test_the_holder_walkthrough_votes_queues_and_executes_the_demo_proposal(
    fresh_run: FreshRun, browser: Browser, screenshots: Path
) -> None:
    page = open_page(browser, fresh_run.api)
    page.click("a[data-view='holder']")
    use_dev_account(page, 6, "token holder")
    expect(page.locator("#votes")).to_contain_text("10,000,000 DIMO", timeout=TIMEOUT_MS)
    state = page.locator(".proposal-list span.state").first
    until(
        page, "the demo proposal to open", lambda: state.count() and state.inner_text() == "Active"
    )
    page.screenshot(path=str(screenshots / "walkthrough-holder-1-active.png"), full_page=True)
    page.click("button[data-vote='for']")
    ok(page, "Vote cast")
    governor = fresh_run.chain.contract("DimoGovernor")
    _, period, _, _ = governor.functions.settings().call()
    fresh_run.chain.move_time(period + 1)  # "come back after the ten-minute voting period"
    until(page, "the vote to end", lambda: state.inner_text() == "Succeeded")
    page.click("button[data-action='queue']")
    ok(page, "Queue: done")
    until(page, "the proposal to be queued", lambda: state.inner_text() == "Queued")
    execute = page.locator("button[data-action='execute']")
    expect(execute).to_be_disabled()
    expect(page.locator(".proposal-list [data-eta]")).to_contain_text("executable in")
    page.screenshot(path=str(screenshots / "walkthrough-holder-2-queued.png"), full_page=True)
    delay = fresh_run.chain.contract("DimoTimelock").functions.getMinDelay().call()
    fresh_run.chain.move_time(int(delay) + 1)
    until(page, "Execute to be allowed", lambda: execute.is_enabled())
    execute.click()
    ok(page, "Execute: done")
    flag = page.locator("[data-flag='FEATURE_GRID_PROGRAMMES']")
    until(page, "the flag to turn on", lambda: flag.get_attribute("data-value") == "true")
    key = Web3.keccak(text="FEATURE_GRID_PROGRAMMES")
    assert fresh_run.chain.contract("Parameters").functions.flag(key).call()
    page.screenshot(path=str(screenshots / "walkthrough-holder-3-executed.png"), full_page=True)
