"""Issue 18: each audited attack on revenue, rights and identity, tried and failing.

Every test here passed for the attacker on the contracts before the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from protocol.privileges import Privilege
from tests.conftest import (
    CLAIM_TYPES,
    FAR_FUTURE,
    GRANT_TYPES,
    TERMS_CID,
    make_device_key,
    private_key,
    vin_commitment,
)

SCOPES = int(Privilege.BATTERY | Privilege.CHARGING)
PRICE = 1_000 * 10**18
PERIOD = 30 * 86_400
BUDGET = 10**24


@pytest.fixture
def product(data_market: Any, curator: Any) -> int:
    """A product at PRICE per 30 days, no protocol fee (the split is easy to read)."""
    return int(
        data_market.listProduct(SCOPES, PRICE, PERIOD, TERMS_CID, sender=curator).return_value
    )


@pytest.fixture
def funded_buyer(token: Any, data_market: Any, admin: Any, buyer: Any) -> Any:
    token.mint(buyer, BUDGET, sender=admin)
    token.approve(data_market, BUDGET, sender=buyer)
    return buyer


def _mint(vehicle_id: Any, owner: Any, vin: str) -> int:
    return int(
        vehicle_id.mint("Hyundai", "Ioniq 5", 2023, vin_commitment(vin), sender=owner).return_value
    )


# 1. Licence revenue to sybils and just-in-time opt-ins


def test_sybil_vehicles_opted_in_around_a_sale_take_nothing_from_it(
    data_market: Any,
    vehicle_id: Any,
    owner: Any,
    stranger: Any,
    funded_buyer: Any,
    product: int,
    paired_vehicle: Callable[[int], tuple[int, LocalAccount]],
    chain: Any,
) -> None:
    real, _ = paired_vehicle(1)
    data_market.optIn(real, product, sender=owner)
    # The attacker sees the pending buy: 9 made-up vehicles (no device) opt in first...
    sybils = [_mint(vehicle_id, stranger, f"SYBIL{i:012d}") for i in range(9)]
    for sybil in sybils:
        data_market.optIn(sybil, product, sender=stranger)
    data_market.buy(product, 1, sender=funded_buyer)
    # ... and out again after.
    for sybil in sybils:
        data_market.optOut(sybil, product, sender=stranger)
    chain.mine(timestamp=chain.blocks[-1].timestamp + PERIOD)
    assert all(data_market.claimable(s, product) == 0 for s in sybils)
    # The whole sale went to the real vehicle, over the licence period.
    assert data_market.claimable(real, product) == PRICE


def test_a_paired_vehicle_opted_in_only_around_a_sale_earns_only_those_seconds(
    data_market: Any,
    owner: Any,
    funded_buyer: Any,
    product: int,
    paired_vehicle: Callable[[int], tuple[int, LocalAccount]],
) -> None:
    real, _ = paired_vehicle(1)
    jit, _ = paired_vehicle(2)
    data_market.optIn(real, product, sender=owner)
    data_market.optIn(jit, product, sender=owner)
    bought = data_market.buy(product, 1, sender=funded_buyer)
    left = data_market.optOut(jit, product, sender=owner)
    seconds = left.timestamp - bought.timestamp
    # Half of `seconds` seconds of a stream of PRICE over PERIOD, not half the sale.
    assert data_market.claimable(jit, product) <= PRICE * seconds // PERIOD // 2 + 1
    assert data_market.claimable(jit, product) < PRICE // 1000


def test_a_vehicle_opting_in_after_a_sale_earns_its_share_of_the_rest_of_the_licence(
    data_market: Any,
    owner: Any,
    funded_buyer: Any,
    product: int,
    paired_vehicle: Callable[[int], tuple[int, LocalAccount]],
    chain: Any,
) -> None:
    first, _ = paired_vehicle(1)
    late, _ = paired_vehicle(2)
    data_market.optIn(first, product, sender=owner)
    bought = data_market.buy(product, 1, sender=funded_buyer)
    joined = data_market.optIn(late, product, sender=owner)
    chain.mine(timestamp=bought.timestamp + PERIOD + 1)
    late_share = data_market.claimable(late, product)
    # The licence covers the late vehicle's data for almost all the period: it earns half of it.
    elapsed = joined.timestamp - bought.timestamp
    assert abs(late_share - PRICE * (PERIOD - elapsed) // PERIOD // 2) <= 2
    assert data_market.claimable(first, product) + late_share == PRICE


def test_a_vehicle_without_a_paired_device_earns_nothing_and_starts_when_paired(
    data_market: Any,
    device_id: Any,
    owner: Any,
    funded_buyer: Any,
    product: int,
    minted_vehicle: int,
    paired_vehicle: Callable[[int], tuple[int, LocalAccount]],
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
    chain: Any,
) -> None:
    real, _ = paired_vehicle(5)
    data_market.optIn(real, product, sender=owner)
    data_market.optIn(minted_vehicle, product, sender=owner)
    assert data_market.productOf(product).earning == 1
    bought = data_market.buy(product, 1, sender=funded_buyer)
    chain.mine(timestamp=bought.timestamp + PERIOD // 2)
    assert data_market.claimable(minted_vehicle, product) == 0
    key = make_device_key(99)
    claim(owner, key)
    paired = device_id.pair(
        minted_vehicle,
        key.address,
        FAR_FUTURE,
        *pair_sigs(private_key(owner), key, minted_vehicle),
        sender=owner,
    )
    assert data_market.productOf(product).earning == 2
    chain.mine(timestamp=bought.timestamp + PERIOD)
    expected = PRICE * (bought.timestamp + PERIOD - paired.timestamp) // PERIOD // 2
    assert abs(data_market.claimable(minted_vehicle, product) - expected) <= 2
    # Unpairing stops it again; what it earned stays.
    earned = data_market.claimable(minted_vehicle, product)
    device_id.unpair(key.address, sender=owner)
    assert data_market.productOf(product).earning == 1
    assert data_market.claimable(minted_vehicle, product) == earned


# 4. VIN commitments front-run


def test_a_copied_vin_commitment_minted_first_neither_blocks_nor_captures_the_owners_vin(
    vehicle_id: Any, owner: Any, stranger: Any
) -> None:
    commitment = vin_commitment("KMHK381GFKU777777", salt=b"\x07" * 32)
    # The observer copies the pending commitment and mints it first.
    copied = int(vehicle_id.mint("Hyundai", "Kona", 2019, commitment, sender=stranger).return_value)
    mine = int(vehicle_id.mint("Hyundai", "Kona", 2019, commitment, sender=owner).return_value)
    assert mine != copied
    # Revealing salt and VIN proves the owner's token: the commitment is bound to its owner.
    assert vehicle_id.vehicleOfVinCommitment(commitment, owner) == mine
    assert vehicle_id.vehicleOfVinCommitment(commitment, stranger) == copied
    with ape.reverts(
        vehicle_id.VehicleIdVinAlreadyMinted, vinCommitment=commitment, vehicleId=mine
    ):
        vehicle_id.mint("Hyundai", "Kona", 2019, commitment, sender=owner)


# 5. A signed grant outliving a sale and buy-back


def _grant_sig(
    sign: Callable[..., bytes],
    rights: Any,
    signer: Any,
    vehicle: int,
    grantee: Any,
    nonce: int,
    epoch: int,
) -> bytes:
    message = {
        "vehicleId": vehicle,
        "epoch": epoch,
        "grantee": grantee.address,
        "scopes": SCOPES,
        "expiry": FAR_FUTURE,
        "termsCid": TERMS_CID,
        "nonce": nonce,
        "deadline": FAR_FUTURE,
    }
    return sign(private_key(signer), rights, "Grant", GRANT_TYPES, message)


def _relay(rights: Any, vehicle: int, grantee: Any, signature: bytes) -> Any:
    """`grantee` relays the signed grant to itself."""
    return rights.grantBySig(
        vehicle, grantee, SCOPES, FAR_FUTURE, TERMS_CID, FAR_FUTURE, signature, sender=grantee
    )


def test_a_signed_grant_not_relayed_dies_with_a_sale_and_buy_back(
    vehicle_rights: Any,
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
    stranger: Any,
    minted_vehicle: int,
    sign: Callable[..., bytes],
) -> None:
    signature = _grant_sig(sign, vehicle_rights, owner, minted_vehicle, stranger, 0, 0)
    vehicle_id.transferFrom(owner, other_owner, minted_vehicle, sender=owner)
    vehicle_id.transferFrom(other_owner, owner, minted_vehicle, sender=other_owner)
    assert vehicle_rights.nonces(owner) == 0  # the nonce alone would not stop it
    with ape.reverts(vehicle_rights.VehicleRightsInvalidSigner, expected=owner.address):
        _relay(vehicle_rights, minted_vehicle, stranger, signature)
    assert vehicle_rights.privilegesOf(minted_vehicle, stranger) == (0, 0)
    # A grant signed under the current epoch (2) works.
    fresh = _grant_sig(sign, vehicle_rights, owner, minted_vehicle, stranger, 0, 2)
    _relay(vehicle_rights, minted_vehicle, stranger, fresh)
    assert vehicle_rights.privilegesOf(minted_vehicle, stranger)[0] == SCOPES


def test_an_owner_cancels_a_signed_grant_by_using_up_its_nonce(
    vehicle_rights: Any, owner: Any, stranger: Any, minted_vehicle: int, sign: Callable[..., bytes]
) -> None:
    signature = _grant_sig(sign, vehicle_rights, owner, minted_vehicle, stranger, 0, 0)
    with ape.reverts(
        vehicle_rights.VehicleRightsInvalidNonce, owner=owner.address, nonce=1, current=0
    ):
        vehicle_rights.cancelNonce(1, sender=owner)
    tx = vehicle_rights.cancelNonce(0, sender=owner)
    event = tx.events.filter(vehicle_rights.NonceCancelled)[0]
    assert (event.owner, event.nonce) == (owner.address, 0)
    with ape.reverts(vehicle_rights.VehicleRightsInvalidSigner, expected=owner.address):
        _relay(vehicle_rights, minted_vehicle, stranger, signature)


# 6. DeviceId.claim from whoever holds the device


def test_an_unclaimed_device_held_by_a_reseller_cannot_be_claimed_from_it(
    device_id: Any,
    manufacturer: Any,
    stranger: Any,
    owner: Any,
    sign: Callable[..., bytes],
) -> None:
    key = make_device_key(42)
    device_id.mintDevices([key.address], [keccak(key.address.encode())], sender=manufacturer)
    device_id.transferFrom(manufacturer, stranger, int(key.address, 16), sender=manufacturer)
    message = {"device": key.address, "user": owner.address, "deadline": FAR_FUTURE}
    user_sig = sign(private_key(owner), device_id, "ClaimDevice", CLAIM_TYPES, message)
    device_sig = sign(key.key, device_id, "ClaimDevice", CLAIM_TYPES, message)
    with ape.reverts(
        device_id.DeviceIdNotWithManufacturer, device=key.address, holder=stranger.address
    ):
        device_id.claim(key.address, owner, FAR_FUTURE, user_sig, device_sig, sender=owner)
    assert device_id.ownerOf(int(key.address, 16)) == stranger.address


# 7. A seller's opt-in selling the new owner's data


def test_a_sale_ends_the_sellers_opt_ins_and_the_buyer_earns_nothing_from_them(
    data_market: Any,
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
    funded_buyer: Any,
    product: int,
    paired_vehicle: Callable[[int], tuple[int, LocalAccount]],
    chain: Any,
) -> None:
    vehicle, _ = paired_vehicle(1)
    data_market.optIn(vehicle, product, sender=owner)
    tx = vehicle_id.transferFrom(owner, other_owner, vehicle, sender=owner)
    event = tx.events.filter(data_market.OptedOut)[0]
    assert (event.vehicleId, event.productId, event.owner) == (vehicle, product, owner.address)
    assert data_market.positionOf(vehicle, product).optedIn is False
    assert data_market.productOf(product).optedIn == 0
    assert data_market.optInsOf(vehicle) == []
    with ape.reverts(data_market.DataMarketNoVehiclesOptedIn, productId=product):
        data_market.buy(product, 1, sender=funded_buyer)
    # The new owner opts in if they wish (and earns once they pair a device of their own).
    data_market.optIn(vehicle, product, sender=other_owner)
    assert data_market.positionOf(vehicle, product).optedIn is True
