"""ManufacturerRegistry: who may mint devices and vehicles."""

from __future__ import annotations

from typing import Any

import ape

from tests.conftest import CAN_MINT_DEVICES, CAN_MINT_VEHICLES


def test_register_assigns_sequential_ids_and_emits(
    registry: Any, admin: Any, stranger: Any
) -> None:
    tx = registry.register(stranger, "Third", CAN_MINT_DEVICES | CAN_MINT_VEHICLES, sender=admin)
    event = tx.events.filter(registry.ManufacturerRegistered)[0]
    assert event.manufacturerId == 3
    assert event.account == stranger.address
    record = registry.manufacturerOf(stranger)
    assert (record.id, record.capabilities, record.active) == (3, 3, True)
    assert registry.nameOf(3) == "Third"


def test_register_by_non_registrar_reverts(registry: Any, stranger: Any) -> None:
    with ape.reverts(registry.AccessControlUnauthorizedAccount):
        registry.register(stranger, "Rogue", CAN_MINT_DEVICES, sender=stranger)


def test_register_twice_reverts(registry: Any, admin: Any, manufacturer: Any) -> None:
    with ape.reverts(registry.ManufacturerRegistryAlreadyRegistered, account=manufacturer.address):
        registry.register(manufacturer, "Again", CAN_MINT_DEVICES, sender=admin)


def test_register_with_empty_or_long_name_reverts(registry: Any, admin: Any, stranger: Any) -> None:
    with ape.reverts(registry.ManufacturerRegistryInvalidName):
        registry.register(stranger, "", CAN_MINT_DEVICES, sender=admin)
    with ape.reverts(registry.ManufacturerRegistryInvalidName):
        registry.register(stranger, "x" * 65, CAN_MINT_DEVICES, sender=admin)


def test_register_with_meaningless_capabilities_reverts(
    registry: Any, admin: Any, stranger: Any
) -> None:
    with ape.reverts(registry.ManufacturerRegistryInvalidCapabilities, capabilities=0):
        registry.register(stranger, "None", 0, sender=admin)
    with ape.reverts(registry.ManufacturerRegistryInvalidCapabilities, capabilities=4):
        registry.register(stranger, "Bad", 4, sender=admin)


def test_update_changes_capabilities_and_suspends(
    registry: Any, admin: Any, manufacturer: Any
) -> None:
    tx = registry.update(manufacturer, CAN_MINT_VEHICLES, False, sender=admin)
    assert not tx.events.filter(registry.ManufacturerUpdated)[0].active
    assert registry.manufacturerOf(manufacturer).active is False
    with ape.reverts(registry.ManufacturerRegistryMissingCapability):
        registry.requireCapability(manufacturer, CAN_MINT_VEHICLES)


def test_update_of_unknown_account_reverts(registry: Any, admin: Any, stranger: Any) -> None:
    with ape.reverts(registry.ManufacturerRegistryUnknownManufacturer, account=stranger.address):
        registry.update(stranger, CAN_MINT_DEVICES, True, sender=admin)


def test_update_by_non_registrar_reverts(registry: Any, manufacturer: Any) -> None:
    with ape.reverts(registry.AccessControlUnauthorizedAccount):
        registry.update(manufacturer, CAN_MINT_DEVICES, True, sender=manufacturer)


def test_update_with_meaningless_capabilities_reverts(
    registry: Any, admin: Any, manufacturer: Any
) -> None:
    with ape.reverts(registry.ManufacturerRegistryInvalidCapabilities):
        registry.update(manufacturer, 8, True, sender=admin)


def test_require_capability_returns_the_id_or_reverts(
    registry: Any, manufacturer: Any, stranger: Any
) -> None:
    assert registry.requireCapability(manufacturer, CAN_MINT_DEVICES) == 1
    with ape.reverts(registry.ManufacturerRegistryMissingCapability):
        registry.requireCapability(manufacturer, CAN_MINT_VEHICLES)
    with ape.reverts(registry.ManufacturerRegistryMissingCapability):
        registry.requireCapability(stranger, CAN_MINT_DEVICES)


def test_has_capability_is_true_only_for_a_holder_of_that_capability(
    registry: Any, manufacturer: Any, stranger: Any
) -> None:
    assert registry.hasCapability(manufacturer, CAN_MINT_DEVICES) is True
    assert registry.hasCapability(manufacturer, CAN_MINT_VEHICLES) is False
    assert registry.hasCapability(stranger, CAN_MINT_DEVICES) is False


def test_has_capability_is_false_once_the_account_is_suspended(
    registry: Any, admin: Any, manufacturer: Any
) -> None:
    registry.update(manufacturer, CAN_MINT_DEVICES, False, sender=admin)
    assert registry.hasCapability(manufacturer, CAN_MINT_DEVICES) is False
