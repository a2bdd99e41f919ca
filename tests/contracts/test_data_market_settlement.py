"""DataMarket settlements: a utility with a live CHARGING licence pays a demand-response
settlement in DIMO, credited to each vehicle as revenue its owner claims."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
import pytest
from eth_account import Account

from protocol.privileges import Privilege
from tests.conftest import FAR_FUTURE, PERMIT_TYPES, TERMS_CID, private_key
from tests.contracts.test_data_market import vehicles  # noqa: F401  (fixture)

CHARGING = int(Privilege.CHARGING)
PRICE = 10**18
PERIOD = 30 * 86_400
FEE_BPS = 250
BUDGET = 10**24
SETTLEMENT = b"\x5e" * 32


def _fee(total: int) -> int:
    """The protocol fee on a settlement's total, by the documented rule (floor, on top)."""
    return total * FEE_BPS // 10_000


@pytest.fixture
def grid(parameters: Any, admin: Any) -> bytes:
    """Grid programmes enabled by governance, with a 2.5% protocol fee; the flag's key."""
    key = bytes(parameters.FEATURE_GRID_PROGRAMMES())
    parameters.setFlag(key, True, sender=admin)
    parameters.setUint(parameters.PROTOCOL_FEE_BPS(), FEE_BPS, sender=admin)
    return key


@pytest.fixture
def charging_product(data_market: Any, curator: Any) -> int:
    """A CHARGING product at PRICE per 30 days."""
    return int(
        data_market.listProduct(CHARGING, PRICE, PERIOD, TERMS_CID, sender=curator).return_value
    )


@pytest.fixture
def fleet(
    data_market: Any,
    owner: Any,
    charging_product: int,
    vehicles: Callable[[int], list[int]],  # noqa: F811
) -> list[int]:
    """Three vehicles of `owner`, opted in to the charging product."""
    ids = vehicles(3)
    for vehicle in ids:
        data_market.optIn(vehicle, charging_product, sender=owner)
    return ids


@pytest.fixture
def utility(
    token: Any, data_market: Any, admin: Any, buyer: Any, charging_product: int, fleet: list[int]
) -> Any:
    """The buyer, holding DIMO, a live licence of the charging product and an approval."""
    token.mint(buyer, BUDGET, sender=admin)
    token.approve(data_market, BUDGET, sender=buyer)
    data_market.buy(charging_product, 1, sender=buyer)
    return buyer


def test_a_utility_pays_a_settlement_credited_exactly_to_each_vehicle(
    data_market: Any, token: Any, grid: bytes, utility: Any, fleet: list[int], charging_product: int
) -> None:
    amounts = [3 * 10**18 + 1, 7, 10**15]
    before = [data_market.claimable(v, charging_product) for v in fleet]
    paid_before, fees_before = token.balanceOf(utility), data_market.treasury()[1]
    tx = data_market.paySettlement(charging_product, SETTLEMENT, fleet, amounts, sender=utility)
    total = sum(amounts)
    assert tx.return_value == total + _fee(total) == data_market.settlementCost(total)
    assert token.balanceOf(utility) == paid_before - total - _fee(total)
    assert data_market.treasury()[1] == fees_before + _fee(total)
    for vehicle, amount, was in zip(fleet, amounts, before, strict=True):
        assert data_market.claimable(vehicle, charging_product) == was + amount
    credited = tx.events.filter(data_market.SettlementCredited)
    assert [(e.vehicleId, e.productId, bytes(e.settlementId), e.amount) for e in credited] == [
        (v, charging_product, SETTLEMENT, a) for v, a in zip(fleet, amounts, strict=True)
    ]
    (paid,) = tx.events.filter(data_market.SettlementPaid)
    assert (paid.payer, paid.productId, bytes(paid.settlementId)) == (
        utility.address,
        charging_product,
        SETTLEMENT,
    )
    assert (paid.vehicles, paid.total, paid.fee) == (3, total, _fee(total))
    assert data_market.settlementPaid(utility, SETTLEMENT) is True
    assert data_market.settlementPaid(utility, b"\x00" * 32) is False


