"""Parameters: governed flags and numbers, set only by the admin (the timelock)."""

from __future__ import annotations

from typing import Any

import ape
from eth_utils import keccak

KEYS = (
    "FEATURE_COMMANDS_SCOPE",
    "FEATURE_GRID_PROGRAMMES",
    "FEATURE_NEW_PRODUCT_CATEGORY",
    "PROTOCOL_FEE_BPS",
    "REWARDS_CHALLENGE_DELAY",
    "ORACLE_THRESHOLD",
    "DEVELOPER_LICENCE_FEE",
)


def test_well_known_keys_are_the_hashes_of_their_names(parameters: Any) -> None:
    for name in KEYS:
        assert getattr(parameters, name)() == keccak(name.encode())


def test_admin_sets_a_flag(parameters: Any, admin: Any) -> None:
    key = parameters.FEATURE_GRID_PROGRAMMES()
    assert parameters.flag(key) is False
    tx = parameters.setFlag(key, True, sender=admin)
    event = tx.events.filter(parameters.FlagSet)[0]
    assert (event.key, event.value) == (key, True)
    assert parameters.flag(key) is True


def test_admin_sets_a_number(parameters: Any, admin: Any) -> None:
    key = parameters.REWARDS_CHALLENGE_DELAY()
    tx = parameters.setUint(key, 86_400, sender=admin)
    event = tx.events.filter(parameters.UintSet)[0]
    assert (event.key, event.value) == (key, 86_400)
    assert parameters.uintOf(key) == 86_400


def test_timelock_holds_the_admin_role(parameters: Any, timelock: Any) -> None:
    assert parameters.hasRole(parameters.DEFAULT_ADMIN_ROLE(), timelock) is True


def test_protocol_fee_above_twenty_percent_reverts(parameters: Any, admin: Any) -> None:
    key = parameters.PROTOCOL_FEE_BPS()
    parameters.setUint(key, 2000, sender=admin)
    with ape.reverts(parameters.ParametersValueOutOfRange, key=key, value=2001, max=2000):
        parameters.setUint(key, 2001, sender=admin)
    assert parameters.uintOf(key) == 2000


def test_anyone_else_setting_a_parameter_reverts(parameters: Any, stranger: Any) -> None:
    role = parameters.DEFAULT_ADMIN_ROLE()
    with ape.reverts(
        parameters.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=role
    ):
        parameters.setFlag(parameters.FEATURE_COMMANDS_SCOPE(), True, sender=stranger)
    with ape.reverts(parameters.AccessControlUnauthorizedAccount, account=stranger.address):
        parameters.setUint(parameters.PROTOCOL_FEE_BPS(), 1, sender=stranger)
