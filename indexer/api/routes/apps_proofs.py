"""`/apps/proofs...`: the input-bundle proofs an auditor checks, and signal checks.

Every application answer is an envelope: the app, the vehicle, the window, the `context`
(chain facts and parameters the pure function took), the times `covered` per signal, the
signals `withheld`, the `inputs` (batch id, leaf index of every bundle whose readings were
used) and the `result`. `dimo apps <app> --audit` fetches the proofs of `inputs` here,
verifies them against the chain, and recomputes `result` from `context` alone
(`indexer.api.models.envelope` builds the envelope).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from apps.audit import PROOFS_PATH, PROOFS_PER_REQUEST
from indexer.api.deps import BearerDep, Caller, Clock, DbConn, coverage_for, get_rights_cache
from indexer.api.models import (
    BatchOut,
    CommitmentOut,
    LeafOut,
    SignalOpeningOut,
    leaf_out,
    openings_out,
)
from indexer.api.problems import problem_responses
from indexer.apps.inputs import bundle_rows
from indexer.disclosure import Served, decide
from indexer.exceptions import (
    BatchNotFound,
    BundleNotServed,
    OpeningInvalid,
    PrivilegeMissing,
)
from indexer.queries import bundle_proof
from indexer.telemetry import STATUS_LOADED, batches
from protocol.bundle import BUNDLE_LEAF_ENCODING, BundleError
from protocol.crypto import checksum_address
from protocol.disclosure import SignalOpening
from protocol.merkle import MerkleError, verify_proof

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
    """A bundle with what checks it: device signature, Merkle path, anchored batch.

    Schema 1: the whole signed bundle (`bundle_wire`). Schema 2: the leaf, every signal's
    commitment and the `openings` of the signals the caller may read (each checks with
    `AttestationAnchor.verifySignal`); `bundle_wire` only to a caller covering every signal.
    """

    batch_id: int = Field(description="The anchored batch")
    leaf_index: int = Field(description="The bundle's index in the batch")
    schema_version: int = Field(description="The bundle's schema: 1 (whole) or 2 (per signal)")
    bundle_wire: str | None = Field(
        description="The signed bundle's wire form (CBOR), 0x hex; null for a schema-2 bundle "
        "holding a signal you may not read"
    )
    signature: str = Field(description="The device's EIP-712 signature, 0x hex")
    proof: list[str] = Field(description="Merkle path from the bundle's leaf to the root")
    batch: BatchOut = Field(description="The anchored batch")
    leaf: LeafOut = Field(description="The bundle's Merkle leaf")
    commitments: list[CommitmentOut] | None = Field(
        default=None, description="Schema 2: every signal, name and commitment; null for 1"
    )
    openings: list[SignalOpeningOut] | None = Field(
        default=None, description="Schema 2: the signals you may read, opened; null for 1"
    )


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
    body: ProofsIn, request: Request, who: BearerDep, conn: DbConn, clock: Clock
) -> ProofsOut:
    """Each bundle's wire form, signature, Merkle path and batch, for an audit.

    Rights come first: a caller whose rights cover nothing of the vehicle gets a 403
    `privilege-missing` problem before any pair is looked up, the same whatever pairs it
    sent. For any other caller each pair must be a loaded bundle of the vehicle holding a
    reading its rights cover; an unknown pair, another vehicle's bundle, or one of which it
    may read nothing all get the same 404 `bundle-not-found` problem. A schema-2 bundle is
    served by the openings of the signals whose every reading in it the caller may read (the
    others as names and commitments), the whole bundle only to a caller covering all of them;
    a schema-1 proof discloses the whole bundle, so it is served only to such a caller. A
    bundle that cannot be served so (schema 1 holding a signal the caller may not read;
    schema 2 holding one it may read only some readings of) gets a 403
    `bundle-not-disclosable` problem naming those signals (`indexer.disclosure.decide`).
    """
    coverage = coverage_for(
        get_rights_cache(request), conn, body.vehicle_id, who, int(clock() * 1000)
    )
    if not coverage.any():
        raise PrivilegeMissing(body.vehicle_id, {"ANY": ["any signal of the vehicle"]})
    refs = [(int(b), int(leaf)) for b, leaf in body.inputs]
    rows = bundle_rows(conn, refs)
    served: dict[tuple[int, int], Served] = {}
    for ref in refs:
        row = rows.get(ref)
        if row is None or int(row.vehicle_id) != body.vehicle_id:
            raise BundleNotServed(body.vehicle_id, *ref)
        served[ref] = decide(bytes(row.wire), coverage, (body.vehicle_id, *ref))
    out = []
    for ref in refs:
        b = bundle_proof(conn, *ref)
        chosen = served[ref]
        commitments, openings = (
            openings_out(chosen.opened) if chosen.opened is not None else (None, None)
        )
        out.append(
            BundleProofOut(
                batch_id=b.batch_id,
                leaf_index=b.leaf_index,
                schema_version=chosen.disclosure.schema,
                bundle_wire=_hex(b.wire) if chosen.whole else None,
                signature=_hex(b.signature),
                proof=[_hex(p) for p in b.proof],
                batch=BatchOut(
                    id=b.batch_id,
                    root=_hex(b.root),
                    cid=b.cid,
                    tx_hash=b.tx_hash,
                    block_number=b.block_number,
                ),
                leaf=leaf_out(b.leaf),
                commitments=commitments,
                openings=openings,
            )
        )
    return ProofsOut(vehicle_id=body.vehicle_id, bundles=out)


class SignalCheckIn(BaseModel):
    """A schema-2 signal opening to check against an anchored batch, as a proof route served
    it."""

    batch_id: int = Field(ge=0, le=(1 << 63) - 1, description="The anchored batch")
    leaf: LeafOut = Field(description="The bundle's Merkle leaf")
    proof: list[str] = Field(max_length=64, description="Merkle path from the leaf to the root")
    opening: SignalOpeningOut = Field(description="The opened signal")


class SignalCheckOut(BaseModel):
    """A verified opening: the signal's samples, now known to be the device's."""

    batch_id: int = Field(description="The anchored batch")
    signal: str = Field(description="The opened signal")
    samples: list[tuple[int, float | int | str | bool]] = Field(
        description="Its samples, [unix ms, value], decoded from the verified opening"
    )


@router.post(
    "/proofs/check",
    response_model=SignalCheckOut,
    summary="Check a schema-2 signal opening against the root anchored for its batch",
    responses={**_RESPONSES, **problem_responses(422)},
)
def post_signal_check(body: SignalCheckIn, caller: Caller, conn: DbConn) -> SignalCheckOut:
    """What `AttestationAnchor.verifySignal` checks, against the root the index holds.

    The opening's commitment must lead to the leaf's `dataHash`, and the leaf to the batch's
    anchored root; the samples must be canonical. A tampered or malformed opening gets a 422
    `opening-invalid` problem naming the check that failed, a batch the index has not loaded a
    404 `batch-not-found`. Nothing is stored: the answer only says whether it verifies.
    """
    del caller  # any signed-in caller may check what it already holds
    name = body.opening.name
    root = conn.execute(
        select(batches.c.root).where(
            batches.c.id == body.batch_id, batches.c.status == STATUS_LOADED
        )
    ).scalar()
    if root is None:
        raise BatchNotFound(body.batch_id)
    try:
        opening = SignalOpening.from_json(body.opening.model_dump())
        given = body.leaf
        leaf = (
            checksum_address(given.device),
            given.vehicle_id,
            given.sequence,
            given.window_start,
            given.window_end,
            bytes.fromhex(given.data_hash.removeprefix("0x")),
            bytes.fromhex(given.signature_hash.removeprefix("0x")),
        )
        proof = [bytes.fromhex(p.removeprefix("0x")) for p in body.proof]
        samples = opening.verify(leaf[5])
        in_batch = verify_proof(bytes(root), BUNDLE_LEAF_ENCODING, leaf, proof)
    except (BundleError, MerkleError, ValueError) as exc:
        raise OpeningInvalid(body.batch_id, name, str(exc)) from None
    if not in_batch:
        raise OpeningInvalid(body.batch_id, name, "the leaf is not in the batch's anchored tree")
    return SignalCheckOut(
        batch_id=body.batch_id, signal=name, samples=[(ts, v) for ts, v in samples]
    )


__all__ = [
    "post_input_proofs",
    "post_signal_check",
    "router",
]
