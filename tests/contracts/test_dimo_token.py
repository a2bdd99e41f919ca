"""DimoToken: capped, permit, votes on a timestamp clock, role-gated minting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape

from tests.conftest import FAR_FUTURE, private_key

CAP = 1_000_000_000 * 10**18
ZERO_ADDRESS = "0x" + "0" * 40
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


# Balances and delegates share one slot per account (low 96 bits, high 160 bits): these check
# that neither ever leaks into the other, and that votes follow exactly as OpenZeppelin's.


def test_transfers_between_delegated_accounts_move_their_votes(
    token: Any, admin: Any, owner: Any, other_owner: Any, stranger: Any, buyer: Any, chain: Any
) -> None:
    token.invoke_transaction("delegate", stranger, sender=owner)
    token.invoke_transaction("delegate", buyer, sender=other_owner)
    supply = token.totalSupply()
    token.mint(owner, 10 * 10**18, sender=admin)
    token.mint(other_owner, 5 * 10**18, sender=admin)
    minted_at = chain.blocks.head.timestamp
    assert (token.getVotes(stranger), token.getVotes(buyer)) == (10 * 10**18, 5 * 10**18)
    token.transfer(other_owner, 3 * 10**18, sender=owner)
    assert (token.balanceOf(owner), token.balanceOf(other_owner)) == (7 * 10**18, 8 * 10**18)
    assert (token.getVotes(stranger), token.getVotes(buyer)) == (7 * 10**18, 8 * 10**18)
    assert (token.delegates(owner), token.delegates(other_owner)) == (stranger, buyer)
    assert token.totalSupply() == supply + 15 * 10**18
    chain.mine(1, timestamp=chain.pending_timestamp + 5)
    assert token.getPastTotalSupply(minted_at) == supply + 15 * 10**18
    # To an account that has not delegated: its votes are idle, the sender's delegate loses.
    token.transfer(admin, 10**18, sender=other_owner)
    assert token.getVotes(buyer) == 7 * 10**18


def test_delegating_again_keeps_the_balance_and_moves_the_votes(
    token: Any, admin: Any, owner: Any, other_owner: Any, stranger: Any
) -> None:
    token.mint(owner, 42, sender=admin)
    token.invoke_transaction("delegate", stranger, sender=owner)
    token.invoke_transaction("delegate", other_owner, sender=owner)
    assert token.balanceOf(owner) == 42
    assert (token.getVotes(stranger), token.getVotes(other_owner)) == (0, 42)
    token.invoke_transaction("delegate", ZERO_ADDRESS, sender=owner)
    assert (token.delegates(owner), token.balanceOf(owner)) == (ZERO_ADDRESS, 42)
    assert token.getVotes(other_owner) == 0


def test_a_transfer_above_the_balance_reverts_and_changes_nothing(
    token: Any, admin: Any, owner: Any, other_owner: Any, stranger: Any
) -> None:
    token.mint(owner, 5, sender=admin)
    token.invoke_transaction("delegate", stranger, sender=owner)
    with ape.reverts(token.ERC20InsufficientBalance, sender=owner.address, balance=5, needed=6):
        token.transfer(other_owner, 6, sender=owner)
    assert (token.balanceOf(owner), token.balanceOf(other_owner)) == (5, 0)
    assert (token.delegates(owner), token.getVotes(stranger)) == (stranger, 5)


def test_a_balance_near_the_cap_and_a_delegate_of_all_ones_keep_apart(
    token: Any, admin: Any, owner: Any, other_owner: Any
) -> None:
    ones = "0x" + "f" * 40
    token.invoke_transaction("delegate", ones, sender=owner)
    assert (token.delegates(owner).lower(), token.balanceOf(owner)) == (ones, 0)
    token.mint(owner, CAP - 1, sender=admin)
    assert token.balanceOf(owner) == CAP - 1
    assert token.delegates(owner).lower() == ones
    assert token.getVotes(ones) == CAP - 1
    token.transfer(other_owner, CAP - 1, sender=owner)
    assert (token.balanceOf(owner), token.balanceOf(other_owner)) == (0, CAP - 1)
    assert token.delegates(owner).lower() == ones
    assert (token.delegates(other_owner), token.getVotes(ones)) == (ZERO_ADDRESS, 0)
    token.invoke_transaction("delegate", ones, sender=other_owner)
    assert token.getVotes(ones) == CAP - 1
    assert token.balanceOf(other_owner) == CAP - 1
