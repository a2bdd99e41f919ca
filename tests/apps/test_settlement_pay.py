"""A demand-response settlement paid in DIMO through the DataMarket with `dimo apps energy
--report N --pay`: owners are credited exactly the report's amounts, the report shows the
payment once indexed, and a settlement is paid once."""

# The fixtures come from the indexer and insurance tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ape
import pytest
from typer.testing import CliRunner

from indexer.apps import energy
from indexer.apps.cli import app
from indexer.apps.settlement_pay import (
    SettlementCall,
    SettlementNotPayable,
    SettlementPayer,
    SettlementPaymentFailed,
    settlement_call,
    settlement_id,
)
from protocol.crypto import keccak256 as keccak
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain
from tests.apps.test_energy import CHARGING_BIT, DAY, HOUR, charging_samples, declare
from tests.apps.test_insurance import (  # fixtures shared with the insurance tests
    ServedWorld,
    served_world,  # noqa: F401
    token_of,
)
from tests.apps.traces import evening_charging
from tests.conftest import TERMS_CID, private_key, vin_commitment
from tests.indexer.test_api_telemetry import advance, head_s
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)

PRICE = 10**18
FEE_BPS = 250
Fleet = tuple[list[tuple[int, Any]], int]


# -------------------------------------------------------------------------------------------
# pure: the call built from a report
# -------------------------------------------------------------------------------------------

SETTLEMENT: dict[str, Any] = {
    "event_id": 4,
    "program_id": 2,
    "region": "DE-BW",
    "start_ms": 1_000,
    "end_ms": 7_201_000,
    "payment": {
        "currency": "DIMO",
        "total_wei": "30",
        "amounts": [{"vehicle_id": 9, "wei": "10"}, {"vehicle_id": 3, "wei": "20"}],
    },
}


def test_the_call_pays_each_vehicle_the_reports_amount_under_the_events_id() -> None:
    call = settlement_call(SETTLEMENT)
    assert (call.vehicle_ids, call.amounts, call.total) == ([9, 3], [10, 20], 30)
    # The id names the event settled, not the amounts: a re-settlement has the same id.
    resettled = {**SETTLEMENT, "payment": {**SETTLEMENT["payment"], "total_wei": "31"}}
    assert settlement_id(resettled) == call.settlement_id
    assert settlement_id({**SETTLEMENT, "event_id": 5}) != call.settlement_id


@pytest.mark.parametrize(
    ("payment", "reason"),
    [
        ({"currency": "DIMO", "total_wei": "0", "amounts": []}, "no vehicle"),
        ({"currency": "EUR", "total_wei": "10", "amounts": []}, "no payment in DIMO"),
        ({"currency": "DIMO", "total_wei": "5", "amounts": [{"vehicle_id": 1}]}, "malformed"),
        (
            {"currency": "DIMO", "total_wei": "0", "amounts": [{"vehicle_id": 1, "wei": "0"}]},
            "not positive",
        ),
        (
            {"currency": "DIMO", "total_wei": "11", "amounts": [{"vehicle_id": 1, "wei": "10"}]},
            "add up",
        ),
    ],
)
def test_a_report_with_nothing_or_inconsistent_amounts_is_not_payable(
    payment: dict[str, Any], reason: str
) -> None:
    with pytest.raises(SettlementNotPayable, match=reason):
        settlement_call({**SETTLEMENT, "payment": payment})


# -------------------------------------------------------------------------------------------
# on anvil: settled through the API, paid with the CLI, indexed, claimed
# -------------------------------------------------------------------------------------------


