"""Governance: DimoGovernor over DimoToken votes, executing through the timelock."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from eth_account import Account
from eth_utils import keccak

from tests.conftest import BALLOT_TYPES, private_key

FOR = 1
NEW_FEE_BPS = 500
DESCRIPTION = "Enable grid programmes and set the protocol fee to 5%"
PENDING, ACTIVE, SUCCEEDED, QUEUED, EXECUTED = 0, 1, 4, 5, 7


@pytest.fixture
def voters(token: Any, admin: Any, owner: Any, other_owner: Any) -> tuple[Any, Any]:
    """Two holders who delegated their votes to themselves."""
    token.mint(owner, 3_000_000 * 10**18, sender=admin)
    token.mint(other_owner, 1_000_000 * 10**18, sender=admin)
    token.invoke_transaction("delegate", owner, sender=owner)
    token.invoke_transaction("delegate", other_owner, sender=other_owner)
    return owner, other_owner


def _proposal(parameters: Any) -> tuple[list[str], list[int], list[bytes]]:
    targets = [parameters.address, parameters.address]
    calldatas = [
        parameters.setFlag.encode_input(parameters.FEATURE_GRID_PROGRAMMES(), True),
        parameters.setUint.encode_input(parameters.PROTOCOL_FEE_BPS(), NEW_FEE_BPS),
    ]
    return targets, [0, 0], calldatas


def _ballot_signature(governor: Any, chain: Any, voter: Any, proposal_id: int) -> bytes:
    domain = {
        "name": governor.name(),
        "version": governor.version(),
        "chainId": chain.chain_id,
        "verifyingContract": governor.address,
    }
    message = {
        "proposalId": proposal_id,
        "support": FOR,
        "voter": voter.address,
        "nonce": governor.nonces(voter),
    }
    signed = Account.sign_typed_data(private_key(voter), domain, {"Ballot": BALLOT_TYPES}, message)
    return bytes(signed.signature)


def test_governance_settings_are_the_documented_local_ones(governor: Any, timelock: Any) -> None:
    assert governor.settings() == (60, 600, 0, 4)
    assert governor.CLOCK_MODE() == "mode=timestamp"
    assert timelock.getMinDelay() == 60
    assert governor.timelock() == timelock.address


def test_the_timelock_holds_every_admin_role(platform: Any, timelock: Any, governor: Any) -> None:
    for name in (
        "ManufacturerRegistry",
        "DimoToken",
        "VehicleId",
        "AttestationAnchor",
        "Parameters",
        "DataMarket",
    ):
        contract = platform[name]
        assert contract.hasRole(contract.DEFAULT_ADMIN_ROLE(), timelock), name
    registry = platform["ManufacturerRegistry"]
    assert registry.hasRole(registry.REGISTRAR_ROLE(), timelock)
    assert timelock.hasRole(timelock.PROPOSER_ROLE(), governor)
    assert timelock.hasRole(timelock.CANCELLER_ROLE(), governor)
    assert timelock.hasRole(timelock.EXECUTOR_ROLE(), "0x" + "0" * 40)


def test_a_full_round_enables_a_feature_and_changes_the_fee(
    governor: Any,
    timelock: Any,
    parameters: Any,
    voters: tuple[Any, Any],
    stranger: Any,
    chain: Any,
) -> None:
    proposer, signer = voters
    targets, values, calldatas = _proposal(parameters)
    tx = governor.propose(targets, values, calldatas, DESCRIPTION, sender=proposer)
    proposal_id = tx.events.filter(governor.ProposalCreated)[0].proposalId
    assert governor.state(proposal_id) == PENDING

    chain.mine(timestamp=governor.proposalSnapshot(proposal_id) + 1)
    assert governor.state(proposal_id) == ACTIVE
    governor.castVote(proposal_id, FOR, sender=proposer)
    # The second holder votes gaslessly: a stranger relays their signed ballot.
    signature = _ballot_signature(governor, chain, signer, proposal_id)
    tx = governor.castVoteBySig(proposal_id, FOR, signer, signature, sender=stranger)
    assert tx.events.filter(governor.VoteCast)[0].voter == signer.address
    assert governor.hasVoted(proposal_id, signer) is True
    against, for_votes, abstain = governor.proposalVotes(proposal_id)
    assert (against, for_votes, abstain) == (0, 4_000_000 * 10**18, 0)

    chain.mine(timestamp=governor.proposalDeadline(proposal_id) + 1)
    assert governor.state(proposal_id) == SUCCEEDED
    description_hash = keccak(DESCRIPTION.encode())
    governor.queue(targets, values, calldatas, description_hash, sender=stranger)
    assert governor.state(proposal_id) == QUEUED
    assert parameters.flag(parameters.FEATURE_GRID_PROGRAMMES()) is False

    chain.mine(timestamp=governor.proposalEta(proposal_id) + 1)
    governor.execute(targets, values, calldatas, description_hash, sender=stranger)
    assert governor.state(proposal_id) == EXECUTED
    assert parameters.flag(parameters.FEATURE_GRID_PROGRAMMES()) is True
    assert parameters.uintOf(parameters.PROTOCOL_FEE_BPS()) == NEW_FEE_BPS


def test_executing_before_the_timelock_delay_reverts(
    governor: Any, timelock: Any, parameters: Any, voters: tuple[Any, Any], chain: Any
) -> None:
    proposer, _ = voters
    targets, values, calldatas = _proposal(parameters)
    tx = governor.propose(targets, values, calldatas, DESCRIPTION, sender=proposer)
    proposal_id = tx.events.filter(governor.ProposalCreated)[0].proposalId
    chain.mine(timestamp=governor.proposalSnapshot(proposal_id) + 1)
    governor.castVote(proposal_id, FOR, sender=proposer)
    chain.mine(timestamp=governor.proposalDeadline(proposal_id) + 1)
    description_hash = keccak(DESCRIPTION.encode())
    governor.queue(targets, values, calldatas, description_hash, sender=proposer)
    with ape.reverts(timelock.TimelockUnexpectedOperationState):
        governor.execute(targets, values, calldatas, description_hash, sender=proposer)


def test_anyone_else_changing_parameters_or_scheduling_reverts(
    parameters: Any, timelock: Any, stranger: Any
) -> None:
    with ape.reverts(parameters.AccessControlUnauthorizedAccount, account=stranger.address):
        parameters.setFlag(parameters.FEATURE_GRID_PROGRAMMES(), True, sender=stranger)
    call = parameters.setUint.encode_input(parameters.PROTOCOL_FEE_BPS(), NEW_FEE_BPS)
    with ape.reverts(
        timelock.AccessControlUnauthorizedAccount,
        account=stranger.address,
        neededRole=timelock.PROPOSER_ROLE(),
    ):
        timelock.schedule(parameters, 0, call, b"\x00" * 32, b"\x00" * 32, 60, sender=stranger)


def test_a_ballot_signed_by_someone_else_reverts(
    governor: Any, parameters: Any, voters: tuple[Any, Any], stranger: Any, chain: Any
) -> None:
    proposer, signer = voters
    targets, values, calldatas = _proposal(parameters)
    tx = governor.propose(targets, values, calldatas, DESCRIPTION, sender=proposer)
    proposal_id = tx.events.filter(governor.ProposalCreated)[0].proposalId
    chain.mine(timestamp=governor.proposalSnapshot(proposal_id) + 1)
    signature = _ballot_signature(governor, chain, stranger, proposal_id)
    with ape.reverts(governor.GovernorInvalidSignature, voter=signer.address):
        governor.castVoteBySig(proposal_id, FOR, signer, signature, sender=stranger)
