"""VehicleId: minting by owners and by connections with consent, attributes, metadata."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import ape

from tests.conftest import MINT_TYPES, private_key, vin_commitment

KONA = ("Hyundai", "Kona Electric", 2019)


def consent(
    vehicle_id: Any,
    sign: Callable[..., bytes],
    owner: Any,
    minter: Any,
    vin: bytes,
    nonce: int = 0,
    deadline: int = 2**40,
    signer: Any = None,
) -> bytes:
    message = {
        "owner": owner.address,
        "minter": minter.address,
        "make": KONA[0],
        "model": KONA[1],
        "year": KONA[2],
        "vinCommitment": vin,
        "nonce": nonce,
        "deadline": deadline,
    }
    return sign(private_key(signer or owner), vehicle_id, "MintVehicle", MINT_TYPES, message)


def test_owner_mints_a_vehicle_with_attributes(vehicle_id: Any, owner: Any) -> None:
    vin = vin_commitment("KMHK381GFKU000001")
    tx = vehicle_id.mint(*KONA, vin, sender=owner)
    event = tx.events.filter(vehicle_id.VehicleMinted)[0]
    assert (event.vehicleId, event.owner, event.modelId, event.year) == (1, owner.address, 1, 2019)
    assert event.vinCommitment == vin
    assert vehicle_id.ownerOf(1) == owner.address
    assert vehicle_id.vehicleOf(1) == (*KONA, "0x0000000000000000000000000000000000000000")
    assert vehicle_id.vehicleOfVinCommitment(vin, owner) == 1
    assert vehicle_id.lastVehicleId() == 1


def test_models_are_catalogued_once(vehicle_id: Any, owner: Any, other_owner: Any) -> None:
    first = vehicle_id.mint(*KONA, vin_commitment("A"), sender=owner)
    second = vehicle_id.mint(
        "Hyundai", "Kona Electric", 2021, vin_commitment("B"), sender=other_owner
    )
    assert len(first.events.filter(vehicle_id.ModelRegistered)) == 1
    assert len(second.events.filter(vehicle_id.ModelRegistered)) == 0
    third = vehicle_id.mint("Tesla", "Model 3", 2022, vin_commitment("C"), sender=owner)
    assert third.events.filter(vehicle_id.ModelRegistered)[0].modelId == 2
    assert vehicle_id.modelOf(2) == ("Tesla", "Model 3")


def test_token_uri_is_json_metadata(vehicle_id: Any, minted_vehicle: int) -> None:
    uri = vehicle_id.tokenURI(minted_vehicle)
    prefix = "data:application/json;base64,"
    assert uri.startswith(prefix)
    meta = json.loads(base64.b64decode(uri[len(prefix) :]))
    assert meta["name"] == f"DIMO Vehicle #{minted_vehicle}"
    assert {a["trait_type"]: a["value"] for a in meta["attributes"]} == {
        "Make": "Hyundai",
        "Model": "Kona Electric",
        "Year": 2019,
    }


def test_a_vin_commitment_mints_once_per_owner(
    vehicle_id: Any, owner: Any, other_owner: Any
) -> None:
    vin = vin_commitment("KMHK381GFKU000001")
    vehicle_id.mint(*KONA, vin, sender=owner)
    with ape.reverts(vehicle_id.VehicleIdVinAlreadyMinted, vinCommitment=vin, vehicleId=1):
        vehicle_id.mint(*KONA, vin, sender=owner)
    # Bound to its first owner: another owner's copy is another vehicle (see test_attacks).
    vehicle_id.mint(*KONA, vin, sender=other_owner)
    assert vehicle_id.vehicleOfVinCommitment(vin, other_owner) == 2


def test_zero_vin_commitment_reverts(vehicle_id: Any, owner: Any) -> None:
    with ape.reverts(vehicle_id.VehicleIdEmptyVinCommitment):
        vehicle_id.mint(*KONA, b"\x00" * 32, sender=owner)


def test_implausible_year_reverts(vehicle_id: Any, owner: Any) -> None:
    with ape.reverts(vehicle_id.VehicleIdInvalidYear, year=1700):
        vehicle_id.mint("Hyundai", "Kona Electric", 1700, vin_commitment("A"), sender=owner)
    with ape.reverts(vehicle_id.VehicleIdInvalidYear, year=2101):
        vehicle_id.mint("Hyundai", "Kona Electric", 2101, vin_commitment("A"), sender=owner)


def test_model_names_that_would_break_metadata_revert(vehicle_id: Any, owner: Any) -> None:
    for bad in ["", 'Kona "EV"', "Kona\\EV", "Kona\nEV", "K" * 65]:
        with ape.reverts(vehicle_id.VehicleIdInvalidModelName):
            vehicle_id.mint("Hyundai", bad, 2019, vin_commitment(bad + "x"), sender=owner)


def test_connection_mints_for_owner_with_consent(
    vehicle_id: Any, connection: Any, owner: Any, sign: Callable[..., bytes]
) -> None:
    vin = vin_commitment("KMHK381GFKU000002")
    signature = consent(vehicle_id, sign, owner, connection, vin)
    tx = vehicle_id.mintFor(owner, *KONA, vin, 2**40, signature, sender=connection)
    event = tx.events.filter(vehicle_id.VehicleMinted)[0]
    assert (event.owner, event.minter) == (owner.address, connection.address)
    assert vehicle_id.ownerOf(event.vehicleId) == owner.address
    assert vehicle_id.nonces(owner) == 1


def test_mint_for_by_unregistered_caller_reverts(
    vehicle_id: Any, registry: Any, stranger: Any, owner: Any, sign: Callable[..., bytes]
) -> None:
    vin = vin_commitment("X")
    signature = consent(vehicle_id, sign, owner, stranger, vin)
    with ape.reverts(registry.ManufacturerRegistryMissingCapability):
        vehicle_id.mintFor(owner, *KONA, vin, 2**40, signature, sender=stranger)


def test_mint_for_by_device_manufacturer_without_capability_reverts(
    vehicle_id: Any, registry: Any, manufacturer: Any, owner: Any, sign: Callable[..., bytes]
) -> None:
    vin = vin_commitment("X")
    signature = consent(vehicle_id, sign, owner, manufacturer, vin)
    with ape.reverts(registry.ManufacturerRegistryMissingCapability):
        vehicle_id.mintFor(owner, *KONA, vin, 2**40, signature, sender=manufacturer)


def test_mint_for_signed_by_wrong_signer_reverts(
    vehicle_id: Any, connection: Any, owner: Any, stranger: Any, sign: Callable[..., bytes]
) -> None:
    vin = vin_commitment("X")
    signature = consent(vehicle_id, sign, owner, connection, vin, signer=stranger)
    with ape.reverts(
        vehicle_id.VehicleIdInvalidSigner, signer=stranger.address, expected=owner.address
    ):
        vehicle_id.mintFor(owner, *KONA, vin, 2**40, signature, sender=connection)


def test_mint_for_with_replayed_nonce_reverts(
    vehicle_id: Any, connection: Any, owner: Any, sign: Callable[..., bytes]
) -> None:
    vin = vin_commitment("X")
    signature = consent(vehicle_id, sign, owner, connection, vin, nonce=0)
    vehicle_id.mintFor(owner, *KONA, vin, 2**40, signature, sender=connection)
    # The same consent again (a new VIN would not help: the nonce moved on).
    with ape.reverts(vehicle_id.VehicleIdInvalidSigner):
        vehicle_id.mintFor(owner, *KONA, vin, 2**40, signature, sender=connection)


def test_mint_for_with_expired_deadline_reverts(
    vehicle_id: Any, connection: Any, owner: Any, chain: Any, sign: Callable[..., bytes]
) -> None:
    deadline = chain.pending_timestamp - 1
    vin = vin_commitment("X")
    signature = consent(vehicle_id, sign, owner, connection, vin, deadline=deadline)
    with ape.reverts(vehicle_id.VehicleIdExpiredSignature, deadline=deadline):
        vehicle_id.mintFor(owner, *KONA, vin, deadline, signature, sender=connection)


def test_mint_for_with_malformed_signature_reverts(
    vehicle_id: Any, connection: Any, owner: Any
) -> None:
    with ape.reverts(vehicle_id.ECDSAInvalidSignatureLength):
        vehicle_id.mintFor(
            owner, *KONA, vin_commitment("X"), 2**40, b"\x01" * 10, sender=connection
        )


def test_views_of_unknown_vehicle_revert(vehicle_id: Any, stranger: Any) -> None:
    with ape.reverts(vehicle_id.VehicleIdUnknownVehicle, vehicleId=99):
        vehicle_id.vehicleOf(99)
    with ape.reverts(vehicle_id.VehicleIdUnknownVehicle, vehicleId=99):
        vehicle_id.tokenURI(99)
    assert vehicle_id.vehicleOfVinCommitment(vin_commitment("nothing"), stranger) == 0


def test_pairing_hooks_only_for_device_registry(
    vehicle_id: Any, minted_vehicle: int, stranger: Any
) -> None:
    with ape.reverts(vehicle_id.VehicleIdUnauthorizedDeviceRegistry, caller=stranger.address):
        vehicle_id.attachDevice(minted_vehicle, stranger, sender=stranger)
    with ape.reverts(vehicle_id.VehicleIdUnauthorizedDeviceRegistry, caller=stranger.address):
        vehicle_id.detachDevice(minted_vehicle, sender=stranger)


def test_device_registry_is_set_once_by_admin(
    vehicle_id: Any, device_id: Any, admin: Any, stranger: Any
) -> None:
    with ape.reverts(vehicle_id.AccessControlUnauthorizedAccount):
        vehicle_id.setDeviceRegistry(stranger, sender=stranger)
    with ape.reverts(vehicle_id.VehicleIdDeviceRegistryAlreadySet, registry=device_id.address):
        vehicle_id.setDeviceRegistry(stranger, sender=admin)


def test_transfer_moves_ownership(
    vehicle_id: Any, minted_vehicle: int, owner: Any, other_owner: Any
) -> None:
    vehicle_id.transferFrom(owner, other_owner, minted_vehicle, sender=owner)
    assert vehicle_id.ownerOf(minted_vehicle) == other_owner.address
