"""DataMarket: products, opt-in, licences paid in DIMO, revenue streamed to paired vehicles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
import pytest
from eth_account import Account

from protocol.privileges import Privilege
from tests.conftest import FAR_FUTURE, PERMIT_TYPES, TERMS_CID, private_key, vin_commitment

SCOPES = int(Privilege.BATTERY | Privilege.CHARGING)
PRICE = 10**18 + 7  # per period: odd on purpose, so shares round
PERIOD = 30 * 86_400
FEE_BPS = 250
BUDGET = 10**24


@pytest.fixture
def product(data_market: Any, curator: Any, parameters: Any, admin: Any) -> int:
    """A battery-and-charging product at PRICE per 30 days, with a 2.5% protocol fee."""
    parameters.setUint(parameters.PROTOCOL_FEE_BPS(), FEE_BPS, sender=admin)
    tx = data_market.listProduct(SCOPES, PRICE, PERIOD, TERMS_CID, sender=curator)
    return int(tx.return_value)


@pytest.fixture
def funded_buyer(token: Any, data_market: Any, admin: Any, buyer: Any) -> Any:
    """The buyer, holding DIMO and having approved the market."""
    token.mint(buyer, BUDGET, sender=admin)
    token.approve(data_market, BUDGET, sender=buyer)
    return buyer


@pytest.fixture
def vehicles(vehicle_id: Any, owner: Any) -> Callable[[int], list[int]]:
    """Mints `n` vehicles to `owner`, straight through web3 (fast enough for 1,000)."""

    def _mint(n: int) -> list[int]:
        first = int(vehicle_id.lastVehicleId()) + 1
        contract = _web3_contract(vehicle_id)
        _send_all(
            owner,
            [
                contract.functions.mint(
                    "Hyundai", "Kona Electric", 2019, vin_commitment(f"VIN{first + i:014d}")
                )
                for i in range(n)
            ],
        )
        assert int(vehicle_id.lastVehicleId()) == first + n - 1
        return list(range(first, first + n))

    return _mint


def _web3_contract(contract: Any) -> Any:
    from ape import chain

    abi = [item.model_dump(mode="json", by_alias=True) for item in contract.contract_type.abi]
    return chain.provider.web3.eth.contract(address=contract.address, abi=abi)


def _send_all(sender: Any, calls: list[Any]) -> None:
    """Sends web3 calls from an unlocked anvil account, then waits for the last one."""
    from ape import chain

    last = None
    for call in calls:
        last = call.transact({"from": sender.address, "gas": 400_000})
    if last is not None:
        assert chain.provider.web3.eth.wait_for_transaction_receipt(last)["status"] == 1


def _opt_in_all(data_market: Any, owner: Any, vehicle_ids: list[int], product: int) -> None:
    contract = _web3_contract(data_market)
    _send_all(owner, [contract.functions.optIn(vehicle, product) for vehicle in vehicle_ids])


def _fee(periods: int) -> int:
    return PRICE * periods * FEE_BPS // 10_000


class Stream:
    """The documented streaming rule, computed independently from the blocks' timestamps."""

    def __init__(self) -> None:
        self.acc = self.last = self.end = self.streaming = self.fees = 0
        self.earning: set[int] = set()
        self.snap: dict[int, int] = {}
        self.accrued: dict[int, int] = {}

    def pending(self, t: int) -> tuple[int, int]:
        if self.streaming == 0:
            return 0, 0
        if t >= self.end:
            released = self.streaming
        else:
            released = self.streaming * (t - self.last) // (self.end - self.last)
        n = len(self.earning)
        return released, released // n if n else 0

    def accrue(self, t: int) -> None:
        released, share = self.pending(t)
        self.last = t
        self.streaming -= released
        self.acc += share
        self.fees += released - share * len(self.earning)

    def start(self, vehicle: int, t: int) -> None:
        self.accrue(t)
        self.snap[vehicle] = self.acc
        self.earning.add(vehicle)

    def stop(self, vehicle: int, t: int) -> None:
        self.accrue(t)
        self.accrued[vehicle] = self.accrued.get(vehicle, 0) + self.acc - self.snap[vehicle]
        self.earning.discard(vehicle)

    def buy(self, t: int, periods: int, expiry: int) -> None:
        self.accrue(t)
        cost, fee = PRICE * periods, _fee(periods)
        self.fees += fee
        self.end = max(self.end, expiry)
        self.streaming += cost - fee

    def claimable(self, vehicle: int, t: int) -> int:
        due = self.accrued.get(vehicle, 0)
        if vehicle in self.earning:
            due += self.acc + self.pending(t)[1] - self.snap[vehicle]
        return due