def test_the_vehicles_current_owner_claims_the_settlement_with_its_licence_revenue(
    data_market: Any,
    vehicle_id: Any,
    token: Any,
    grid: bytes,
    utility: Any,
    owner: Any,
    other_owner: Any,
    charging_product: int,
    paired_vehicle: Callable[[int], tuple[int, Any]],
    chain: Any,
) -> None:
    vehicle, _ = paired_vehicle(300)
    # Opted in after the utility's purchase, it still earns its share of the licence period.
    data_market.optIn(vehicle, charging_product, sender=owner)
    chain.mine(timestamp=chain.pending_timestamp + PERIOD // 2)
    data_market.paySettlement(charging_product, SETTLEMENT, [vehicle], [5 * 10**18], sender=utility)
    vehicle_id.transferFrom(owner, other_owner, vehicle, sender=owner)
    due = data_market.claimable(vehicle, charging_product)
    assert due > 5 * 10**18  # the settlement and the licence revenue streamed until the sale
    with ape.reverts(data_market.DataMarketNotVehicleOwner, caller=owner.address):
        data_market.claim(vehicle, [charging_product], sender=owner)
    before = token.balanceOf(other_owner)
    tx = data_market.claim(vehicle, [charging_product], sender=other_owner)
    assert tx.events.filter(data_market.RevenueClaimed)[0].amount == due
    assert token.balanceOf(other_owner) - before == due
    assert data_market.claimable(vehicle, charging_product) == 0


def test_a_vehicle_that_opted_out_after_the_payment_keeps_its_credit(
    data_market: Any, grid: bytes, utility: Any, owner: Any, fleet: list[int], charging_product: int
) -> None:
    share = data_market.claimable(fleet[1], charging_product)
    data_market.paySettlement(charging_product, SETTLEMENT, [fleet[1]], [9], sender=utility)
    data_market.optOut(fleet[1], charging_product, sender=owner)
    assert data_market.claimable(fleet[1], charging_product) == share + 9


def test_paying_a_settlement_twice_reverts_but_another_payer_has_its_own_ids(
    data_market: Any,
    token: Any,
    admin: Any,
    stranger: Any,
    grid: bytes,
    utility: Any,
    fleet: list[int],
    charging_product: int,
) -> None:
    data_market.paySettlement(charging_product, SETTLEMENT, fleet[:1], [10], sender=utility)
    with ape.reverts(
        data_market.DataMarketSettlementAlreadyPaid, payer=utility.address, settlementId=SETTLEMENT
    ):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet[1:], [10, 10], sender=utility)
    token.mint(stranger, BUDGET, sender=admin)
    token.approve(data_market, BUDGET, sender=stranger)
    data_market.buy(charging_product, 1, sender=stranger)
    data_market.paySettlement(charging_product, SETTLEMENT, fleet[:1], [10], sender=stranger)
    assert data_market.settlementPaid(stranger, SETTLEMENT) is True


def test_a_settlement_with_mismatched_or_no_vehicles_or_a_zero_amount_reverts(
    data_market: Any, grid: bytes, utility: Any, fleet: list[int], charging_product: int
) -> None:
    with ape.reverts(data_market.DataMarketSettlementLengthMismatch, vehicles=3, amounts=2):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet, [1, 2], sender=utility)
    with ape.reverts(data_market.DataMarketEmptySettlement):
        data_market.paySettlement(charging_product, SETTLEMENT, [], [], sender=utility)
    with ape.reverts(data_market.DataMarketZeroSettlementAmount, vehicleId=fleet[1]):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet, [1, 0, 2], sender=utility)
    assert data_market.settlementPaid(utility, SETTLEMENT) is False


def test_a_settlement_needs_the_grid_feature_flag(
    data_market: Any,
    parameters: Any,
    admin: Any,
    grid: bytes,
    utility: Any,
    fleet: list[int],
    charging_product: int,
) -> None:
    parameters.setFlag(grid, False, sender=admin)
    with ape.reverts(data_market.DataMarketFeatureDisabled, key=grid):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet[:1], [1], sender=utility)


def test_a_settlement_needs_a_known_product_with_the_charging_scope(
    data_market: Any, curator: Any, grid: bytes, utility: Any, fleet: list[int]
) -> None:
    with ape.reverts(data_market.DataMarketUnknownProduct, productId=99):
        data_market.paySettlement(99, SETTLEMENT, fleet[:1], [1], sender=utility)
    driving = int(
        data_market.listProduct(
            int(Privilege.DRIVING), PRICE, PERIOD, TERMS_CID, sender=curator
        ).return_value
    )
    with ape.reverts(data_market.DataMarketProductLacksScope, productId=driving, scope=CHARGING):
        data_market.paySettlement(driving, SETTLEMENT, fleet[:1], [1], sender=utility)


