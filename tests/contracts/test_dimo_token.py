"""DimoToken: capped, permit, votes on a timestamp clock, role-gated minting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

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


# Sub-accounts: keyless addresses a minter funds once and alone spends from (the rewards
# contract funds one per epoch).


def _subaccount(holder: str, number: int) -> str:
    """`DimoToken.subaccount`, computed here: the low 160 bits of keccak(abi.encode(h, id))."""
    digest = keccak(encode(["address", "uint256"], [holder, number]))
    return to_checksum_address(digest[12:])


def _keyholder(address: str) -> Any:
    """Whoever would hold a key for `address`: anvil impersonates it, with gas money."""
    keyholder = ape.accounts[address]
    keyholder.balance += 10**18
    return keyholder


def test_a_sub_account_is_the_low_160_bits_of_keccak_of_its_holder_and_number(
    token: Any, admin: Any, stranger: Any
) -> None:
    for holder, number in ((admin.address, 0), (admin.address, 1), (stranger.address, 0)):
        assert token.subaccount(holder, number) == _subaccount(holder, number)
    assert len({token.subaccount(admin, n) for n in range(8)}) == 8


def test_a_minter_funds_its_sub_account_once_and_only_it_spends_from_it(
    token: Any, admin: Any, owner: Any, stranger: Any
) -> None:
    account = token.subaccount(admin, 7)
    tx = token.mintToSubaccount(7, 10, sender=admin)
    funded = tx.events.filter(token.SubaccountFunded)[0]
    assert (funded.holder, funded.id, funded.account, funded.amount) == (admin, 7, account, 10)
    assert (token.balanceOf(account), token.isFundedSubaccount(account)) == (10, True)
    assert token.totalSupply() == 10
    with ape.reverts(token.DimoTokenSubaccountFunded, account=account):
        token.mintToSubaccount(7, 1, sender=admin)
    # A stranger's call names the stranger's own sub-account 7, which holds nothing.
    theirs = token.subaccount(stranger, 7)
    with ape.reverts(token.ERC20InsufficientBalance, sender=theirs, balance=0, needed=1):
        token.transferFromSubaccount(7, stranger, 1, sender=stranger)
    token.transferFromSubaccount(7, owner, 4, sender=admin)
    assert (token.balanceOf(account), token.balanceOf(owner)) == (6, 4)
    with ape.reverts(token.ERC20InsufficientBalance, sender=account, balance=6, needed=7):
        token.transferFromSubaccount(7, owner, 7, sender=admin)
    assert token.balanceOf(account) == 6


def test_nothing_is_transferred_or_minted_into_a_funded_sub_account(
    token: Any, admin: Any, owner: Any, stranger: Any
) -> None:
    token.mint(owner, 5, sender=admin)
    token.mintToSubaccount(1, 10, sender=admin)
    token.mintToSubaccount(2, 10, sender=admin)
    one = token.subaccount(admin, 1)
    with ape.reverts(token.DimoTokenSubaccountFunded, account=one):
        token.transfer(one, 1, sender=owner)
    token.approve(stranger, 5, sender=owner)
    with ape.reverts(token.DimoTokenSubaccountFunded, account=one):
        token.transferFrom(owner, one, 1, sender=stranger)
    with ape.reverts(token.DimoTokenSubaccountFunded, account=one):
        token.mint(one, 1, sender=admin)
    # Not even from the holder's other sub-account: epoch 2 cannot top up epoch 1.
    with ape.reverts(token.DimoTokenSubaccountFunded, account=one):
        token.transferFromSubaccount(2, one, 1, sender=admin)
    assert (token.balanceOf(one), token.balanceOf(owner), token.totalSupply()) == (10, 5, 25)


def test_a_gift_sent_before_funding_is_handed_to_the_holder_first(
    token: Any, admin: Any, owner: Any
) -> None:
    account = token.subaccount(admin, 9)
    token.mint(owner, 5, sender=admin)
    token.transfer(account, 3, sender=owner)
    token.mintToSubaccount(9, 10, sender=admin)
    assert (token.balanceOf(account), token.balanceOf(admin)) == (10, 3)
    assert token.totalSupply() == 15


def test_no_one_mints_into_or_spends_from_another_holders_sub_account(
    token: Any, admin: Any, owner: Any, stranger: Any
) -> None:
    with ape.reverts(token.AccessControlUnauthorizedAccount):
        token.mintToSubaccount(0, 1, sender=stranger)
    token.mintToSubaccount(0, 10, sender=admin)
    token.grantRole(token.MINTER_ROLE(), stranger, sender=admin)
    # Another minter's sub-account 0 is its own, at another address.
    token.mintToSubaccount(0, 4, sender=stranger)
    mine, theirs = token.subaccount(admin, 0), token.subaccount(stranger, 0)
    assert mine != theirs
    token.transferFromSubaccount(0, owner, 4, sender=stranger)
    with ape.reverts(token.ERC20InsufficientBalance, sender=theirs, balance=0, needed=1):
        token.transferFromSubaccount(0, owner, 1, sender=stranger)
    assert (token.balanceOf(mine), token.balanceOf(owner)) == (10, 4)


def test_funding_a_sub_account_past_the_cap_reverts(token: Any, admin: Any, owner: Any) -> None:
    token.mint(owner, CAP - 10, sender=admin)
    with ape.reverts(token.DimoTokenCapExceeded, amount=11, supply=CAP - 10, cap=CAP):
        token.mintToSubaccount(3, 11, sender=admin)
    assert not token.isFundedSubaccount(token.subaccount(admin, 3))


def test_a_funded_sub_account_holds_no_votes_and_its_own_address_cannot_move_or_delegate_it(
    token: Any, admin: Any, owner: Any, stranger: Any
) -> None:
    token.invoke_transaction("delegate", owner, sender=owner)
    token.mintToSubaccount(4, 10, sender=admin)
    account = token.subaccount(admin, 4)
    assert (token.delegates(account), token.getVotes(owner)) == (ZERO_ADDRESS, 0)
    token.transferFromSubaccount(4, owner, 3, sender=admin)
    assert token.getVotes(owner) == 3
    # Were a key for the address ever found, it could still not spend or delegate the tokens.
    keyholder = _keyholder(account)
    with ape.reverts(token.DimoTokenSubaccountFunded, account=account):
        token.transfer(stranger, 1, sender=keyholder)
    token.approve(stranger, 7, sender=keyholder)
    with ape.reverts(token.DimoTokenSubaccountFunded, account=account):
        token.transferFrom(account, stranger, 1, sender=stranger)
    with ape.reverts(token.DimoTokenSubaccountFunded, account=account):
        token.invoke_transaction("delegate", stranger, sender=keyholder)
    assert (token.balanceOf(account), token.getVotes(stranger)) == (7, 0)


def test_funding_clears_a_delegate_set_from_the_sub_accounts_address_before(
    token: Any, admin: Any, stranger: Any
) -> None:
    account = token.subaccount(admin, 5)
    keyholder = _keyholder(account)
    token.invoke_transaction("delegate", stranger, sender=keyholder)
    token.mintToSubaccount(5, 10, sender=admin)
    assert (token.delegates(account), token.getVotes(stranger)) == (ZERO_ADDRESS, 0)
