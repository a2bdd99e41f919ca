"""VehicleRights: grants by the owner or by their signature, revocation, expiry, transfers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape

from protocol.privileges import ALL_PRIVILEGES, Privilege
from tests.conftest import FAR_FUTURE, GRANT_TYPES, TERMS_CID, private_key

SCOPES = int(Privilege.BATTERY | Privilege.CHARGING)
ZERO = "0x0000000000000000000000000000000000000000"


def _expiry(chain: Any, seconds: int = 3600) -> int:
    return int(chain.pending_timestamp) + seconds


def _signed_grant(
    sign: Callable[..., bytes],
    rights: Any,
    signer: Any,
    vehicle: int,
    grantee: Any,
    expiry: int,
    nonce: int = 0,
    deadline: int = FAR_FUTURE,
    scopes: int = SCOPES,
    epoch: int = 0,
) -> bytes:
    message = {
        "vehicleId": vehicle,
        "epoch": epoch,
        "grantee": grantee.address,
        "scopes": scopes,
        "expiry": expiry,
        "termsCid": TERMS_CID,
        "nonce": nonce,
        "deadline": deadline,
    }
    return sign(private_key(signer), rights, "Grant", GRANT_TYPES, message)


def test_solidity_privilege_bits_equal_the_python_ones(vehicle_rights: Any) -> None:
    for privilege in Privilege:
        assert getattr(vehicle_rights, str(privilege.name))() == privilege.value
    assert vehicle_rights.ALL_PRIVILEGES() == ALL_PRIVILEGES.value


def test_owner_grants_privileges_until_an_expiry(
    vehicle_rights: Any, owner: Any, buyer: Any, minted_vehicle: int, chain: Any
) -> None:
    expiry = _expiry(chain)
    tx = vehicle_rights.grant(minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, sender=owner)
    event = tx.events.filter(vehicle_rights.Granted)[0]
    assert (event.vehicleId, event.grantee, event.owner) == (
        minted_vehicle,
        buyer.address,
        owner.address,
    )
    assert (event.scopes, event.expiry, event.epoch) == (SCOPES, expiry, 0)
    assert bytes(event.termsCid) == TERMS_CID
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (SCOPES, expiry)


def test_grant_by_someone_other_than_the_owner_reverts(
    vehicle_rights: Any, owner: Any, stranger: Any, minted_vehicle: int, chain: Any
) -> None:
    with ape.reverts(
        vehicle_rights.VehicleRightsNotOwner,
        vehicleId=minted_vehicle,
        caller=stranger.address,
        owner=owner.address,
    ):
        vehicle_rights.grant(
            minted_vehicle, stranger, SCOPES, _expiry(chain), TERMS_CID, sender=stranger
        )


def test_grant_of_an_unknown_vehicle_reverts(
    vehicle_rights: Any, vehicle_id: Any, owner: Any, buyer: Any, chain: Any
) -> None:
    with ape.reverts(vehicle_id.VehicleIdUnknownVehicle, vehicleId=999):
        vehicle_rights.grant(999, buyer, SCOPES, _expiry(chain), TERMS_CID, sender=owner)


def test_grant_with_undefined_or_empty_scopes_reverts(
    vehicle_rights: Any, owner: Any, buyer: Any, minted_vehicle: int, chain: Any
) -> None:
    for scopes in (0, 1 << 8, SCOPES | 1 << 200):
        with ape.reverts(vehicle_rights.VehicleRightsInvalidScopes, scopes=scopes):
            vehicle_rights.grant(
                minted_vehicle, buyer, scopes, _expiry(chain), TERMS_CID, sender=owner
            )


def test_grant_with_a_past_expiry_or_to_zero_reverts(
    vehicle_rights: Any, owner: Any, buyer: Any, minted_vehicle: int, chain: Any
) -> None:
    past = int(chain.pending_timestamp) - 1
    with ape.reverts(vehicle_rights.VehicleRightsInvalidExpiry, expiry=past):
        vehicle_rights.grant(minted_vehicle, buyer, SCOPES, past, TERMS_CID, sender=owner)
    with ape.reverts(vehicle_rights.VehicleRightsZeroGrantee):
        vehicle_rights.grant(minted_vehicle, ZERO, SCOPES, _expiry(chain), TERMS_CID, sender=owner)


def test_a_new_grant_replaces_the_previous_one(
    vehicle_rights: Any, owner: Any, buyer: Any, minted_vehicle: int, chain: Any
) -> None:
    vehicle_rights.grant(minted_vehicle, buyer, SCOPES, _expiry(chain), TERMS_CID, sender=owner)
    later = _expiry(chain, 7200)
    location = int(Privilege.LOCATION)
    vehicle_rights.grant(minted_vehicle, buyer, location, later, TERMS_CID, sender=owner)
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (location, later)


def test_owner_revokes_a_grant(
    vehicle_rights: Any, owner: Any, buyer: Any, minted_vehicle: int, chain: Any
) -> None:
    vehicle_rights.grant(minted_vehicle, buyer, SCOPES, _expiry(chain), TERMS_CID, sender=owner)
    tx = vehicle_rights.revoke(minted_vehicle, buyer, sender=owner)
    event = tx.events.filter(vehicle_rights.Revoked)[0]
    assert (event.vehicleId, event.grantee, event.owner) == (
        minted_vehicle,
        buyer.address,
        owner.address,
    )
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (0, 0)


def test_revoke_by_a_stranger_or_without_a_grant_reverts(
    vehicle_rights: Any, owner: Any, buyer: Any, stranger: Any, minted_vehicle: int, chain: Any
) -> None:
    vehicle_rights.grant(minted_vehicle, buyer, SCOPES, _expiry(chain), TERMS_CID, sender=owner)
    with ape.reverts(vehicle_rights.VehicleRightsNotOwner, caller=stranger.address):
        vehicle_rights.revoke(minted_vehicle, buyer, sender=stranger)
    with ape.reverts(
        vehicle_rights.VehicleRightsNoGrant, vehicleId=minted_vehicle, grantee=stranger.address
    ):
        vehicle_rights.revoke(minted_vehicle, stranger, sender=owner)


def test_a_grant_reads_as_none_once_expired(
    vehicle_rights: Any, owner: Any, buyer: Any, minted_vehicle: int, chain: Any
) -> None:
    expiry = _expiry(chain, 100)
    vehicle_rights.grant(minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, sender=owner)
    chain.mine(timestamp=expiry - 1)
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (SCOPES, expiry)
    chain.mine(timestamp=expiry)
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (0, 0)


def test_anyone_relays_a_grant_signed_by_the_owner(
    vehicle_rights: Any,
    owner: Any,
    buyer: Any,
    stranger: Any,
    minted_vehicle: int,
    chain: Any,
    sign: Callable[..., bytes],
) -> None:
    expiry = _expiry(chain)
    signature = _signed_grant(sign, vehicle_rights, owner, minted_vehicle, buyer, expiry)
    tx = vehicle_rights.grantBySig(
        minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, FAR_FUTURE, signature, sender=stranger
    )
    assert tx.events.filter(vehicle_rights.Granted)[0].owner == owner.address
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (SCOPES, expiry)
    assert vehicle_rights.nonces(owner) == 1


def test_a_replayed_grant_signature_reverts(
    vehicle_rights: Any,
    owner: Any,
    buyer: Any,
    minted_vehicle: int,
    chain: Any,
    sign: Callable[..., bytes],
) -> None:
    expiry = _expiry(chain)
    signature = _signed_grant(sign, vehicle_rights, owner, minted_vehicle, buyer, expiry)
    args = (minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, FAR_FUTURE, signature)
    vehicle_rights.grantBySig(*args, sender=buyer)
    vehicle_rights.revoke(minted_vehicle, buyer, sender=owner)
    # The nonce moved on, so the same signature now recovers to some other address.
    with ape.reverts(vehicle_rights.VehicleRightsInvalidSigner, expected=owner.address):
        vehicle_rights.grantBySig(*args, sender=buyer)
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (0, 0)


def test_an_expired_grant_signature_reverts(
    vehicle_rights: Any,
    owner: Any,
    buyer: Any,
    minted_vehicle: int,
    chain: Any,
    sign: Callable[..., bytes],
) -> None:
    deadline = int(chain.pending_timestamp) - 1
    expiry = _expiry(chain)
    signature = _signed_grant(
        sign, vehicle_rights, owner, minted_vehicle, buyer, expiry, deadline=deadline
    )
    with ape.reverts(vehicle_rights.VehicleRightsExpiredSignature, deadline=deadline):
        vehicle_rights.grantBySig(
            minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, deadline, signature, sender=buyer
        )


def test_a_grant_signed_by_someone_other_than_the_owner_reverts(
    vehicle_rights: Any,
    owner: Any,
    buyer: Any,
    stranger: Any,
    minted_vehicle: int,
    chain: Any,
    sign: Callable[..., bytes],
) -> None:
    expiry = _expiry(chain)
    signature = _signed_grant(sign, vehicle_rights, stranger, minted_vehicle, buyer, expiry)
    with ape.reverts(
        vehicle_rights.VehicleRightsInvalidSigner,
        signer=stranger.address,
        expected=owner.address,
    ):
        vehicle_rights.grantBySig(
            minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, FAR_FUTURE, signature, sender=buyer
        )


def test_a_transfer_voids_grants_and_a_transfer_back_does_not_revive_them(
    vehicle_rights: Any,
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
    buyer: Any,
    minted_vehicle: int,
    chain: Any,
) -> None:
    expiry = _expiry(chain)
    vehicle_rights.grant(minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, sender=owner)
    assert vehicle_id.ownerAndEpochOf(minted_vehicle) == (owner.address, 0)
    vehicle_id.transferFrom(owner, other_owner, minted_vehicle, sender=owner)
    assert vehicle_id.ownerAndEpochOf(minted_vehicle) == (other_owner.address, 1)
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (0, 0)
    vehicle_id.transferFrom(other_owner, owner, minted_vehicle, sender=other_owner)
    assert vehicle_id.ownerAndEpochOf(minted_vehicle) == (owner.address, 2)
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (0, 0)
    # The owner grants afresh under the new epoch.
    vehicle_rights.grant(minted_vehicle, buyer, SCOPES, expiry, TERMS_CID, sender=owner)
    assert vehicle_rights.privilegesOf(minted_vehicle, buyer) == (SCOPES, expiry)


def test_the_previous_owner_can_no_longer_grant(
    vehicle_rights: Any,
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
    buyer: Any,
    minted_vehicle: int,
    chain: Any,
) -> None:
    vehicle_id.transferFrom(owner, other_owner, minted_vehicle, sender=owner)
    with ape.reverts(vehicle_rights.VehicleRightsNotOwner, owner=other_owner.address):
        vehicle_rights.grant(minted_vehicle, buyer, SCOPES, _expiry(chain), TERMS_CID, sender=owner)


def test_owner_and_epoch_of_an_unknown_vehicle_reverts(vehicle_id: Any) -> None:
    with ape.reverts(vehicle_id.VehicleIdUnknownVehicle, vehicleId=12345):
        vehicle_id.ownerAndEpochOf(12345)