def _event(program_id: str, start: int) -> dict[str, Any]:
    return {
        "programID": program_id,
        "eventName": "cold evening",
        "targets": [{"type": "GRID_REGION", "values": ["DE-BW"]}],
        "intervalPeriod": {"start": energy.iso(start), "duration": "PT2H"},
        "intervals": [
            {
                "id": 0,
                "payloads": [
                    {"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-10.0]},
                    {"type": "PRICE", "values": [2.0]},
                ],
            }
        ],
    }


def _settle(utility: Any, start: int) -> dict[str, Any]:
    """Publishes a program and an event at `start`, and settles it; the API's answer."""
    program = {"programName": "evening-peak", "programType": "DEMAND_RESPONSE"}
    r = utility.post("/apps/energy/programs", json=program)
    assert r.status_code == 201, r.text
    r = utility.post("/apps/energy/events", json=_event(r.json()["id"], start))
    assert r.status_code == 201, r.text
    r = utility.post(f"/apps/energy/events/{r.json()['id']}/settle")
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_utility_pays_a_settlement_and_owners_claim_exactly_the_reports_amounts(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    buyer: Any,
    curator: Any,
    admin: Any,
    data_market: Any,
    token: Any,
    parameters: Any,
    vehicle_id: Any,
    sign: Callable[..., bytes],
    rpc_url: str,
    deployment_record: Path,
    tmp_path: Path,
) -> None:
    world = served_world
    (car_a, key_a), (car_b, key_b) = fleet[0]
    day0 = (fleet[1] // DAY + 2) * DAY
    event_index = next(i for i in range(14, 21) if ((day0 + i * DAY) // DAY + 3) % 7 < 5)
    days = event_index + 1
    start = day0 + event_index * DAY + 18 * HOUR

    product = int(
        data_market.listProduct(
            CHARGING_BIT, PRICE, 30 * 86_400, TERMS_CID, sender=curator
        ).return_value
    )
    unlicensed = int(
        data_market.listProduct(
            CHARGING_BIT, PRICE, 30 * 86_400, TERMS_CID, sender=curator
        ).return_value
    )
    data_market.optIn(car_a, product, sender=owner)
    data_market.optIn(car_b, product, sender=owner)
    token.mint(buyer, 100 * PRICE, sender=admin)
    token.approve(data_market, PRICE, sender=buyer)
    data_market.buy(product, 1, sender=buyer)  # uses the whole allowance: --pay signs a permit
    cut = {event_index: (18 * HOUR, 20 * HOUR, 2.4)}
    anchor_bundles(
        windowed_bundles(
            key_a,
            car_a,
            charging_samples(evening_charging(day0, days, 7.4, curtailed=cut, seed=1)),
            domain,
            window_ms=600_000,
        )
        + windowed_bundles(
            key_b,
            car_b,
            charging_samples(evening_charging(day0, days, 3.7, seed=2)),
            domain,
            window_ms=600_000,
        )
    )
    advance((day0 + days * DAY) // 1000 - head_s() + 600)
    grid_flag = parameters.FEATURE_GRID_PROGRAMMES()
    fee_key = parameters.PROTOCOL_FEE_BPS()
    old_fee = int(parameters.uintOf(fee_key))
    parameters.setFlag(grid_flag, True, sender=admin)
    parameters.setUint(fee_key, FEE_BPS, sender=admin)
    try:
        world.sync()
        world.at(head_s() * 1000)
        with world.client(buyer) as utility, world.client(owner) as mine:
            for car in (car_a, car_b):
                assert declare(utility, car, owner, vehicle_id, sign, head_s()).status_code == 200
            _pay_and_check(locals(), data_market, token, tmp_path, rpc_url, deployment_record)
    finally:
        parameters.setFlag(grid_flag, False, sender=admin)
        parameters.setUint(fee_key, old_fee, sender=admin)


def _cli(ctx: dict[str, Any], tmp_path: Path, product: int, *extra: str) -> Any:
    report_id = ctx["body"]["report"]["id"]
    args = ["energy", "--report", report_id, "--pay", "--product", str(product), *extra]
    args += ["--api-url", ctx["world"].base_url, "--token", token_of(ctx["utility"])]
    args += ["--rpc-url", ctx["rpc_url"], "--deployment", str(ctx["deployment_record"])]
    args += ["--out", str(tmp_path)]
    env = {"DIMO_UTILITY_KEY": private_key(ctx["buyer"])}
    return CliRunner().invoke(app, args, env=env)


def _pay_and_check(
    ctx: dict[str, Any],
    data_market: Any,
    token: Any,
    tmp_path: Path,
    rpc_url: str,
    deployment_record: Path,
) -> None:
    world, utility, mine, buyer = ctx["world"], ctx["utility"], ctx["mine"], ctx["buyer"]
    product, car_a = ctx["product"], ctx["car_a"]
    ctx["body"] = body = _settle(utility, ctx["start"])
    ctx["rpc_url"], ctx["deployment_record"] = rpc_url, deployment_record
    settlement, payment = body["settlement"], body["payment"]
    call = settlement_call(settlement)
    owed = dict(zip(call.vehicle_ids, call.amounts, strict=True))
    assert car_a in owed  # the curtailing car delivered about 10 kWh at 2 DIMO each
    assert owed[car_a] == pytest.approx(10 * 2 * 10**18, rel=0.05)
    assert payment == {"settlement_id": "0x" + call.settlement_id.hex(), "paid": False}
    # The cars earn the licence's revenue stream as time passes; a settlement credits each
    # exactly its amount, into what the position has settled.
    before = {v: int(data_market.positionOf(v, product).accrued) for v in owed}
    balance = int(token.balanceOf(buyer))

    # Through a product it holds no licence of, the market refuses, by name.
    refused = _cli(ctx, tmp_path, ctx["unlicensed"])
    assert refused.exit_code == 1, refused.output
    assert "DataMarketNotLicensed" in refused.output

    paid = _cli(ctx, tmp_path, product)
    assert paid.exit_code == 0, paid.output
    receipt = json.loads(
        (tmp_path / f"energy-report-{body['report']['id']}-payment.json").read_text()
    )
    fee = call.total * FEE_BPS // 10_000
    assert (receipt["total"], receipt["fee"], receipt["vehicles"]) == (call.total, fee, len(owed))
    assert int(token.balanceOf(buyer)) == balance - call.total - fee
    for vehicle, amount in owed.items():
        assert int(data_market.positionOf(vehicle, product).accrued) == before[vehicle] + amount

    # Indexed, the report shows the payment and that it credited exactly its amounts.
    world.sync()
    shown = utility.get(f"/apps/energy/reports/{body['report']['id']}").json()["payment"]
    assert shown["paid"] is True
    assert (shown["tx_hash"], shown["product_id"]) == (receipt["tx_hash"], product)
    assert (shown["total_wei"], shown["fee_wei"]) == (str(call.total), str(fee))
    assert shown["matches_report"] is True
    assert {c["vehicle_id"]: int(c["wei"]) for c in shown["credited"]} == owed

    # Paid once: the CLI refuses, the contract reverts, and a re-settlement is the same one.
    again = _cli(ctx, tmp_path, product)
    assert again.exit_code == 1
    assert "already paid" in again.output
    with ape.reverts(
        data_market.DataMarketSettlementAlreadyPaid,
        payer=buyer.address,
        settlementId=call.settlement_id,
    ):
        data_market.paySettlement(
            product, call.settlement_id, call.vehicle_ids, call.amounts, sender=buyer
        )
    r = utility.post(f"/apps/energy/events/{settlement['event_id']}/settle")
    assert r.status_code == 201, r.text
    assert r.json()["payment"]["paid"] is True
    assert r.json()["payment"]["tx_hash"] == receipt["tx_hash"]

    # The owner claims the report's amount with the licence revenue, as the API counts it.
    owner = ctx["owner"]
    held = int(token.balanceOf(owner))
    tx = data_market.claim(car_a, [product], sender=owner)
    claimed = int(tx.events.filter(data_market.RevenueClaimed)[0].amount)
    assert int(token.balanceOf(owner)) - held == claimed
    assert claimed >= before[car_a] + owed[car_a]  # and the licence revenue streamed so far
    world.sync()
    (revenue,) = [
        x
        for x in mine.get(f"/vehicles/{car_a}/revenue").json()["items"]
        if x["product_id"] == product
    ]
    assert (revenue["earned"], revenue["claimable"]) == (str(claimed), "0")


def test_the_payer_names_a_refusal_before_approving_and_approves_when_told_to(
    data_market: Any,
    parameters: Any,
    vehicle_id: Any,
    token: Any,
    admin: Any,
    owner: Any,
    stranger: Any,
    curator: Any,
    rpc_url: str,
    deployment_record: Path,
) -> None:
    product = int(
        data_market.listProduct(CHARGING_BIT, PRICE, 86_400, TERMS_CID, sender=curator).return_value
    )
    cars = []
    for i in range(2):
        vin = vin_commitment(f"PAYER{product:05d}{i:07d}")
        cars.append(int(vehicle_id.mint("Kia", "EV6", 2023, vin, sender=owner).return_value))
        data_market.optIn(cars[-1], product, sender=owner)
    token.mint(stranger, 10 * PRICE, sender=admin)
    token.approve(data_market, PRICE, sender=stranger)
    data_market.buy(product, 1, sender=stranger)
    deployment = Deployment.load(deployment_record)
    payer = SettlementPayer(rpc_url, deployment, private_key(stranger))
    call = SettlementCall(keccak(f"payer-test-{product}".encode()), cars, [3 * PRICE, 4])
    grid = parameters.FEATURE_GRID_PROGRAMMES()
    nonce = chain_nonce(stranger)
    with pytest.raises(SettlementPaymentFailed) as refused:
        payer.pay(product, call, permit=False)
    assert refused.value.error == "DataMarketFeatureDisabled"
    assert refused.value.error_args == {"key": "0x" + bytes(grid).hex()}
    assert chain_nonce(stranger) == nonce  # nothing was sent, not even the approval
    parameters.setFlag(grid, True, sender=admin)
    try:
        receipt = payer.pay(product, call, permit=False)
        assert chain_nonce(stranger) == nonce + 2  # the approval, then the payment
        assert (receipt.total, receipt.vehicles, receipt.product_id) == (call.total, 2, product)
        assert token.allowance(stranger, data_market) == 0  # approved exactly the cost
        assert payer.is_paid(call.settlement_id)
        nobody = "0x" + keccak(f"no-dimo-{product}".encode()).hex()  # a key that holds nothing
        broke = SettlementPayer(rpc_url, deployment, nobody)
        with pytest.raises(SettlementPaymentFailed, match="holds 0 wei"):
            broke.pay(product, call)
    finally:
        parameters.setFlag(grid, False, sender=admin)


def chain_nonce(account: Any) -> int:
    """Transactions sent so far by `account`."""
    from ape import chain

    return int(chain.provider.web3.eth.get_transaction_count(account.address))