# Listing


def test_curator_lists_a_product(data_market: Any, curator: Any) -> None:
    tx = data_market.listProduct(SCOPES, PRICE, PERIOD, TERMS_CID, sender=curator)
    event = tx.events.filter(data_market.ProductListed)[0]
    assert (event.productId, event.curator, event.scopes) == (1, curator.address, SCOPES)
    assert (event.pricePerPeriod, event.periodSeconds) == (PRICE, PERIOD)
    assert bytes(event.termsCid) == TERMS_CID
    listed = data_market.productOf(1)
    assert (listed.pricePerPeriod, listed.periodSeconds, listed.scopes) == (PRICE, PERIOD, SCOPES)
    assert (listed.optedIn, listed.accPerVehicle) == (0, 0)
    assert data_market.lastProductId() == 1


def test_listing_by_a_non_curator_reverts(data_market: Any, stranger: Any) -> None:
    with ape.reverts(
        data_market.AccessControlUnauthorizedAccount,
        account=stranger.address,
        neededRole=data_market.CURATOR_ROLE(),
    ):
        data_market.listProduct(SCOPES, PRICE, PERIOD, TERMS_CID, sender=stranger)


def test_listing_with_bad_scopes_price_or_period_reverts(data_market: Any, curator: Any) -> None:
    for scopes in (0, 1 << 8):
        with ape.reverts(data_market.DataMarketInvalidScopes, scopes=scopes):
            data_market.listProduct(scopes, PRICE, PERIOD, TERMS_CID, sender=curator)
    for price, period in ((0, PERIOD), (PRICE, 0)):
        with ape.reverts(
            data_market.DataMarketInvalidProduct, pricePerPeriod=price, periodSeconds=period
        ):
            data_market.listProduct(SCOPES, price, period, TERMS_CID, sender=curator)


def test_a_commands_product_needs_the_feature_flag(
    data_market: Any, parameters: Any, curator: Any, admin: Any
) -> None:
    commands = int(Privilege.COMMANDS | Privilege.CHARGING)
    key = parameters.FEATURE_COMMANDS_SCOPE()
    with ape.reverts(data_market.DataMarketFeatureDisabled, key=key):
        data_market.listProduct(commands, PRICE, PERIOD, TERMS_CID, sender=curator)
    parameters.setFlag(key, True, sender=admin)
    tx = data_market.listProduct(commands, PRICE, PERIOD, TERMS_CID, sender=curator)
    assert tx.events.filter(data_market.ProductListed)[0].scopes == commands


# Opting in and out


def test_owner_opts_a_vehicle_in_and_out(
    data_market: Any, owner: Any, minted_vehicle: int, product: int
) -> None:
    tx = data_market.optIn(minted_vehicle, product, sender=owner)
    event = tx.events.filter(data_market.OptedIn)[0]
    assert (event.vehicleId, event.productId, event.owner) == (
        minted_vehicle,
        product,
        owner.address,
    )
    assert data_market.productOf(product).optedIn == 1
    assert data_market.positionOf(minted_vehicle, product).optedIn is True
    tx = data_market.optOut(minted_vehicle, product, sender=owner)
    event = tx.events.filter(data_market.OptedOut)[0]
    assert (event.vehicleId, event.productId, event.owner) == (
        minted_vehicle,
        product,
        owner.address,
    )
    assert data_market.productOf(product).optedIn == 0