def test_a_settlement_needs_a_live_licence_of_the_product(
    data_market: Any,
    token: Any,
    admin: Any,
    stranger: Any,
    grid: bytes,
    utility: Any,
    fleet: list[int],
    charging_product: int,
    chain: Any,
) -> None:
    token.mint(stranger, BUDGET, sender=admin)
    token.approve(data_market, BUDGET, sender=stranger)
    with ape.reverts(
        data_market.DataMarketNotLicensed,
        payer=stranger.address,
        productId=charging_product,
        expiry=0,
    ):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet[:1], [1], sender=stranger)
    expiry = data_market.licenceOf(utility, charging_product)
    chain.mine(timestamp=expiry)
    with ape.reverts(
        data_market.DataMarketNotLicensed,
        payer=utility.address,
        productId=charging_product,
        expiry=expiry,
    ):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet[:1], [1], sender=utility)


def test_a_vehicle_not_opted_in_to_the_product_cannot_be_paid(
    data_market: Any,
    owner: Any,
    grid: bytes,
    utility: Any,
    fleet: list[int],
    charging_product: int,
    vehicles: Callable[[int], list[int]],  # noqa: F811
) -> None:
    (outsider,) = vehicles(1)
    with ape.reverts(
        data_market.DataMarketNotOptedIn, vehicleId=outsider, productId=charging_product
    ):
        data_market.paySettlement(
            charging_product, SETTLEMENT, [fleet[0], outsider], [1, 1], sender=utility
        )
    data_market.optOut(fleet[2], charging_product, sender=owner)
    with ape.reverts(
        data_market.DataMarketNotOptedIn, vehicleId=fleet[2], productId=charging_product
    ):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet, [1, 1, 1], sender=utility)
    # Nothing was credited by the reverted payments.
    assert data_market.positionOf(fleet[0], charging_product).accrued == 0


def test_a_settlement_without_allowance_reverts(
    data_market: Any, token: Any, grid: bytes, utility: Any, fleet: list[int], charging_product: int
) -> None:
    token.approve(data_market, 0, sender=utility)
    cost = data_market.settlementCost(1000)
    with ape.reverts(
        token.ERC20InsufficientAllowance, spender=data_market.address, allowance=0, needed=cost
    ):
        data_market.paySettlement(charging_product, SETTLEMENT, fleet[:1], [1000], sender=utility)


def test_a_utility_pays_a_settlement_with_a_permit_instead_of_an_approval(
    data_market: Any,
    token: Any,
    grid: bytes,
    utility: Any,
    fleet: list[int],
    charging_product: int,
    chain: Any,
) -> None:
    token.approve(data_market, 0, sender=utility)
    amounts = [4 * 10**18, 10**18]
    cost = data_market.settlementCost(sum(amounts))
    message = {
        "owner": utility.address,
        "spender": data_market.address,
        "value": cost,
        "nonce": token.nonces(utility),
        "deadline": FAR_FUTURE,
    }
    domain = {
        "name": "DIMO",
        "version": "1",
        "chainId": chain.chain_id,
        "verifyingContract": token.address,
    }
    signed = Account.sign_typed_data(
        private_key(utility), domain, {"Permit": PERMIT_TYPES}, message
    )
    r, s = signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
    before = token.balanceOf(utility)
    data_market.paySettlementWithPermit(
        charging_product, SETTLEMENT, fleet[:2], amounts, FAR_FUTURE, signed.v, r, s, sender=utility
    )
    assert before - token.balanceOf(utility) == cost
    assert token.allowance(utility, data_market) == 0
    with ape.reverts(token.ERC20InsufficientAllowance, spender=data_market.address):
        data_market.paySettlementWithPermit(
            charging_product,
            b"\x01" * 32,
            fleet[:1],
            [1],
            FAR_FUTURE,
            27,
            b"\x01" * 32,
            b"\x02" * 32,
            sender=utility,
        )
