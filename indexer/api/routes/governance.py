"""Governance and token: proposals and their votes, governed parameters, DIMO rewards issued.

Public chain data, open to anonymous callers; lists are keyset paginated in chain order.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query
from sqlalchemy import Connection, Row, select

from indexer import schema as s
from indexer.api.deps import Clock, DbConn
from indexer.api.models import (
    ADDRESS_PATTERN,
    UINT256_PATTERN,
    ActionOut,
    ParameterOut,
    ProposalOut,
    RewardOut,
    VoteOut,
    checksum,
)
from indexer.api.pagination import Keyset, Page, Paging
from indexer.api.problems import problem_responses
from indexer.exceptions import ProposalNotFound
from protocol.crypto import keccak256

ZERO: Final = "0x" + "00" * 20
#: Names of the well-known parameter keys (contracts/interfaces/IParameters.sol ParameterKeys).
PARAMETER_NAMES: Final = (
    "FEATURE_COMMANDS_SCOPE",
    "FEATURE_GRID_PROGRAMMES",
    "FEATURE_NEW_PRODUCT_CATEGORY",
    "PROTOCOL_FEE_BPS",
    "REWARDS_CHALLENGE_DELAY",
    "ORACLE_THRESHOLD",
)
_NAME_OF_KEY: Final = {"0x" + keccak256(n.encode()).hex(): n for n in PARAMETER_NAMES}
_CHOICES: Final = {0: "against", 1: "for", 2: "abstain"}

ProposalId = Annotated[
    str, Path(pattern=UINT256_PATTERN, description="Proposal id (uint256), decimal")
]

pr, vo, pa, tt = s.proposals, s.votes, s.parameters, s.token_transfers

proposals = APIRouter(prefix="/proposals", tags=["governance"])
parameters = APIRouter(prefix="/parameters", tags=["governance"])
rewards = APIRouter(prefix="/rewards", tags=["token"])

PROPOSALS = Keyset("proposals", pr.c.block_number, pr.c.log_index)
VOTES = Keyset("proposal-votes", vo.c.block_number, vo.c.log_index)
PARAMETERS = Keyset("parameters", pa.c.key)
REWARDS = Keyset("rewards", tt.c.block_number, tt.c.log_index)


def _phase(status: str, vote_start: int, vote_end: int, now: int) -> str:
    """Where a proposal stands by time (OpenZeppelin Governor: pending through the snapshot,
    active through the deadline); the outcome needs the quorum, which the chain decides."""
    if status != "created":
        return status
    if now <= vote_start:
        return "pending"
    return "active" if now <= vote_end else "ended"


def _proposal_out(row: Row[Any], now: int) -> ProposalOut:
    return ProposalOut(
        id=str(row.id),
        proposer=checksum(row.proposer),
        description=row.description,
        actions=[
            ActionOut(target=checksum(a["target"]), value=str(a["value"]), calldata=a["calldata"])
            for a in json.loads(row.actions)
        ],
        vote_start=row.vote_start,
        vote_end=row.vote_end,
        status=row.status,
        phase=_phase(row.status, row.vote_start, row.vote_end, now),
        eta=row.eta,
        votes_for=str(row.votes_for),
        votes_against=str(row.votes_against),
        votes_abstain=str(row.votes_abstain),
        created_at=row.created_at,
        block_number=row.block_number,
        tx_hash=row.tx_hash,
    )


def _proposal_row(conn: Connection, proposal_id: str) -> Row[Any]:
    ident = int(proposal_id)
    row = None
    if ident < 1 << 256:
        row = conn.execute(select(pr).where(pr.c.id == ident)).first()
    if row is None:
        raise ProposalNotFound(proposal_id)
    return row


@proposals.get(
    "",
    response_model=Page[ProposalOut],
    summary="List proposals",
    responses=problem_responses(400),
)
def list_proposals(
    conn: DbConn,
    paging: Paging,
    clock: Clock,
    status: Annotated[
        str | None,
        Query(
            pattern=r"^(created|queued|executed|canceled)$",
            description="Last lifecycle event: created, queued, executed or canceled",
        ),
    ] = None,
) -> Page[ProposalOut]:
    """Proposals in the order they were made, with their tallies."""
    now = int(clock())
    query = select(pr)
    if status is not None:
        query = query.where(pr.c.status == status)
    rows = conn.execute(PROPOSALS.apply(query, paging)).all()
    return PROPOSALS.page(rows, paging, lambda r: _proposal_out(r, now))


@proposals.get(
    "/{proposal_id}",
    response_model=ProposalOut,
    summary="One proposal",
    responses=problem_responses(404),
)
def get_proposal(conn: DbConn, clock: Clock, proposal_id: ProposalId) -> ProposalOut:
    """The proposal: actions, voting window, status and tally."""
    return _proposal_out(_proposal_row(conn, proposal_id), int(clock()))


@proposals.get(
    "/{proposal_id}/votes",
    response_model=Page[VoteOut],
    summary="A proposal's votes",
    responses=problem_responses(400, 404),
)
def proposal_votes(conn: DbConn, paging: Paging, proposal_id: ProposalId) -> Page[VoteOut]:
    """Every vote cast on the proposal, in the order cast."""
    proposal = _proposal_row(conn, proposal_id)
    query = select(vo).where(vo.c.proposal_id == proposal.id)
    rows = conn.execute(VOTES.apply(query, paging)).all()
    return VOTES.page(
        rows,
        paging,
        lambda r: VoteOut(
            proposal_id=str(r.proposal_id),
            voter=checksum(r.voter),
            support=r.support,
            choice=_CHOICES.get(r.support, str(r.support)),
            weight=str(r.weight),
            reason=r.reason,
            cast_at=r.cast_at,
            block_number=r.block_number,
            tx_hash=r.tx_hash,
        ),
    )


@parameters.get(
    "",
    response_model=Page[ParameterOut],
    summary="List governed parameters",
    responses=problem_responses(400),
)
def list_parameters(conn: DbConn, paging: Paging) -> Page[ParameterOut]:
    """Every flag and number governance has set, by key, with its well-known name."""
    rows = conn.execute(PARAMETERS.apply(select(pa), paging)).all()
    return PARAMETERS.page(
        rows,
        paging,
        lambda r: ParameterOut(
            key=r.key,
            name=_NAME_OF_KEY.get(r.key),
            kind=r.kind,
            value=str(r.value),
            set_at=r.set_at,
            block_number=r.block_number,
            tx_hash=r.tx_hash,
        ),
    )


@rewards.get(
    "",
    response_model=Page[RewardOut],
    summary="List DIMO issued",
    responses=problem_responses(400),
)
def list_rewards(
    conn: DbConn,
    paging: Paging,
    recipient: Annotated[
        str | None,
        Query(pattern=ADDRESS_PATTERN, description="Who received it, 0x hex address, any case"),
    ] = None,
) -> Page[RewardOut]:
    """DIMO minted, in chain order. Only the rewards contract holds the minter role on a live
    network, so every mint there is a reward paid out."""
    query = select(tt).where(tt.c.sender == ZERO)
    if recipient is not None:
        query = query.where(tt.c.recipient == recipient.lower())
    rows = conn.execute(REWARDS.apply(query, paging)).all()
    return REWARDS.page(
        rows,
        paging,
        lambda r: RewardOut(
            recipient=checksum(r.recipient),
            amount=str(r.amount),
            issued_at=r.transferred_at,
            block_number=r.block_number,
            tx_hash=r.tx_hash,
            log_index=r.log_index,
        ),
    )


#: Every governance and token route, for `app.include_router`.
router = APIRouter()
for _sub in (proposals, parameters, rewards):
    router.include_router(_sub)