def test_opting_in_someone_elses_vehicle_reverts(
    data_market: Any, owner: Any, stranger: Any, minted_vehicle: int, product: int
) -> None:
    with ape.reverts(
        data_market.DataMarketNotVehicleOwner,
        vehicleId=minted_vehicle,
        caller=stranger.address,
        owner=owner.address,
    ):
        data_market.optIn(minted_vehicle, product, sender=stranger)
    data_market.optIn(minted_vehicle, product, sender=owner)
    with ape.reverts(data_market.DataMarketNotVehicleOwner, caller=stranger.address):
        data_market.optOut(minted_vehicle, product, sender=stranger)


def test_opting_in_twice_or_out_when_not_in_reverts(
    data_market: Any, owner: Any, minted_vehicle: int, product: int
) -> None:
    with ape.reverts(data_market.DataMarketNotOptedIn, vehicleId=minted_vehicle, productId=product):
        data_market.optOut(minted_vehicle, product, sender=owner)
    data_market.optIn(minted_vehicle, product, sender=owner)
    with ape.reverts(
        data_market.DataMarketAlreadyOptedIn, vehicleId=minted_vehicle, productId=product
    ):
        data_market.optIn(minted_vehicle, product, sender=owner)


def test_opting_in_to_an_unknown_product_reverts(
    data_market: Any, owner: Any, minted_vehicle: int
) -> None:
    with ape.reverts(data_market.DataMarketUnknownProduct, productId=42):
        data_market.optIn(minted_vehicle, 42, sender=owner)
    with ape.reverts(data_market.DataMarketUnknownProduct, productId=42):
        data_market.optOut(minted_vehicle, 42, sender=owner)


# Buying


def test_buying_with_no_vehicle_opted_in_reverts(
    data_market: Any, funded_buyer: Any, product: int
) -> None:
    with ape.reverts(data_market.DataMarketNoVehiclesOptedIn, productId=product):
        data_market.buy(product, 1, sender=funded_buyer)


def test_buying_zero_periods_or_an_unknown_product_reverts(
    data_market: Any, funded_buyer: Any
) -> None:
    with ape.reverts(data_market.DataMarketZeroPeriods):
        data_market.buy(1, 0, sender=funded_buyer)
    with ape.reverts(data_market.DataMarketUnknownProduct, productId=7):
        data_market.buy(7, 1, sender=funded_buyer)


def test_buying_without_allowance_reverts(
    data_market: Any,
    token: Any,
    admin: Any,
    stranger: Any,
    owner: Any,
    minted_vehicle: int,
    product: int,
) -> None:
    data_market.optIn(minted_vehicle, product, sender=owner)
    token.mint(stranger, PRICE, sender=admin)
    with ape.reverts(
        token.ERC20InsufficientAllowance, spender=data_market.address, allowance=0, needed=PRICE
    ):
        data_market.buy(product, 1, sender=stranger)


def test_buyer_pays_and_gets_a_licence(
    data_market: Any,
    token: Any,
    funded_buyer: Any,
    owner: Any,
    minted_vehicle: int,
    product: int,
    chain: Any,
) -> None:
    data_market.optIn(minted_vehicle, product, sender=owner)
    tx = data_market.buy(product, 2, sender=funded_buyer)
    now = chain.blocks[-1].timestamp
    event = tx.events.filter(data_market.LicenceBought)[0]
    assert (event.buyer, event.productId, event.periods) == (funded_buyer.address, product, 2)
    assert (event.cost, event.fee) == (2 * PRICE, _fee(2))
    assert event.expiry == event.streamEnd == now + 2 * PERIOD
    assert data_market.licenceOf(funded_buyer, product) == now + 2 * PERIOD
    assert token.balanceOf(funded_buyer) == BUDGET - 2 * PRICE
    assert token.balanceOf(data_market) == 2 * PRICE
    # The fee is the treasury's at once; the rest streams until the licence ends.
    assert data_market.treasury()[1] == _fee(2)
    assert data_market.productOf(product).streaming == 2 * PRICE - _fee(2)


