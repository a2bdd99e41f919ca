"""`/apps/...` shared parts: the input-bundle proofs an auditor checks, and the helpers each
application route uses (vehicle facts, rights per signal, the served envelope).

Every application answer is an envelope: the app, the vehicle, the window, the `context`
(chain facts and parameters the pure function took), the times `covered` per signal, the
signals `withheld`, the `inputs` (batch id, leaf index of every bundle whose readings were
used) and the `result`. `dimo apps <app> --audit` fetches the proofs of `inputs` here,
verifies them against the chain, and recomputes `result` from `context` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from apps.audit import PROOFS_PATH, PROOFS_PER_REQUEST
from apps.battery import VehicleFacts
from indexer import schema as s
from indexer.api.deps import Caller, Clock, DbConn
from indexer.api.problems import problem_responses
from indexer.api.routes.telemetry import (
    BatchOut,
    WithheldOut,
    _compose,
    get_rights_cache,
)
from indexer.apps.inputs import bundle_rows
from indexer.disclosure import bundle_signals, disclosable, require_whole
from indexer.exceptions import (
    BadTelemetryQuery,
    BundleNotServed,
    PrivilegeMissing,
    VehicleNotFound,
)
from indexer.queries import bundle_proof
from indexer.rights import Coverage, Intervals

router = APIRouter(prefix="/apps", tags=["apps"])

_RESPONSES: Final = problem_responses(400, 401, 403, 404)
#: A batch id or leaf index: the index stores them in 64-bit signed integer columns.
_Int64 = Annotated[int, Field(ge=0, le=(1 << 63) - 1)]


class ProofsIn(BaseModel):
    """The input bundles whose proofs are wanted."""

    vehicle_id: int = Field(ge=0, le=(1 << 63) - 1, description="The vehicle")
    inputs: list[tuple[_Int64, _Int64]] = Field(
        min_length=1,
        max_length=PROOFS_PER_REQUEST,
        description="(batch id, leaf index) pairs, as an application result lists them",
    )


class BundleProofOut(BaseModel):
    """A bundle with what checks it: device signature, Merkle path, anchored batch."""

    batch_id: int = Field(description="The anchored batch")
    leaf_index: int = Field(description="The bundle's index in the batch")
    bundle_wire: str = Field(description="The signed bundle's wire form (CBOR), 0x hex")
    signature: str = Field(description="The device's EIP-712 signature, 0x hex")
    proof: list[str] = Field(description="Merkle path from the bundle's leaf to the root")
    batch: BatchOut = Field(description="The anchored batch")


class ProofsOut(BaseModel):
    """Proofs of input bundles, in request order."""

    vehicle_id: int = Field(description="The vehicle")
    bundles: list[BundleProofOut] = Field(description="One per requested input")


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


@router.post(
    PROOFS_PATH.removeprefix("/apps"),
    response_model=ProofsOut,
    summary="Proofs of the bundles an application result used",
    responses=_RESPONSES,
)
def post_input_proofs(
    body: ProofsIn, request: Request, caller: Caller, conn: DbConn, clock: Clock
) -> ProofsOut:
    """Each bundle's wire form, signature, Merkle path and batch, for an audit.

    Rights come first: a caller whose rights cover nothing of the vehicle gets a 403
    `privilege-missing` problem before any pair is looked up, the same whatever pairs it
    sent. For any other caller each pair must be a loaded bundle of the vehicle holding a
    reading its rights cover; an unknown pair, another vehicle's bundle, or one of which it
    may read nothing all get the same 404 `bundle-not-found` problem. A schema-1 proof
    discloses the whole bundle, so a bundle also holding a reading the caller may not read
    (its signal's privilege at its time) gets a 403 `bundle-not-disclosable` problem naming
    those signals (`indexer.disclosure`).
    """
    coverage = get_rights_cache(request).coverage(
        conn, body.vehicle_id, caller, int(clock() * 1000)
    )
    if not coverage.any():
        raise PrivilegeMissing(body.vehicle_id, {"ANY": ["any signal of the vehicle"]})
    refs = [(int(b), int(leaf)) for b, leaf in body.inputs]
    rows = bundle_rows(conn, refs)
    for ref in refs:
        row = rows.get(ref)
        if row is None or int(row.vehicle_id) != body.vehicle_id:
            raise BundleNotServed(body.vehicle_id, *ref)
        disclosure = disclosable(bundle_signals(bytes(row.wire)), coverage)
        if not disclosure.any_readable:
            raise BundleNotServed(body.vehicle_id, *ref)
        require_whole(disclosure, body.vehicle_id, *ref)
    out = []
    for ref in refs:
        b = bundle_proof(conn, *ref)
        out.append(
            BundleProofOut(
                batch_id=b.batch_id,
                leaf_index=b.leaf_index,
                bundle_wire=_hex(b.wire),
                signature=_hex(b.signature),
                proof=[_hex(p) for p in b.proof],
                batch=BatchOut(
                    id=b.batch_id,
                    root=_hex(b.root),
                    cid=b.cid,
                    tx_hash=b.tx_hash,
                    block_number=b.block_number,
                ),
            )
        )
    return ProofsOut(vehicle_id=body.vehicle_id, bundles=out)


# -------------------------------------------------------------------------------------------
# helpers of the application routes
# -------------------------------------------------------------------------------------------


def vehicle_facts(conn: Connection, vehicle_id: int) -> tuple[VehicleFacts, int]:
    """The vehicle's make, model and year, and its mint time (unix ms), from the index.

    Raises:
        VehicleNotFound: no such vehicle is indexed.
    """
    row = conn.execute(
        select(s.models.c.make, s.models.c.model, s.vehicles.c.year, s.vehicles.c.minted_at)
        .join(s.models, s.models.c.id == s.vehicles.c.model_id)
        .where(s.vehicles.c.id == vehicle_id)
    ).first()
    if row is None:
        raise VehicleNotFound(vehicle_id)
    return VehicleFacts(str(row.make), str(row.model), int(row.year)), int(row.minted_at) * 1000


def check_window(start: int, end: int) -> None:
    """Raises the 400 problem for an empty window."""
    if end <= start:
        raise BadTelemetryQuery("start/end", f"[{start}, {end}) is empty; end must be after start")


def rights_for(
    coverage: Coverage,
    required: Sequence[str],
    optional: Sequence[str],
    start: int,
    end: int,
) -> tuple[dict[str, Intervals], list[WithheldOut]]:
    """Per signal, the times the caller may use; the optional signals it may not, withheld.

    Raises:
        PrivilegeMissing: the required signals are not all covered at a common time (403).
    """
    _, within, withheld = _compose(coverage, required, optional, start, end)
    return within, withheld


def envelope(
    app: str,
    vehicle_id: int,
    start: int,
    end: int,
    context: dict[str, Any],
    within: dict[str, Intervals],
    withheld: Sequence[WithheldOut],
    inputs: list[tuple[int, int]],
    result: dict[str, Any],
) -> dict[str, Any]:
    """The served answer of an application (see the module docstring)."""
    return {
        "app": app,
        "vehicle_id": vehicle_id,
        "start": start,
        "end": end,
        "context": context,
        "covered": {name: [list(span) for span in spans] for name, spans in within.items()},
        "withheld": [w.model_dump() for w in withheld],
        "inputs": [list(ref) for ref in inputs],
        "result": result,
    }


__all__ = [
    "check_window",
    "envelope",
    "post_input_proofs",
    "rights_for",
    "router",
    "vehicle_facts",
]
