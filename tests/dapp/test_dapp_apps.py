"""The owner's finance and energy views in Debian's chromium, against the whole local platform:
the finance view shows the odometer chart, and a grid region declared through the form (signed
in the wallet, EIP-712 under VehicleId's domain) is what the API then serves for the vehicle.
Screenshots go to artifacts/screenshots/.
"""

# The browser fixtures come from the dApp tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from playwright.sync_api import expect

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
