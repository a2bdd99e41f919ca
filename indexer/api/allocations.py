"""Rewards allocations as the API serves them: one vehicle's entry in a loaded allocation
document with its claim proof, and the query that reads it (the rewards routes and the owner
overview share them)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Row, select

from indexer import schema as s
from indexer.api.models import checksum
from indexer.reward_docs import LOADED, reward_allocations, reward_documents
from protocol.rewards import claim_proof

__all__ = ["AllocationOut", "allocation_out", "allocation_query", "claims_open"]

ep, cl, doc, al = s.reward_epochs, s.reward_claims, reward_documents, reward_allocations


class AllocationOut(BaseModel):
    """One vehicle's allocation in one epoch: the arguments of `Rewards.claim` and why."""

    epoch: int = Field(description="Rewards epoch")
    vehicle_id: int = Field(description="The vehicle")
    amount: str = Field(description="DIMO wei, decimal")
    points: int = Field(description="Points earned in the epoch")
    proof: list[str] = Field(description="Merkle proof of (epoch, vehicleId, amount), 0x hex")
    claim_proof: list[str] = Field(
        description="The proof `Rewards.claim` needs now: `proof` without the last "
        "`cached_depth` elements, which the contract holds"
    )
    inputs: dict[str, Any] = Field(description="The inputs of the points (hours, signals, streak)")
    root: str = Field(description="The posted root the proof leads to")
    claimed: bool = Field(description="Already paid")
    claimed_by: str | None = Field(description="Owner paid, EIP-55; null until claimed")
    claim_tx: str | None = Field(description="Transaction of the claim")
    claimable: bool = Field(description="Can be claimed now (posted, delay over, not claimed)")


def claims_open(row: Row[Any], now: int) -> bool:
    return bool(row.status == "posted" and now >= row.claimable_at)


def allocation_query() -> Any:
    return (
        select(
            al,
            ep.c.root,
            ep.c.status,
            ep.c.claimable_at,
            ep.c.cached_depth,
            cl.c.owner.label("claimed_by"),
            cl.c.tx_hash.label("claim_tx"),
        )
        .join(ep, ep.c.epoch == al.c.epoch)
        .join(
            doc,
            (doc.c.epoch == al.c.epoch)
            & (doc.c.tx_hash == ep.c.tx_hash)
            & (doc.c.status == LOADED),
        )
        .outerjoin(cl, (cl.c.epoch == al.c.epoch) & (cl.c.vehicle_id == al.c.vehicle_id))
    )


def allocation_out(row: Row[Any], now: int) -> AllocationOut:
    claimed = row.claimed_by is not None
    proof = json.loads(row.proof)
    return AllocationOut(
        epoch=row.epoch,
        vehicle_id=row.vehicle_id,
        amount=str(row.amount),
        points=row.points,
        proof=proof,
        claim_proof=claim_proof(proof, row.cached_depth),
        inputs=json.loads(row.inputs),
        root=row.root,
        claimed=claimed,
        claimed_by=checksum(row.claimed_by) if claimed else None,
        claim_tx=row.claim_tx,
        claimable=claims_open(row, now) and not claimed and int(row.amount) > 0,
    )
