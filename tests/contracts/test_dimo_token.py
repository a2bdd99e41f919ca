"""DimoToken: capped, permit, votes on a timestamp clock, role-gated minting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape

from tests.conftest import FAR_FUTURE, private_key

CAP = 1_000_000_000 * 10**18
PERMIT_TYPES = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def test_metadata_and_cap(token: Any) -> None:
    assert (token.name(), token.symbol(), token.decimals()) == ("DIMO", "DIMO", 18)
    assert token.cap() == CAP
    assert token.CLOCK_MODE() == "mode=timestamp"


def test_minter_mints(token: Any, admin: Any, owner: Any) -> None:
    token.mint(owner, 5 * 10**18, sender=admin)
    assert token.balanceOf(owner) == 5 * 10**18


def test_mint_without_minter_role_reverts(token: Any, stranger: Any) -> None:
    with ape.reverts(token.AccessControlUnauthorizedAccount):
        token.mint(stranger, 1, sender=stranger)


def test_mint_past_the_cap_reverts(token: Any, admin: Any, owner: Any) -> None:
    token.mint(owner, CAP - 10, sender=admin)
    with ape.reverts(token.DimoTokenCapExceeded, amount=11, supply=CAP - 10, cap=CAP):
        token.mint(owner, 11, sender=admin)
    token.mint(owner, 10, sender=admin)
    assert token.totalSupply() == CAP


def test_permit_signed_by_eth_account_sets_allowance(
    token: Any, admin: Any, owner: Any, stranger: Any, sign: Callable[..., bytes]
) -> None:
    message = {
        "owner": owner.address,
        "spender": stranger.address,
        "value": 7,
        "nonce": token.nonces(owner),
        "deadline": FAR_FUTURE,
    }
    signature = sign(private_key(owner), token, "Permit", PERMIT_TYPES, message)
    r, s, v = signature[:32], signature[32:64], signature[64]
    token.permit(owner, stranger, 7, FAR_FUTURE, v, r, s, sender=stranger)
    assert token.allowance(owner, stranger) == 7
    with ape.reverts(token.ERC2612InvalidSigner):
        token.permit(owner, stranger, 7, FAR_FUTURE, v, r, s, sender=stranger)


def test_delegation_gives_votes_at_timestamps(
    token: Any, admin: Any, owner: Any, other_owner: Any, chain: Any
) -> None:
    token.mint(owner, 100, sender=admin)
    token.invoke_transaction("delegate", other_owner, sender=owner)
    assert token.getVotes(other_owner) == 100
    before = chain.pending_timestamp
    chain.mine(1, timestamp=before + 10)
    assert token.getPastVotes(other_owner, before) == 100
    token.transfer(admin, 40, sender=owner)
    assert token.getVotes(other_owner) == 60


def test_grant_minter_only_by_admin(token: Any, stranger: Any) -> None:
    with ape.reverts(token.AccessControlUnauthorizedAccount):
        token.grantRole(token.MINTER_ROLE(), stranger, sender=stranger)
