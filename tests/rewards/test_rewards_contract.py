"""The Rewards contract on anvil: posting, the challenge delay and veto, claims, caps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
import pytest

from protocol.eip712 import dimo_domain
from protocol.rewards import allocation_tree, claim_proof, epoch_cap, root_digest
from tests.rewards.conftest import DIMO, DOC_CID, Posted

ZERO_ROOT = b"\x00" * 32


def test_the_deploy_makes_rewards_the_token_minter_with_a_delay_in_parameters(
    rewards: Any, token: Any, parameters: Any
) -> None:
    assert token.hasRole(token.MINTER_ROLE(), rewards)
    assert parameters.uintOf(parameters.REWARDS_CHALLENGE_DELAY()) == 60
    assert rewards.issuanceSchedule() == (1_105_000 * DIMO, 1500, 52)


def test_a_posted_root_pays_each_vehicle_its_amount_to_its_owner_after_the_delay(
    rewards: Any,
    token: Any,
    owner: Any,
    stranger: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    a, b = new_vehicle(owner), new_vehicle(owner)
    posted = post_root(0, {a: 3 * DIMO, b: 5 * DIMO})
    event = posted.tx.events.filter(rewards.RootPosted)[0]
    assert (event.epoch, event.root, event.total, event.cid) == (
        0,
        posted.tree.root,
        8 * DIMO,
        DOC_CID,
    )
    wait_delay(0)
    before = token.balanceOf(owner)
    tx = rewards.claim(*posted.claim_args(b), sender=stranger)  # anyone relays; the owner is paid
    assert token.balanceOf(owner) == before + 5 * DIMO
    claimed = tx.events.filter(rewards.Claimed)[0]
    assert (claimed.epoch, claimed.vehicleId, claimed.owner, claimed.amount) == (
        0,
        b,
        owner.address,
        5 * DIMO,
    )
    assert rewards.isClaimed(0, b)
    assert not rewards.isClaimed(0, a)
    # The first claim minted the epoch's total into the epoch's sub-account, once.
    assert rewards.totalMinted() == 8 * DIMO
    assert token.balanceOf(token.subaccount(rewards, 0)) == 3 * DIMO
    assert token.balanceOf(rewards) == 0
    assert rewards.epochRoot(0).funded


def test_a_second_claim_of_the_same_epoch_and_vehicle_reverts(
    rewards: Any,
    owner: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    vehicle = new_vehicle(owner)
    posted = post_root(0, {vehicle: DIMO})
    wait_delay(0)
    rewards.claim(*posted.claim_args(vehicle), sender=owner)
    with ape.reverts(rewards.RewardsAlreadyClaimed, epoch=0, vehicleId=vehicle):
        rewards.claim(*posted.claim_args(vehicle), sender=owner)


def test_a_wrong_amount_or_proof_reverts(
    rewards: Any,
    owner: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    a, b = new_vehicle(owner), new_vehicle(owner)
    posted = post_root(0, {a: DIMO, b: 2 * DIMO})
    wait_delay(0)
    epoch, vehicle, amount, proof = posted.claim_args(a)
    with ape.reverts(rewards.RewardsInvalidProof, epoch=0, vehicleId=a, amount=amount + 1):
        rewards.claim(epoch, vehicle, amount + 1, proof, sender=owner)
    with ape.reverts(rewards.RewardsInvalidProof, epoch=0, vehicleId=b, amount=amount):
        rewards.claim(epoch, b, amount, proof, sender=owner)  # a's leaf, claimed for b
    with ape.reverts(rewards.RewardsInvalidProof):
        rewards.claim(epoch, vehicle, amount, [b"\x01" * 32], sender=owner)


def test_a_claim_before_the_delay_reverts(
    rewards: Any,
    owner: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
) -> None:
    vehicle = new_vehicle(owner)
    posted = post_root(0, {vehicle: DIMO})
    claimable_at = rewards.epochRoot(0).claimableAt
    assert claimable_at == posted.tx.timestamp + 60
    with ape.reverts(rewards.RewardsNotClaimable, epoch=0, claimableAt=claimable_at):
        rewards.claim(*posted.claim_args(vehicle), sender=owner)


def test_a_vetoed_root_pays_nothing(
    rewards: Any,
    token: Any,
    admin: Any,
    owner: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    vehicle = new_vehicle(owner)
    posted = post_root(0, {vehicle: DIMO})
    tx = rewards.veto(0, sender=admin)
    vetoed = tx.events.filter(rewards.RootVetoed)[0]
    assert (vetoed.epoch, vetoed.root, vetoed.by) == (0, posted.tree.root, admin.address)
    wait_delay(0)
    before = token.totalSupply()
    with ape.reverts(rewards.RewardsNotClaimable, epoch=0, claimableAt=0):
        rewards.claim(*posted.claim_args(vehicle), sender=owner)
    with ape.reverts(rewards.RewardsNotClaimable, epoch=0, claimableAt=0):
        rewards.fund(0, sender=owner)
    assert token.totalSupply() == before
    assert rewards.totalMinted() == 0


def test_a_guardian_or_the_admin_may_veto_and_nobody_else(
    rewards: Any,
    admin: Any,
    owner: Any,
    stranger: Any,
    new_vehicle: Callable[[Any], int],
    end_epoch: Callable[[int], None],
    post_root: Callable[..., Posted],
) -> None:
    vehicle = new_vehicle(owner)
    end_epoch(1)
    post_root(0, {vehicle: DIMO})
    post_root(1, {vehicle: DIMO})
    with ape.reverts(rewards.RewardsUnauthorizedVeto, caller=stranger.address):
        rewards.veto(0, sender=stranger)
    rewards.grantRole(rewards.GUARDIAN_ROLE(), stranger, sender=admin)
    rewards.veto(0, sender=stranger)
    # The admin (the timelock live) vetoes without the guardian role.
    rewards.revokeRole(rewards.GUARDIAN_ROLE(), admin, sender=admin)
    rewards.veto(1, sender=admin)
    assert rewards.epochRoot(0).vetoed
    assert rewards.epochRoot(1).vetoed


def test_a_veto_after_the_delay_or_of_no_root_reverts(
    rewards: Any,
    admin: Any,
    owner: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    with ape.reverts(rewards.RewardsNoPendingRoot, epoch=0):
        rewards.veto(0, sender=admin)
    post_root(0, {new_vehicle(owner): DIMO})
    wait_delay(0)
    claimable_at = rewards.epochRoot(0).claimableAt
    with ape.reverts(rewards.RewardsChallengeOver, epoch=0, claimableAt=claimable_at):
        rewards.veto(0, sender=admin)


def test_a_vetoed_epoch_can_be_posted_again_and_a_live_one_cannot(
    rewards: Any,
    admin: Any,
    owner: Any,
    token: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
    root_signatures: Callable[..., bytes],
) -> None:
    vehicle = new_vehicle(owner)
    first = post_root(0, {vehicle: DIMO})
    root, total = first.tree.root, first.total
    with ape.reverts(rewards.RewardsEpochAlreadyPosted, epoch=0, root=root):
        rewards.post(0, root, total, DOC_CID, root_signatures(0, root, total), sender=admin)
    rewards.veto(0, sender=admin)
    with ape.reverts(rewards.RewardsNoPendingRoot, epoch=0):
        rewards.veto(0, sender=admin)
    second = post_root(0, {vehicle: 2 * DIMO})
    wait_delay(0)
    before = token.balanceOf(owner)
    rewards.claim(*second.claim_args(vehicle), sender=owner)
    assert token.balanceOf(owner) == before + 2 * DIMO
    with ape.reverts(rewards.RewardsInvalidProof):
        rewards.claim(*first.claim_args(vehicle), sender=owner)


def test_claims_for_three_epochs_at_once_pay_each_from_its_epochs_sub_account(
    rewards: Any,
    token: Any,
    fresh_owner: Callable[[], Any],
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    holder = fresh_owner()
    vehicle, other = new_vehicle(holder), new_vehicle(holder)
    posted = [post_root(e, {vehicle: (e + 1) * DIMO, other: DIMO}) for e in range(3)]
    wait_delay(2)
    tx = rewards.claimMany([p.claim_args(vehicle) for p in posted], sender=holder)
    assert token.balanceOf(holder) == 6 * DIMO
    claims = [(c.epoch, c.vehicleId, c.amount) for c in tx.events.filter(rewards.Claimed)]
    assert claims == [(0, vehicle, DIMO), (1, vehicle, 2 * DIMO), (2, vehicle, 3 * DIMO)]
    transfers = [t for t in tx.events.filter(token.Transfer) if t.to == holder.address]
    assert [(t["from"], t.value) for t in transfers] == [
        (token.subaccount(rewards, e), (e + 1) * DIMO) for e in range(3)
    ]
    assert all(rewards.isClaimed(e, vehicle) for e in range(3))
    with ape.reverts(rewards.RewardsAlreadyClaimed, epoch=1, vehicleId=vehicle):
        rewards.claimMany([posted[1].claim_args(vehicle)], sender=holder)


def test_claim_many_pays_each_owner_of_several_vehicles(
    rewards: Any,
    token: Any,
    fresh_owner: Callable[[], Any],
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    alice, bob = fresh_owner(), fresh_owner()
    a1, a2, b1 = new_vehicle(alice), new_vehicle(alice), new_vehicle(bob)
    posted = post_root(0, {a1: DIMO, a2: 2 * DIMO, b1: 4 * DIMO})
    wait_delay(0)
    rewards.claimMany([posted.claim_args(v) for v in (a1, a2, b1)], sender=bob)
    assert (token.balanceOf(alice), token.balanceOf(bob)) == (3 * DIMO, 4 * DIMO)
    with ape.reverts(rewards.RewardsNoClaims):
        rewards.claimMany([], sender=bob)


def test_a_claim_pays_the_owner_at_claim_time(
    rewards: Any,
    token: Any,
    vehicle_id: Any,
    owner: Any,
    fresh_owner: Callable[[], Any],
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    vehicle = new_vehicle(owner)
    posted = post_root(0, {vehicle: DIMO})
    buyer = fresh_owner()
    vehicle_id.transferFrom(owner, buyer, vehicle, sender=owner)
    wait_delay(0)
    rewards.claim(*posted.claim_args(vehicle), sender=owner)
    assert token.balanceOf(buyer) == DIMO


def test_posting_an_epoch_that_has_not_ended_reverts(
    rewards: Any, admin: Any, chain: Any, root_signatures: Callable[..., bytes]
) -> None:
    current = rewards.epochAt(chain.pending_timestamp)
    _, end = rewards.epochBounds(current)
    root = b"\x07" * 32
    with ape.reverts(rewards.RewardsEpochNotEnded, epoch=current, endsAt=end):
        rewards.post(
            current, root, DIMO, DOC_CID, root_signatures(current, root, DIMO), sender=admin
        )


def test_a_total_above_the_epochs_cap_reverts(
    rewards: Any,
    admin: Any,
    end_epoch: Callable[[int], None],
    root_signatures: Callable[..., bytes],
) -> None:
    end_epoch(0)
    cap = rewards.capOf(0)
    root = b"\x07" * 32
    with ape.reverts(rewards.RewardsTotalExceedsCap, epoch=0, total=cap + 1, cap=cap):
        rewards.post(0, root, cap + 1, DOC_CID, root_signatures(0, root, cap + 1), sender=admin)


@pytest.mark.parametrize(
    ("root", "total", "cid"),
    [(ZERO_ROOT, DIMO, DOC_CID), (b"\x07" * 32, 0, DOC_CID), (b"\x07" * 32, DIMO, b"")],
)
def test_a_zero_root_zero_total_or_empty_cid_reverts(
    rewards: Any,
    admin: Any,
    end_epoch: Callable[[int], None],
    root_signatures: Callable[..., bytes],
    root: bytes,
    total: int,
    cid: bytes,
) -> None:
    end_epoch(0)
    with ape.reverts(rewards.RewardsInvalidRoot, epoch=0):
        rewards.post(0, root, total, cid, root_signatures(0, root, total, cid), sender=admin)


def test_a_post_needs_a_quorum_of_oracle_signatures(
    rewards: Any,
    anchor: Any,
    admin: Any,
    stranger: Any,
    end_epoch: Callable[[int], None],
    root_signatures: Callable[..., bytes],
    sign: Callable[..., bytes],
) -> None:
    end_epoch(0)
    root = b"\x07" * 32
    one = root_signatures(0, root, DIMO, n=1)
    with ape.reverts(anchor.OracleRegistryQuorumNotReached, given=1, threshold=2):
        rewards.post(0, root, DIMO, DOC_CID, one, sender=admin)
    # Signatures of another total do not recover to oracles.
    other = root_signatures(0, root, 2 * DIMO)
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        rewards.post(0, root, DIMO, DOC_CID, other, sender=admin)


def test_fund_mints_an_epoch_once_and_claims_then_only_transfer(
    rewards: Any,
    token: Any,
    owner: Any,
    stranger: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    vehicle = new_vehicle(owner)
    posted = post_root(0, {vehicle: 3 * DIMO})
    with ape.reverts(rewards.RewardsNotClaimable):
        rewards.fund(0, sender=stranger)
    wait_delay(0)
    tx = rewards.fund(0, sender=stranger)
    funded = tx.events.filter(rewards.EpochFunded)[0]
    assert (funded.epoch, funded.root, funded.total) == (0, posted.tree.root, 3 * DIMO)
    assert token.balanceOf(token.subaccount(rewards, 0)) == 3 * DIMO
    assert token.isFundedSubaccount(token.subaccount(rewards, 0))
    with ape.reverts(rewards.RewardsEpochAlreadyFunded, epoch=0):
        rewards.fund(0, sender=stranger)
    supply = token.totalSupply()
    rewards.claim(*posted.claim_args(vehicle), sender=owner)
    assert token.totalSupply() == supply
    with ape.reverts(rewards.RewardsNotClaimable, epoch=5, claimableAt=0):
        rewards.fund(5, sender=stranger)


def test_the_cap_falls_15_percent_every_52_epochs_as_the_offchain_formula_says(
    rewards: Any,
) -> None:
    for epoch in (0, 51, 52, 103, 104, 156, 520):
        assert rewards.capOf(epoch) == epoch_cap(epoch)


def test_only_the_admin_sets_a_valid_issuance_schedule(
    rewards: Any, admin: Any, stranger: Any
) -> None:
    with ape.reverts(rewards.AccessControlUnauthorizedAccount):
        rewards.setIssuanceSchedule(DIMO, 1000, 4, sender=stranger)
    with ape.reverts(rewards.RewardsInvalidSchedule, initialCap=DIMO, decayBps=10_001):
        rewards.setIssuanceSchedule(DIMO, 10_001, 4, sender=admin)
    with ape.reverts(rewards.RewardsInvalidSchedule, decayEpochs=0):
        rewards.setIssuanceSchedule(DIMO, 1000, 0, sender=admin)
    tx = rewards.setIssuanceSchedule(1000 * DIMO, 1000, 4, sender=admin)
    assert tx.events.filter(rewards.IssuanceScheduleSet)[0].initialCap == 1000 * DIMO
    assert rewards.capOf(8) == epoch_cap(8, 1000 * DIMO, 1000, 4) == 810 * DIMO


def test_epochs_are_weeks_from_genesis(rewards: Any, chain: Any) -> None:
    genesis = rewards.genesis()
    assert rewards.epochBounds(3) == (genesis + 3 * 604_800, genesis + 4 * 604_800)
    assert rewards.epochAt(genesis + 604_800) == 1
    with ape.reverts(rewards.RewardsBeforeGenesis, timestamp=genesis - 1, genesis=genesis):
        rewards.epochAt(genesis - 1)


def test_the_contracts_root_digest_is_the_offchain_one(rewards: Any, chain: Any) -> None:
    domain = dimo_domain(chain.chain_id, rewards.address)
    root = b"\x07" * 32
    assert rewards.rootDigest(4, root, 9 * DIMO, DOC_CID) == root_digest(
        domain, 4, root, 9 * DIMO, DOC_CID
    )


def _cut(args: tuple[int, int, int, list[bytes]], depth: int) -> tuple[int, int, int, list[bytes]]:
    epoch, vehicle, amount, proof = args
    return epoch, vehicle, amount, claim_proof(proof, depth)


def test_a_cached_level_funds_the_epoch_and_lets_claims_prove_less(
    rewards: Any,
    token: Any,
    owner: Any,
    stranger: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    vehicles = [new_vehicle(owner) for _ in range(5)]
    posted = post_root(0, {v: (i + 1) * DIMO for i, v in enumerate(vehicles)})
    assert posted.tree.whole_depth == 2
    wait_delay(0)
    with ape.reverts(rewards.RewardsInvalidProof, epoch=0, vehicleId=vehicles[0]):
        rewards.claim(*_cut(posted.claim_args(vehicles[0]), 2), sender=owner)
    tx = rewards.cacheLevel(0, posted.tree.level(2), sender=stranger)  # anyone; it funds
    assert [(e.epoch, e.total) for e in tx.events.filter(rewards.EpochFunded)] == [(0, 15 * DIMO)]
    assert [(e.epoch, e.depth) for e in tx.events.filter(rewards.LevelCached)] == [(0, 2)]
    assert rewards.epochRoot(0).cachedDepth == 2
    before = token.balanceOf(owner)
    rewards.claim(*_cut(posted.claim_args(vehicles[0]), 2), sender=owner)
    rewards.claim(*posted.claim_args(vehicles[1]), sender=owner)  # a whole proof still pays
    rewards.claimMany([_cut(posted.claim_args(v), 2) for v in vehicles[2:4]], sender=owner)
    assert token.balanceOf(owner) == before + (1 + 2 + 3 + 4) * DIMO
    # A proof must stop at a stored node: depth 1 was never stored.
    with ape.reverts(rewards.RewardsInvalidProof, epoch=0, vehicleId=vehicles[4]):
        rewards.claim(*_cut(posted.claim_args(vehicles[4]), 1), sender=owner)
    epoch, vehicle, amount, proof = _cut(posted.claim_args(vehicles[4]), 2)
    with ape.reverts(rewards.RewardsInvalidProof, epoch=0, vehicleId=vehicle, amount=amount + 1):
        rewards.claim(epoch, vehicle, amount + 1, proof, sender=owner)
    rewards.claim(epoch, vehicle, amount, proof, sender=owner)
    assert token.balanceOf(token.subaccount(rewards, 0)) == 0


def test_only_a_whole_deeper_level_of_a_claimable_epoch_is_cached(
    rewards: Any,
    admin: Any,
    owner: Any,
    stranger: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
) -> None:
    vehicles = [new_vehicle(owner) for _ in range(9)]
    posted = post_root(0, {v: DIMO for v in vehicles})
    tree = posted.tree
    assert tree.whole_depth == 3
    with ape.reverts(rewards.RewardsNotClaimable, epoch=0):
        rewards.cacheLevel(0, tree.level(1), sender=stranger)  # the delay is not over
    wait_delay(0)
    other = post_root(1, {v: 2 * DIMO for v in vehicles}).tree
    for nodes in (
        tree.level(0),  # the root alone: not a level below it
        tree.level(2)[:3],  # not a power of two
        tree.level(2)[:2],  # a part of a level
        other.level(2),  # another epoch's tree
        [*tree.level(2)[:3], other.level(2)[3]],  # one node changed
    ):
        with ape.reverts(rewards.RewardsInvalidLevel, epoch=0, count=len(nodes)):
            rewards.cacheLevel(0, nodes, sender=stranger)
    assert not rewards.epochRoot(0).funded  # nothing above was kept
    rewards.cacheLevel(0, tree.level(1), sender=stranger)
    rewards.cacheLevel(0, tree.level(3), sender=stranger)  # deeper again
    assert rewards.epochRoot(0).cachedDepth == 3
    with ape.reverts(rewards.RewardsInvalidLevel, epoch=0, count=4):
        rewards.cacheLevel(0, tree.level(2), sender=stranger)  # shallower than the cache
    # Proofs may stop at either stored level, or at the root.
    for vehicle, depth in zip(vehicles[:3], (1, 3, 0), strict=True):
        rewards.claim(*_cut(posted.claim_args(vehicle), depth), sender=owner)
    # A vetoed epoch caches nothing.
    third = post_root(2, {vehicles[0]: DIMO, vehicles[1]: DIMO})
    rewards.veto(2, sender=admin)
    wait_delay(2)
    with ape.reverts(rewards.RewardsNotClaimable, epoch=2):
        rewards.cacheLevel(2, third.tree.level(1), sender=stranger)


# Issue 18: a veto is final for its root; an epoch never pays past its total.


def test_a_vetoed_root_cannot_be_reposted_with_its_own_signatures_and_the_correction_posts(
    rewards: Any,
    admin: Any,
    owner: Any,
    stranger: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
    root_signatures: Callable[..., bytes],
) -> None:
    vehicle = new_vehicle(owner)
    bad = post_root(0, {vehicle: 9 * DIMO})
    rewards.veto(0, sender=admin)
    assert rewards.isVetoed(0, bad.tree.root)
    # Anyone can copy the quorum's signatures from the chain; they no longer post the root.
    copied = root_signatures(0, bad.tree.root, bad.total)
    with ape.reverts(rewards.RewardsRootVetoed, epoch=0, root=bad.tree.root):
        rewards.post(0, bad.tree.root, bad.total, DOC_CID, copied, sender=stranger)
    corrected = post_root(0, {vehicle: 2 * DIMO})
    assert rewards.epochRoot(0).root == corrected.tree.root
    assert not rewards.epochRoot(0).vetoed


def test_claims_past_an_epochs_posted_total_revert_and_leave_other_epochs_tokens(
    rewards: Any,
    token: Any,
    owner: Any,
    new_vehicle: Callable[[Any], int],
    end_epoch: Callable[[int], None],
    root_signatures: Callable[..., bytes],
    post_root: Callable[..., Posted],
    wait_delay: Callable[[int], None],
    admin: Any,
) -> None:
    a, b = new_vehicle(owner), new_vehicle(owner)
    honest = post_root(0, {a: 50 * DIMO, b: 50 * DIMO})
    wait_delay(0)
    rewards.fund(0, sender=owner)  # epoch 0's 100 DIMO sit in its sub-account
    # A quorum-signed root whose leaves add up to 120 DIMO but whose total says 100.
    end_epoch(1)
    tree = allocation_tree(1, {a: 60 * DIMO, b: 60 * DIMO})
    sigs = root_signatures(1, tree.root, 100 * DIMO)
    rewards.post(1, tree.root, 100 * DIMO, DOC_CID, sigs, sender=admin)
    wait_delay(1)
    bad = Posted(1, tree, 100 * DIMO, None)
    rewards.claim(*bad.claim_args(a), sender=owner)
    assert rewards.epochRoot(1).paid == 60 * DIMO
    # Epoch 1's sub-account holds its 100 DIMO, no more: the second 60 cannot be paid.
    one = token.subaccount(rewards, 1)
    with ape.reverts(
        token.ERC20InsufficientBalance, sender=one, balance=40 * DIMO, needed=60 * DIMO
    ):
        rewards.claim(*bad.claim_args(b), sender=owner)
    assert not rewards.isClaimed(1, b)
    # Epoch 0's tokens are still there for epoch 0's vehicles.
    assert token.balanceOf(token.subaccount(rewards, 0)) == 100 * DIMO
    assert token.balanceOf(one) == 40 * DIMO
    rewards.claim(*honest.claim_args(a), sender=owner)
    rewards.claim(*honest.claim_args(b), sender=owner)
    assert rewards.epochRoot(0).paid == rewards.epochRoot(0).total == 100 * DIMO


def test_the_challenge_delay_parameter_is_held_between_a_minute_and_thirty_days(
    parameters: Any, rewards: Any, admin: Any
) -> None:
    key = parameters.REWARDS_CHALLENGE_DELAY()
    assert (rewards.MIN_CHALLENGE_DELAY(), rewards.MAX_CHALLENGE_DELAY()) == (60, 30 * 86_400)
    with ape.reverts(parameters.ParametersValueBelowMinimum, key=key, value=0, min=60):
        parameters.setUint(key, 0, sender=admin)
    with ape.reverts(parameters.ParametersValueOutOfRange, key=key, value=2**64, max=30 * 86_400):
        parameters.setUint(key, 2**64, sender=admin)
    parameters.setUint(key, 30 * 86_400, sender=admin)
    assert parameters.uintOf(key) == 30 * 86_400


def test_a_root_posted_under_the_longest_delay_can_still_be_vetoed_then_claimed(
    rewards: Any,
    parameters: Any,
    admin: Any,
    owner: Any,
    chain: Any,
    new_vehicle: Callable[[Any], int],
    post_root: Callable[..., Posted],
) -> None:
    parameters.setUint(parameters.REWARDS_CHALLENGE_DELAY(), 30 * 86_400, sender=admin)
    posted = post_root(0, {new_vehicle(owner): DIMO})
    now = chain.blocks[-1].timestamp
    assert rewards.epochRoot(0).claimableAt == now + 30 * 86_400
    chain.mine(timestamp=now + 30 * 86_400 - 10)
    rewards.veto(0, sender=admin)
    assert rewards.isVetoed(0, posted.tree.root)