def test_a_licence_extends_from_its_expiry_or_from_now_once_lapsed(
    data_market: Any, funded_buyer: Any, owner: Any, minted_vehicle: int, product: int, chain: Any
) -> None:
    data_market.optIn(minted_vehicle, product, sender=owner)
    data_market.buy(product, 1, sender=funded_buyer)
    first = data_market.licenceOf(funded_buyer, product)
    data_market.buy(product, 2, sender=funded_buyer)
    assert data_market.licenceOf(funded_buyer, product) == first + 2 * PERIOD
    chain.mine(timestamp=first + 3 * PERIOD)
    data_market.buy(product, 1, sender=funded_buyer)
    assert data_market.licenceOf(funded_buyer, product) == chain.blocks[-1].timestamp + PERIOD


def test_buyer_pays_with_a_permit_instead_of_an_approval(
    data_market: Any,
    token: Any,
    admin: Any,
    owner: Any,
    stranger: Any,
    minted_vehicle: int,
    product: int,
    chain: Any,
) -> None:
    data_market.optIn(minted_vehicle, product, sender=owner)
    token.mint(stranger, 3 * PRICE, sender=admin)
    message = {
        "owner": stranger.address,
        "spender": data_market.address,
        "value": 3 * PRICE,
        "nonce": 0,
        "deadline": FAR_FUTURE,
    }
    domain = {
        "name": "DIMO",
        "version": "1",
        "chainId": chain.chain_id,
        "verifyingContract": token.address,
    }
    signed = Account.sign_typed_data(
        private_key(stranger), domain, {"Permit": PERMIT_TYPES}, message
    )
    r, s = signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
    assert token.allowance(stranger, data_market) == 0
    data_market.buyWithPermit(product, 3, FAR_FUTURE, signed.v, r, s, sender=stranger)
    assert token.balanceOf(stranger) == 0
    assert token.nonces(stranger) == 1
    assert data_market.licenceOf(stranger, product) == chain.blocks[-1].timestamp + 3 * PERIOD


def test_buying_with_a_bad_permit_and_no_allowance_reverts(
    data_market: Any,
    token: Any,
    admin: Any,
    owner: Any,
    stranger: Any,
    minted_vehicle: int,
    product: int,
) -> None:
    data_market.optIn(minted_vehicle, product, sender=owner)
    token.mint(stranger, PRICE, sender=admin)
    with ape.reverts(token.ERC20InsufficientAllowance, spender=data_market.address):
        data_market.buyWithPermit(
            product, 1, FAR_FUTURE, 27, b"\x01" * 32, b"\x02" * 32, sender=stranger
        )


# Revenue


@pytest.fixture
def fleet(
    paired_vehicle: Callable[[int], tuple[int, Any]],
) -> Callable[[int], list[int]]:
    """`n` vehicles of `owner`, each paired with a device of its own."""
    counter = iter(range(100, 10_000))

    def _fleet(n: int) -> list[int]:
        return [paired_vehicle(next(counter))[0] for _ in range(n)]

    return _fleet


