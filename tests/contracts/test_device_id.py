"""DeviceId: batch minting, claiming and pairing with device-key signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
import pytest
from eth_utils import keccak

from tests.conftest import (
    CAN_MINT_DEVICES,
    CAN_MINT_VEHICLES,
    CLAIM_TYPES,
    FAR_FUTURE,
    make_device_key,
    private_key,
    vin_commitment,
)

ZERO = "0x0000000000000000000000000000000000000000"


def test_manufacturer_mints_devices_in_a_batch(device_id: Any, manufacturer: Any) -> None:
    keys = [make_device_key(i) for i in range(3)]
    serials = [keccak(f"SN{i}".encode()) for i in range(3)]
    tx = device_id.mintDevices([k.address for k in keys], serials, sender=manufacturer)
    events = tx.events.filter(device_id.DeviceMinted)
    assert [e.device for e in events] == [k.address for k in keys]
    assert {e.manufacturerId for e in events} == {1}
    for key, serial in zip(keys, serials, strict=True):
        assert device_id.ownerOf(int(key.address, 16)) == manufacturer.address
        assert device_id.serialHashOf(key.address) == serial
    assert device_id.balanceOf(manufacturer) == 3


def test_mint_by_non_manufacturer_reverts(
    device_id: Any, registry: Any, stranger: Any, connection: Any
) -> None:
    for caller in (stranger, connection):
        with ape.reverts(registry.ManufacturerRegistryMissingCapability):
            device_id.mintDevices([make_device_key(0).address], [b"\x01" * 32], sender=caller)


def test_mint_twice_reverts(device_id: Any, manufacturer: Any) -> None:
    key = make_device_key(0)
    device_id.mintDevices([key.address], [b"\x01" * 32], sender=manufacturer)
    with ape.reverts(device_id.DeviceIdAlreadyMinted, device=key.address):
        device_id.mintDevices([key.address], [b"\x02" * 32], sender=manufacturer)


def test_mint_with_mismatched_lengths_or_zero_address_reverts(
    device_id: Any, manufacturer: Any
) -> None:
    with ape.reverts(device_id.DeviceIdLengthMismatch, devices=1, serialHashes=0):
        device_id.mintDevices([make_device_key(0).address], [], sender=manufacturer)
    with ape.reverts(device_id.DeviceIdZeroDevice):
        device_id.mintDevices([ZERO], [b"\x01" * 32], sender=manufacturer)


def test_user_claims_device_with_both_signatures(
    device_id: Any, owner: Any, device_key: Any, claim: Callable[..., None]
) -> None:
    claim(owner, device_key)
    assert device_id.ownerOf(int(device_key.address, 16)) == owner.address
    assert device_id.pairingOf(device_key.address).claimed is True


def _claim_sigs(
    device_id: Any,
    sign: Callable[..., bytes],
    user_key: Any,
    device_key: Any,
    user: Any,
    deadline: int = FAR_FUTURE,
) -> tuple[bytes, bytes]:
    message = {"device": device_key.address, "user": user.address, "deadline": deadline}
    return (
        sign(user_key, device_id, "ClaimDevice", CLAIM_TYPES, message),
        sign(device_key.key, device_id, "ClaimDevice", CLAIM_TYPES, message),
    )


def test_claim_twice_reverts(
    device_id: Any,
    owner: Any,
    other_owner: Any,
    device_key: Any,
    claim: Callable[..., None],
    sign: Callable[..., bytes],
) -> None:
    claim(owner, device_key)
    user_sig, dev_sig = _claim_sigs(
        device_id, sign, private_key(other_owner), device_key, other_owner
    )
    with ape.reverts(device_id.DeviceIdAlreadyClaimed, device=device_key.address):
        device_id.claim(
            device_key.address, other_owner, FAR_FUTURE, user_sig, dev_sig, sender=other_owner
        )


def test_claim_of_unknown_device_reverts(
    device_id: Any, owner: Any, device_key: Any, sign: Callable[..., bytes]
) -> None:
    user_sig, dev_sig = _claim_sigs(device_id, sign, private_key(owner), device_key, owner)
    with ape.reverts(device_id.DeviceIdUnknownDevice, device=device_key.address):
        device_id.claim(device_key.address, owner, FAR_FUTURE, user_sig, dev_sig, sender=owner)


def test_claim_with_wrong_signers_reverts(
    device_id: Any,
    manufacturer: Any,
    owner: Any,
    stranger: Any,
    device_key: Any,
    sign: Callable[..., bytes],
) -> None:
    device_id.mintDevices([device_key.address], [b"\x01" * 32], sender=manufacturer)
    user_sig, dev_sig = _claim_sigs(device_id, sign, private_key(stranger), device_key, owner)
    with ape.reverts(
        device_id.DeviceIdInvalidSigner, signer=stranger.address, expected=owner.address
    ):
        device_id.claim(device_key.address, owner, FAR_FUTURE, user_sig, dev_sig, sender=owner)
    other_device = make_device_key(9)
    user_sig, _ = _claim_sigs(device_id, sign, private_key(owner), device_key, owner)
    _, wrong_dev_sig = _claim_sigs(device_id, sign, private_key(owner), other_device, owner)
    with ape.reverts(device_id.DeviceIdInvalidSigner, expected=device_key.address):
        device_id.claim(
            device_key.address, owner, FAR_FUTURE, user_sig, wrong_dev_sig, sender=owner
        )


@pytest.mark.parametrize(
    ("capabilities", "active"),
    [(CAN_MINT_DEVICES, False), (CAN_MINT_VEHICLES, True)],
    ids=["suspended", "without-device-capability"],
)
def test_claim_from_a_manufacturer_no_longer_minting_devices_reverts_and_changes_nothing(
    device_id: Any,
    registry: Any,
    admin: Any,
    manufacturer: Any,
    owner: Any,
    device_key: Any,
    sign: Callable[..., bytes],
    capabilities: int,
    active: bool,
) -> None:
    device_id.mintDevices([device_key.address], [b"\x01" * 32], sender=manufacturer)
    registry.update(manufacturer, capabilities, active, sender=admin)
    user_sig, dev_sig = _claim_sigs(device_id, sign, private_key(owner), device_key, owner)
    with ape.reverts(
        device_id.DeviceIdNotWithManufacturer,
        device=device_key.address,
        holder=manufacturer.address,
    ):
        device_id.claim(device_key.address, owner, FAR_FUTURE, user_sig, dev_sig, sender=owner)
    assert device_id.ownerOf(int(device_key.address, 16)) == manufacturer.address
    assert device_id.pairingOf(device_key.address).claimed is False


def test_claim_with_expired_deadline_reverts(
    device_id: Any,
    manufacturer: Any,
    owner: Any,
    device_key: Any,
    chain: Any,
    sign: Callable[..., bytes],
) -> None:
    device_id.mintDevices([device_key.address], [b"\x01" * 32], sender=manufacturer)
    deadline = chain.pending_timestamp - 1
    user_sig, dev_sig = _claim_sigs(
        device_id, sign, private_key(owner), device_key, owner, deadline
    )
    with ape.reverts(device_id.DeviceIdExpiredSignature, deadline=deadline):
        device_id.claim(device_key.address, owner, deadline, user_sig, dev_sig, sender=owner)


def test_owner_pairs_device_to_vehicle(
    device_id: Any,
    vehicle_id: Any,
    owner: Any,
    stranger: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
    chain: Any,
) -> None:
    claim(owner, device_key)
    owner_sig, dev_sig = pair_sigs(private_key(owner), device_key, minted_vehicle)
    # Anyone may relay the signed pairing.
    tx = device_id.pair(
        minted_vehicle, device_key.address, FAR_FUTURE, owner_sig, dev_sig, sender=stranger
    )
    event = tx.events.filter(device_id.DevicePaired)[0]
    assert (event.device, event.vehicleId, event.owner) == (
        device_key.address,
        minted_vehicle,
        owner.address,
    )
    assert vehicle_id.deviceOf(minted_vehicle) == device_key.address
    info = device_id.deviceInfo(device_key.address)
    assert info.deviceId == int(device_key.address, 16)
    assert (info.vehicleId, info.vehicleOwner) == (minted_vehicle, owner.address)
    assert info.pairedSince == chain.blocks[-1].timestamp


def test_pair_signature_cannot_be_replayed(
    device_id: Any,
    owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    claim(owner, device_key)
    owner_sig, dev_sig = pair_sigs(private_key(owner), device_key, minted_vehicle)
    device_id.pair(minted_vehicle, device_key.address, FAR_FUTURE, owner_sig, dev_sig, sender=owner)
    device_id.unpair(device_key.address, sender=owner)
    # The pairing count moved on, so the old signatures no longer match.
    with ape.reverts(device_id.DeviceIdInvalidSigner):
        device_id.pair(
            minted_vehicle, device_key.address, FAR_FUTURE, owner_sig, dev_sig, sender=owner
        )
    owner_sig, dev_sig = pair_sigs(private_key(owner), device_key, minted_vehicle, nonce=1)
    device_id.pair(minted_vehicle, device_key.address, FAR_FUTURE, owner_sig, dev_sig, sender=owner)


def test_pair_unclaimed_device_reverts(
    device_id: Any,
    manufacturer: Any,
    owner: Any,
    device_key: Any,
    minted_vehicle: int,
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    device_id.mintDevices([device_key.address], [b"\x01" * 32], sender=manufacturer)
    owner_sig, dev_sig = pair_sigs(private_key(owner), device_key, minted_vehicle)
    with ape.reverts(device_id.DeviceIdNotClaimed, device=device_key.address):
        device_id.pair(
            minted_vehicle, device_key.address, FAR_FUTURE, owner_sig, dev_sig, sender=owner
        )


def test_pair_already_paired_device_reverts(
    device_id: Any,
    vehicle_id: Any,
    owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    claim(owner, device_key)
    second = vehicle_id.mint(
        "Hyundai", "Kona Electric", 2020, vin_commitment("SECOND"), sender=owner
    ).return_value
    sigs = pair_sigs(private_key(owner), device_key, minted_vehicle)
    device_id.pair(minted_vehicle, device_key.address, FAR_FUTURE, *sigs, sender=owner)
    sigs = pair_sigs(private_key(owner), device_key, second, nonce=1)
    with ape.reverts(
        device_id.DeviceIdAlreadyPaired, device=device_key.address, vehicleId=minted_vehicle
    ):
        device_id.pair(second, device_key.address, FAR_FUTURE, *sigs, sender=owner)


def test_pair_already_paired_vehicle_reverts(
    device_id: Any,
    vehicle_id: Any,
    owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    second_key = make_device_key(1)
    claim(owner, device_key)
    claim(owner, second_key)
    sigs = pair_sigs(private_key(owner), device_key, minted_vehicle)
    device_id.pair(minted_vehicle, device_key.address, FAR_FUTURE, *sigs, sender=owner)
    sigs = pair_sigs(private_key(owner), second_key, minted_vehicle)
    with ape.reverts(
        vehicle_id.VehicleIdAlreadyPaired, vehicleId=minted_vehicle, device=device_key.address
    ):
        device_id.pair(minted_vehicle, second_key.address, FAR_FUTURE, *sigs, sender=owner)


def test_pair_to_unknown_vehicle_reverts(
    device_id: Any,
    vehicle_id: Any,
    owner: Any,
    device_key: Any,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    claim(owner, device_key)
    sigs = pair_sigs(private_key(owner), device_key, 77)
    with ape.reverts(vehicle_id.VehicleIdUnknownVehicle, vehicleId=77):
        device_id.pair(77, device_key.address, FAR_FUTURE, *sigs, sender=owner)


def test_pair_device_of_another_owner_reverts(
    device_id: Any,
    owner: Any,
    other_owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    claim(other_owner, device_key)
    sigs = pair_sigs(private_key(owner), device_key, minted_vehicle)
    with ape.reverts(
        device_id.DeviceIdOwnerMismatch, deviceOwner=other_owner.address, vehicleOwner=owner.address
    ):
        device_id.pair(minted_vehicle, device_key.address, FAR_FUTURE, *sigs, sender=owner)


def test_pair_with_wrong_signer_reverts(
    device_id: Any,
    owner: Any,
    stranger: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    claim(owner, device_key)
    bad_owner_sig, dev_sig = pair_sigs(private_key(stranger), device_key, minted_vehicle)
    with ape.reverts(
        device_id.DeviceIdInvalidSigner, signer=stranger.address, expected=owner.address
    ):
        device_id.pair(
            minted_vehicle, device_key.address, FAR_FUTURE, bad_owner_sig, dev_sig, sender=owner
        )
    owner_sig, _ = pair_sigs(private_key(owner), device_key, minted_vehicle)
    _, other_dev_sig = pair_sigs(private_key(owner), make_device_key(5), minted_vehicle)
    with ape.reverts(device_id.DeviceIdInvalidSigner, expected=device_key.address):
        device_id.pair(
            minted_vehicle, device_key.address, FAR_FUTURE, owner_sig, other_dev_sig, sender=owner
        )


def test_pair_with_expired_deadline_reverts(
    device_id: Any,
    owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
    chain: Any,
) -> None:
    claim(owner, device_key)
    deadline = chain.pending_timestamp - 1
    sigs = pair_sigs(private_key(owner), device_key, minted_vehicle, deadline=deadline)
    with ape.reverts(device_id.DeviceIdExpiredSignature, deadline=deadline):
        device_id.pair(minted_vehicle, device_key.address, deadline, *sigs, sender=owner)


def _paired(
    device_id: Any,
    owner: Any,
    device_key: Any,
    vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    claim(owner, device_key)
    sigs = pair_sigs(private_key(owner), device_key, vehicle)
    device_id.pair(vehicle, device_key.address, FAR_FUTURE, *sigs, sender=owner)


def test_owner_unpairs(
    device_id: Any,
    vehicle_id: Any,
    owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    _paired(device_id, owner, device_key, minted_vehicle, claim, pair_sigs)
    tx = device_id.unpair(device_key.address, sender=owner)
    event = tx.events.filter(device_id.DeviceUnpaired)[0]
    assert (event.vehicleId, event.reason) == (minted_vehicle, 0)
    assert vehicle_id.deviceOf(minted_vehicle) == ZERO
    info = device_id.deviceInfo(device_key.address)
    assert (info.vehicleId, info.vehicleOwner, info.pairedSince) == (0, ZERO, 0)


def test_unpair_by_stranger_reverts(
    device_id: Any,
    owner: Any,
    stranger: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    _paired(device_id, owner, device_key, minted_vehicle, claim, pair_sigs)
    with ape.reverts(device_id.DeviceIdUnauthorizedUnpair, caller=stranger.address):
        device_id.unpair(device_key.address, sender=stranger)


def test_unpair_of_unpaired_device_reverts(
    device_id: Any, owner: Any, device_key: Any, claim: Callable[..., None]
) -> None:
    claim(owner, device_key)
    with ape.reverts(device_id.DeviceIdNotPaired, device=device_key.address):
        device_id.unpair(device_key.address, sender=owner)


def test_vehicle_transfer_unpairs(
    device_id: Any,
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    _paired(device_id, owner, device_key, minted_vehicle, claim, pair_sigs)
    tx = vehicle_id.transferFrom(owner, other_owner, minted_vehicle, sender=owner)
    event = tx.events.filter(device_id.DeviceUnpaired)[0]
    assert (event.device, event.vehicleId, event.reason) == (device_key.address, minted_vehicle, 1)
    assert vehicle_id.deviceOf(minted_vehicle) == ZERO
    assert device_id.deviceInfo(device_key.address).vehicleId == 0


def test_device_transfer_unpairs(
    device_id: Any,
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
    device_key: Any,
    minted_vehicle: int,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    _paired(device_id, owner, device_key, minted_vehicle, claim, pair_sigs)
    tx = device_id.transferFrom(owner, other_owner, int(device_key.address, 16), sender=owner)
    assert tx.events.filter(device_id.DeviceUnpaired)[0].reason == 2
    assert vehicle_id.deviceOf(minted_vehicle) == ZERO
    assert device_id.deviceInfo(device_key.address).vehicleId == 0


def test_transfer_hook_only_from_vehicle_id(device_id: Any, stranger: Any, device_key: Any) -> None:
    with ape.reverts(device_id.DeviceIdOnlyVehicleId, caller=stranger.address):
        device_id.onVehicleTransferred(1, device_key.address, sender=stranger)


def test_device_info_of_unknown_device_reverts(device_id: Any, device_key: Any) -> None:
    with ape.reverts(device_id.DeviceIdUnknownDevice, device=device_key.address):
        device_id.deviceInfo(device_key.address)
