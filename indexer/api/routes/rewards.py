"""Rewards: posted epochs and each vehicle's allocation with its Merkle proof and point inputs.

Public data (the allocation documents are public by CID and the roots are on-chain), open to
anonymous callers. What a vehicle is served is what `Rewards.claim` takes: the epoch, the
vehicle, the amount and the proof; plus the inputs its points came from, so the owner can
check them against the formula (`protocol.rewards`, `dimo rewards verify`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Row, select

from indexer import schema as s
from indexer.api.allocations import AllocationOut
from indexer.api.allocations import allocation_out as _allocation_out
from indexer.api.allocations import allocation_query as _allocation_query
from indexer.api.allocations import claims_open as _open
from indexer.api.deps import Clock, DbConn
from indexer.api.pagination import Keyset, Page, Paging
from indexer.api.problems import problem_responses
from indexer.exceptions import RewardNotFound
from indexer.reward_docs import reward_allocations, reward_documents

ep, cl, doc, al = s.reward_epochs, s.reward_claims, reward_documents, reward_allocations

router = APIRouter(tags=["rewards"])

EPOCHS = Keyset("reward-epochs", ep.c.epoch)
VEHICLE_REWARDS = Keyset("vehicle-rewards", al.c.epoch)

EpochPath = Annotated[int, Path(ge=0, le=2**63 - 1, description="Rewards epoch")]
VehiclePath = Annotated[int, Path(ge=1, le=2**63 - 1, description="Vehicle token id")]


class EpochOut(BaseModel):
    """An epoch whose allocation root the oracle quorum posted."""

    epoch: int = Field(description="Weekly epoch number")
    root: str = Field(description="Allocation Merkle root, 0x hex")
    total: str = Field(description="DIMO wei allocated, decimal")
    cid: str = Field(description="Allocation document CID")
    claimable_at: int = Field(description="Claims open, unix seconds")
    status: str = Field(description="posted | vetoed (a vetoed root pays nothing)")
    funded: bool = Field(description="The total was minted into the Rewards contract")
    cached_depth: int = Field(
        description="Depth of the tree level stored on-chain: claims' proofs stop there "
        "(0: at the root)"
    )
    claimable: bool = Field(description="Posted, not vetoed, and past the challenge delay")
    document: str | None = Field(description="loaded | rejected | pending; null if not seen")
    document_reason: str | None = Field(description="Why the document is rejected or pending")
    vehicles: int = Field(description="Vehicles with an entry in the document")
    points_version: str | None = Field(description="Version of the points formula used")
    posted_at: int = Field(description="Post time, unix seconds")
    tx_hash: str = Field(description="Transaction of the post")


def _epoch_query() -> Any:
    return select(
        ep,
        doc.c.status.label("doc_status"),
        doc.c.reason.label("doc_reason"),
        doc.c.vehicles,
        doc.c.points_version,
    ).outerjoin(doc, (doc.c.epoch == ep.c.epoch) & (doc.c.tx_hash == ep.c.tx_hash))


def _epoch_out(row: Row[Any], now: int) -> EpochOut:
    return EpochOut(
        epoch=row.epoch,
        root=row.root,
        total=str(row.total),
        cid=row.cid,
        claimable_at=row.claimable_at,
        status=row.status,
        funded=row.funded,
        cached_depth=row.cached_depth,
        claimable=_open(row, now),
        document=row.doc_status,
        document_reason=row.doc_reason,
        vehicles=row.vehicles or 0,
        points_version=row.points_version,
        posted_at=row.posted_at,
        tx_hash=row.tx_hash,
    )


@router.get(
    "/rewards/epochs",
    response_model=Page[EpochOut],
    summary="List posted rewards epochs",
    responses=problem_responses(400),
)
def list_epochs(conn: DbConn, paging: Paging, clock: Clock) -> Page[EpochOut]:
    """Every epoch with a posted root, oldest first, with its document's state."""
    now = int(clock())
    rows = conn.execute(EPOCHS.apply(_epoch_query(), paging)).all()
    return EPOCHS.page(rows, paging, lambda r: _epoch_out(r, now))


@router.get(
    "/rewards/epochs/{epoch}",
    response_model=EpochOut,
    summary="One rewards epoch",
    responses=problem_responses(404),
)
def get_epoch(conn: DbConn, epoch: EpochPath, clock: Clock) -> EpochOut:
    """The epoch's posted root, total, document and claim window."""
    row = conn.execute(_epoch_query().where(ep.c.epoch == epoch)).first()
    if row is None:
        raise RewardNotFound(epoch, None)
    return _epoch_out(row, int(clock()))


@router.get(
    "/rewards/epochs/{epoch}/vehicles/{vehicle_id}",
    response_model=AllocationOut,
    summary="A vehicle's allocation in an epoch, with its proof",
    responses=problem_responses(404),
)
def get_allocation(
    conn: DbConn, epoch: EpochPath, vehicle_id: VehiclePath, clock: Clock
) -> AllocationOut:
    """What `Rewards.claim(epoch, vehicleId, amount, proof)` takes, and the point inputs."""
    row = _one_allocation(conn, epoch, vehicle_id)
    return _allocation_out(row, int(clock()))


def _one_allocation(conn: Connection, epoch: int, vehicle_id: int) -> Row[Any]:
    row = conn.execute(
        _allocation_query().where(al.c.epoch == epoch, al.c.vehicle_id == vehicle_id)
    ).first()
    if row is None:
        raise RewardNotFound(epoch, vehicle_id)
    return row


@router.get(
    "/vehicles/{vehicle_id}/rewards",
    response_model=Page[AllocationOut],
    summary="A vehicle's rewards, epoch by epoch, with proofs",
    responses=problem_responses(400),
)
def list_vehicle_rewards(
    conn: DbConn, vehicle_id: VehiclePath, paging: Paging, clock: Clock
) -> Page[AllocationOut]:
    """The vehicle's entry in each loaded allocation document, oldest epoch first."""
    now = int(clock())
    query = _allocation_query().where(al.c.vehicle_id == vehicle_id)
    rows = conn.execute(VEHICLE_REWARDS.apply(query, paging)).all()
    return VEHICLE_REWARDS.page(rows, paging, lambda r: _allocation_out(r, now))