def _assert_matches(
    data_market: Any, token: Any, product: int, model: Stream, ids: list[int], t: int
) -> None:
    for vehicle in ids:
        assert data_market.claimable(vehicle, product) == model.claimable(vehicle, t), vehicle
    assert data_market.treasury()[1] == model.fees
    # Every wei is a vehicle's, the treasury's, or still in the stream.
    held = sum(data_market.claimable(v, product) for v in ids) + data_market.treasury()[1]
    assert held + data_market.undistributed(product) == token.balanceOf(data_market)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_revenue_streams_exactly_to_the_vehicles_earning_each_second(
    count: int,
    data_market: Any,
    token: Any,
    funded_buyer: Any,
    owner: Any,
    product: int,
    fleet: Callable[[int], list[int]],
    chain: Any,
) -> None:
    ids = fleet(count + 1)
    model = Stream()
    for vehicle in ids[:count]:
        model.start(vehicle, data_market.optIn(vehicle, product, sender=owner).timestamp)
    tx = data_market.buy(product, 1, sender=funded_buyer)
    model.buy(tx.timestamp, 1, tx.events.filter(data_market.LicenceBought)[0].expiry)
    chain.mine(timestamp=tx.timestamp + PERIOD // 3)
    _assert_matches(data_market, token, product, model, ids, chain.blocks[-1].timestamp)
    # One more vehicle joins and the first leaves before the next purchase.
    model.start(ids[count], data_market.optIn(ids[count], product, sender=owner).timestamp)
    model.stop(ids[0], data_market.optOut(ids[0], product, sender=owner).timestamp)
    tx = data_market.buy(product, 3, sender=funded_buyer)
    model.buy(tx.timestamp, 3, tx.events.filter(data_market.LicenceBought)[0].expiry)
    chain.mine(timestamp=tx.timestamp + PERIOD)
    _assert_matches(data_market, token, product, model, ids, chain.blocks[-1].timestamp)
    # The first comes back: it shares only the stream from now on.
    model.start(ids[0], data_market.optIn(ids[0], product, sender=owner).timestamp)
    tx = data_market.buy(product, 2, sender=funded_buyer)
    model.buy(tx.timestamp, 2, tx.events.filter(data_market.LicenceBought)[0].expiry)
    end = data_market.productOf(product).streamEnd
    chain.mine(timestamp=end + 1)
    _assert_matches(data_market, token, product, model, ids, end + 1)
    before = token.balanceOf(owner)
    due = 0
    for vehicle in ids:
        due += data_market.claimable(vehicle, product)
        data_market.claim(vehicle, [product], sender=owner)
    assert token.balanceOf(owner) - before == due
    # Once the stream has run dry, all that is left is the treasury's.
    assert token.balanceOf(data_market) == 6 * PRICE - due
    assert due >= 6 * PRICE - _fee(6) - 10 * len(ids)


def test_claim_pays_the_vehicles_current_owner(
    data_market: Any,
    vehicle_id: Any,
    token: Any,
    funded_buyer: Any,
    owner: Any,
    other_owner: Any,
    product: int,
    fleet: Callable[[int], list[int]],
    chain: Any,
) -> None:
    (vehicle,) = fleet(1)
    data_market.optIn(vehicle, product, sender=owner)
    bought = data_market.buy(product, 1, sender=funded_buyer)
    chain.mine(timestamp=bought.timestamp + PERIOD // 2)
    sold = vehicle_id.transferFrom(owner, other_owner, vehicle, sender=owner)
    earned = (PRICE - _fee(1)) * (sold.timestamp - bought.timestamp) // PERIOD
    with ape.reverts(
        data_market.DataMarketNotVehicleOwner,
        vehicleId=vehicle,
        caller=owner.address,
        owner=other_owner.address,
    ):
        data_market.claim(vehicle, [product], sender=owner)
    tx = data_market.claim(vehicle, [product], sender=other_owner)
    event = tx.events.filter(data_market.RevenueClaimed)[0]
    assert (event.vehicleId, event.productId, event.owner, event.amount) == (
        vehicle,
        product,
        other_owner.address,
        earned,
    )
    assert token.balanceOf(other_owner) == earned
    assert token.balanceOf(owner) == 0
    assert data_market.claimable(vehicle, product) == 0


def test_revenue_earned_before_opting_out_stays_claimable(
    data_market: Any,
    token: Any,
    funded_buyer: Any,
    owner: Any,
    product: int,
    fleet: Callable[[int], list[int]],
    chain: Any,
) -> None:
    (vehicle,) = fleet(1)
    data_market.optIn(vehicle, product, sender=owner)
    bought = data_market.buy(product, 1, sender=funded_buyer)
    chain.mine(timestamp=bought.timestamp + PERIOD // 4)
    left = data_market.optOut(vehicle, product, sender=owner)
    earned = (PRICE - _fee(1)) * (left.timestamp - bought.timestamp) // PERIOD
    assert data_market.positionOf(vehicle, product).accrued == earned
    chain.mine(timestamp=bought.timestamp + PERIOD)
    assert data_market.claimable(vehicle, product) == earned
    data_market.claim(vehicle, [product], sender=owner)
    assert token.balanceOf(owner) == earned


def test_claiming_with_nothing_due_reverts(
    data_market: Any,
    owner: Any,
    product: int,
    funded_buyer: Any,
    fleet: Callable[[int], list[int]],
    chain: Any,
) -> None:
    (vehicle,) = fleet(1)
    with ape.reverts(data_market.DataMarketNothingToClaim, vehicleId=vehicle):
        data_market.claim(vehicle, [product], sender=owner)
    data_market.optIn(vehicle, product, sender=owner)
    bought = data_market.buy(product, 1, sender=funded_buyer)
    chain.mine(timestamp=bought.timestamp + PERIOD + 1)
    data_market.claim(vehicle, [product], sender=owner)
    with ape.reverts(data_market.DataMarketNothingToClaim, vehicleId=vehicle):
        data_market.claim(vehicle, [product], sender=owner)


def test_a_vehicle_opts_in_to_at_most_sixteen_products(
    data_market: Any, curator: Any, owner: Any, minted_vehicle: int
) -> None:
    assert data_market.MAX_OPT_INS() == 16
    products = [
        int(data_market.listProduct(SCOPES, PRICE, PERIOD, TERMS_CID, sender=curator).return_value)
        for _ in range(17)
    ]
    for product_id in products[:16]:
        data_market.optIn(minted_vehicle, product_id, sender=owner)
    with ape.reverts(data_market.DataMarketTooManyOptIns, vehicleId=minted_vehicle, max=16):
        data_market.optIn(minted_vehicle, products[16], sender=owner)
    data_market.optOut(minted_vehicle, products[3], sender=owner)
    data_market.optIn(minted_vehicle, products[16], sender=owner)
    assert sorted(data_market.optInsOf(minted_vehicle)) == sorted(products[:3] + products[4:])


def test_only_vehicle_id_calls_the_vehicle_hooks(data_market: Any, stranger: Any) -> None:
    for hook in (data_market.onVehiclePaired, data_market.onVehicleUnpaired):
        with ape.reverts(data_market.DataMarketOnlyVehicleId, caller=stranger.address):
            hook(1, sender=stranger)
    with ape.reverts(data_market.DataMarketOnlyVehicleId, caller=stranger.address):
        data_market.onVehicleTransferred(1, stranger, sender=stranger)


# Treasury


def test_fees_and_dust_accrue_to_the_treasury_which_withdraws_them(
    data_market: Any,
    token: Any,
    funded_buyer: Any,
    owner: Any,
    treasury: Any,
    product: int,
    fleet: Callable[[int], list[int]],
    chain: Any,
) -> None:
    ids = fleet(3)
    for vehicle in ids:
        data_market.optIn(vehicle, product, sender=owner)
    bought = data_market.buy(product, 1, sender=funded_buyer)
    assert data_market.treasury() == (treasury.address, _fee(1))
    # Once the stream has run dry, an accrual hands the rounding dust to the treasury.
    chain.mine(timestamp=bought.timestamp + PERIOD + 1)
    data_market.optOut(ids[0], product, sender=owner)
    fee = _fee(1) + (PRICE - _fee(1)) % 3
    assert data_market.treasury() == (treasury.address, fee)
    tx = data_market.withdrawFees(sender=treasury)
    event = tx.events.filter(data_market.FeesWithdrawn)[0]
    assert (event.treasury, event.amount) == (treasury.address, fee)
    assert token.balanceOf(treasury) == fee
    assert data_market.treasury() == (treasury.address, 0)
    with ape.reverts(data_market.DataMarketNothingToWithdraw):
        data_market.withdrawFees(sender=treasury)


def test_withdrawal_by_anyone_but_the_treasury_reverts(
    data_market: Any, treasury: Any, stranger: Any
) -> None:
    with ape.reverts(data_market.DataMarketNotTreasury, caller=stranger.address):
        data_market.withdrawFees(sender=stranger)


def test_only_the_admin_sets_a_non_zero_treasury(
    data_market: Any, admin: Any, stranger: Any, treasury: Any
) -> None:
    with ape.reverts(data_market.AccessControlUnauthorizedAccount, account=stranger.address):
        data_market.setTreasury(stranger, sender=stranger)
    with ape.reverts(data_market.DataMarketZeroTreasury):
        data_market.setTreasury("0x" + "0" * 40, sender=admin)
    tx = data_market.setTreasury(stranger, sender=admin)
    assert tx.events.filter(data_market.TreasurySet)[0].treasury == stranger.address
    assert data_market.treasury()[0] == stranger.address
