"""The owner's application views in Debian's chromium, against the whole local platform: the
four apps' charts drawn from real readings over the windows the API allows (the energy chart
from the fleet's charging sessions), a grid region declared through the form (signed in the
wallet, EIP-712 under VehicleId's domain) that the API then serves for the vehicle, and proofs
named by the signal's label and unit. Screenshots go to artifacts/screenshots/.
"""

# The browser fixtures come from the dApp tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from playwright.sync_api import expect

from indexer.api.apps_energy_common import MAX_WINDOW_MS
from indexer.api.routes.apps_insurance import MAX_CHART_MS
from protocol.signal_labels import label_of
from stack.seed import OWNERS, dev_account
from tests.dapp.conftest import LocalPlatform
from tests.dapp.test_dapp import (  # fixtures shared with the other browser tests
    TIMEOUT_MS,
    browser,  # noqa: F401
    open_dapp,  # noqa: F401
    playwright,  # noqa: F401
)
from tests.stack.test_e2e import sign_in

pytestmark = pytest.mark.slow

#: The region the owner declares (an ENTSO-E style bidding zone code).
REGION = "DE-BW"
DAY_MS = 86_400_000
#: Each app's chart window as the dApp asks for it: the insurance chart spans at most what the
#: API draws (a day), the energy sessions at most what it answers for (92 days).
CHART_WINDOWS_MS = {
    "battery": 30 * DAY_MS,
    "finance": 30 * DAY_MS,
    "insurance": MAX_CHART_MS,
    "energy": min(30 * DAY_MS, MAX_WINDOW_MS),
}
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def open_owner_card(stack: LocalPlatform, open_dapp: Any) -> tuple[Any, Any]:
    """The dApp signed in as the owner of the fleet's first vehicle (a Kona, which reports its
    charging), with that vehicle's card opened."""
    vehicle = stack.fleet[0]
    index = next(i for i in OWNERS if dev_account(i).address == vehicle.owner)
    dapp = open_dapp(index, "owner")
    card = dapp.page.locator(f"#vehicle-{vehicle.vehicle_id}")
    card.locator("summary").click()  # cards are collapsed to a summary line
    expect(card).to_contain_text(vehicle.device, timeout=TIMEOUT_MS)
    return dapp, card


def test_all_four_apps_draw_their_charts_from_real_readings_over_the_windows_the_api_allows(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    dapp, card = open_owner_card(stack, open_dapp)
    page = dapp.page
    out = card.locator(".app-output")
    for app, span_ms in CHART_WINDOWS_MS.items():
        name = app.capitalize()
        dapp.act(card.locator(f"button[data-app='{app}']"), f"{name} loaded")
        expect(out.locator("h5")).to_contain_text(f"{name} of vehicle")
        expect(out).not_to_contain_text("No chart")
        answer = json.loads(out.locator("pre.json").text_content() or "null")
        assert answer["end"] - answer["start"] == span_ms, app
        assert answer["inputs"], f"the {app} answer read no anchored bundle"
        if app == "energy":
            sessions = answer["result"]["sessions"]
            assert sessions, "the fleet's Kona charged in the window"
            assert any(s["energy_kwh"] > 0 for s in sessions)
            chart = out.locator(".energy-chart")
            expect(chart.locator("canvas")).to_have_count(1)
            expect(chart).to_have_attribute("data-x-max", re.compile(r"^\d"))
            # The chart's own state: one bar per session, the time axis spanning the window.
            assert chart.get_attribute("data-points") == str(len(sessions))
            assert float(chart.get_attribute("data-x-min") or "nan") == answer["start"] / 1000
            assert float(chart.get_attribute("data-x-max") or "nan") == answer["end"] / 1000
            for s in sessions:
                assert answer["start"] <= s["start_ms"] < answer["end"]
        else:
            chart = out.locator("img.chart")
            expect(chart).to_have_attribute("alt", f"{name} chart")
            assert chart.get_attribute("data-start") == str(answer["start"])
            assert chart.get_attribute("data-end") == str(answer["end"])
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0",
                arg=chart.element_handle(),
                timeout=TIMEOUT_MS,
            )
            assert chart.evaluate("img => img.naturalWidth") > 400
        dapp.shot(f"owner-{app}-chart")
    assert not dapp.errors


def test_a_proof_is_named_by_the_signals_label_and_unit_with_the_vss_path_as_its_title(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    dapp, card = open_owner_card(stack, open_dapp)
    label = label_of(SOC)
    dapp.act(card.locator(f"button[data-signal='{SOC}']"), "The proof verifies on-chain")
    status = dapp.page.locator("#status")
    expect(status).to_contain_text(f"{label.label} = ")
    expect(status).to_contain_text(label.unit)
    line = card.locator(".proof p")
    expect(line).to_have_attribute("data-verified", "true")
    expect(line).to_have_attribute("title", SOC)
    text = line.inner_text()
    assert text.startswith(f"{label.label} = ")
    assert text.endswith("verifyReading returned true")
    assert label.unit in text
    assert "Vehicle." not in text
    assert "Vehicle." not in status.inner_text()
    dapp.shot("owner-proof-named")
    assert not dapp.errors


def test_an_owner_sees_the_finance_chart_and_declares_the_vehicles_grid_region(
    stack: LocalPlatform, open_dapp: Any
) -> None:
    vehicle = stack.fleet[0]
    index = next(i for i in OWNERS if dev_account(i).address == vehicle.owner)
    owner = dev_account(index)
    headers = sign_in(stack.api, owner, urlsplit(stack.api).netloc)
    region_url = f"{stack.api}/apps/energy/{vehicle.vehicle_id}/region"
    assert httpx.get(region_url, headers=headers, timeout=10).status_code == 404, "none yet"
    dapp = open_dapp(index, "owner")
    page = dapp.page
    card = page.locator(f"#vehicle-{vehicle.vehicle_id}")
    card.locator("summary").click()  # cards are collapsed to a summary line
    expect(card).to_contain_text(vehicle.device, timeout=TIMEOUT_MS)
    expect(card.locator(".grid-region")).to_contain_text("No grid region declared")

    # Finance: the odometer chart (PNG from /apps/finance/{id}/chart.png) loads and decodes.
    dapp.act(card.locator("button[data-app='finance']"), "Finance loaded")
    chart = card.locator("img.chart")
    expect(chart).to_have_attribute("alt", "Finance chart")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=chart.element_handle(),
        timeout=TIMEOUT_MS,
    )
    assert chart.evaluate("img => img.naturalWidth") > 400
    expect(card.locator("pre.json")).to_contain_text('"tampered"')

    # Energy: the owner signs the grid region in the wallet; the page shows the declaration.
    card.locator("input[name='region']").fill(REGION)
    dapp.act(card.locator("button[data-action='declare-region']"), f"Region {REGION} declared")
    declared = card.locator(f".grid-region [data-region='{REGION}']")
    dapp.until("the declaration to show", lambda: declared.count() == 1)
    expect(declared).to_contain_text(REGION)
    dapp.shot("owner-finance-chart-and-grid-region")

    reply = httpx.get(region_url, headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["region"] == REGION
    assert body["owner"] == owner.address.lower()
    domain = body["typed_data"]["domain"]
    assert domain["verifyingContract"] == stack.contract("VehicleId").address
    assert domain["chainId"] == stack.w3.eth.chain_id
    signer = Account.recover_message(
        encode_typed_data(full_message=body["typed_data"]), signature=body["signature"]
    )
    assert signer == owner.address, "the owner's wallet signed what the API stores"
    assert not dapp.errors
