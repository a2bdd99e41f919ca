"""`/vehicles/{id}/signals/{signal}/readings/{ts}/proof`: one reading with its proof.

What a proof discloses is decided in one place, `indexer.disclosure.decide`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from indexer.api.access import deny, withheld_of
from indexer.api.deps import MAX_MS, Access, DbConn, SignalName, VehicleId
from indexer.api.models import (
    BatchOut,
    CommitmentOut,
    LeafOut,
    ReadingOut,
    SignalOpeningOut,
    hex_of,
)
from indexer.api.params import check_known
from indexer.api.problems import problem_responses
from indexer.disclosure import decide
from indexer.exceptions import ReadingNotFound, ReadingNotServed
from indexer.queries import (
    BundleProof,
    Reading,
    ReadingProof,
    proof_of_reading,
    reading_proof,
)
from indexer.rights import Coverage, contains

router = APIRouter(prefix="/vehicles", tags=["telemetry"])

_RESPONSES: Final = problem_responses(400, 401, 403, 404)


class ProofOut(BaseModel):
    """A reading with everything needed to check it against the chain.

    `verifyReading(batch.id, leaf, proof)` on `AttestationAnchor` returns true. A schema-1
    bundle is served whole: `bundle_wire` decodes (`protocol.bundle.decode_signed_bundle`) to a
    bundle holding the reading, whose EIP-712 signature `signature` recovers to `leaf.device`.
    A schema-2 bundle is served by its `opening` of the reading's signal alone:
    `verifySignal(batch.id, leaf, proof, opening)` returns true, and `commitments` names the
    bundle's other signals without their values; `bundle_wire` is sent only to a caller whose
    rights cover every signal of the bundle.
    """

    vehicle_id: int = Field(description="The vehicle")
    signal: str = Field(description="VSS name")
    reading: ReadingOut = Field(description="The reading")
    schema_version: int = Field(description="The bundle's schema: 1 (whole) or 2 (per signal)")
    bundle_wire: str | None = Field(
        description="The signed bundle's wire form (CBOR), 0x hex: schema 1 always; schema 2 "
        "only when your rights cover every signal of the bundle, else null"
    )
    signature: str = Field(description="The device's EIP-712 signature, 65 bytes, 0x hex")
    leaf_index: int = Field(description="The bundle's index in the batch")
    leaf: LeafOut = Field(description="The bundle's Merkle leaf")
    proof: list[str] = Field(description="Merkle path from the leaf to the root, 0x hex")
    batch: BatchOut = Field(description="The anchored batch")
    opening: SignalOpeningOut | None = Field(
        default=None, description="Schema 2: the reading's signal opened; null for schema 1"
    )
    commitments: list[CommitmentOut] | None = Field(
        default=None,
        description="Schema 2: every signal of the bundle, name and commitment; null for 1",
    )


@router.get(
    "/{vehicle_id}/signals/{signal}/readings/{ts}/proof",
    response_model=ProofOut,
    summary="The proof of one reading: bundle, signature, Merkle path, root, anchoring tx",
    responses=_RESPONSES,
)
def get_reading_proof(
    vehicle_id: VehicleId,
    signal: SignalName,
    ts: Annotated[int, Path(ge=0, le=MAX_MS, description="The reading's time, unix ms")],
    coverage: Access,
    conn: DbConn,
) -> ProofOut:
    """Everything needed to check the reading of `signal` at `ts` against the chain.

    Only for a reading your rights cover: a 403 `privilege-missing` problem otherwise, decided
    before anything is looked up; then a 404 when there is no such reading. A schema-2 bundle
    is served by the opening of `signal` alone (its samples and salt; the other signals as
    names and commitments), provided your rights cover every reading of `signal` in the bundle;
    the whole bundle goes only to a caller covering all of its signals. A schema-1 leaf commits
    to the bundle's whole encoding, so its proof is served only if your rights cover every
    reading of the bundle. Otherwise a 403 `bundle-not-disclosable` problem names the signals
    you may not read, never their values (`indexer.disclosure.decide`).
    """
    check_known(conn, [signal])
    return ProofOut.model_validate(proof_json(conn, coverage, vehicle_id, signal, ts))


def proof_json(
    conn: Connection,
    coverage: Coverage,
    vehicle_id: int,
    signal: str,
    ts: int,
    reading: Reading | None = None,
    bundle: BundleProof | None = None,
) -> dict[str, Any]:
    """The proof of the reading of `signal` at `ts`, as the route serves it: `ProofOut`'s
    fields in its order, bytes as 0x hex. The route validates it into the model; the Telemetry
    GraphQL's `proof` fields serve it as it is, without building the models of 24 proofs an
    answer. `reading`, when the caller has read it already (its batch and leaf), saves looking
    it up again; `bundle`, the proof of that reading's bundle when the caller has read it too
    (`bundle_proofs`, for many readings at once).

    Raises:
        PrivilegeMissing: `coverage` does not cover `signal` at `ts`.
        ReadingNotServed: there is no such reading.
        BundleNotDisclosable: the bundle cannot be opened for `signal` alone under `coverage`.
    """
    if not contains(coverage.for_signal(signal), ts):
        deny(coverage, [withheld_of(signal)])
    try:
        if reading is None or reading.ts != ts:
            found = reading_proof(conn, vehicle_id, signal, ts)
        elif bundle is None or (bundle.batch_id, bundle.leaf_index) != (
            reading.batch_id,
            reading.leaf_index,
        ):
            found = proof_of_reading(conn, vehicle_id, signal, reading)
        else:
            found = ReadingProof(vehicle_id, signal, reading, bundle)
    except ReadingNotFound:
        raise ReadingNotServed(vehicle_id, signal, ts) from None
    b, r = found.bundle, found.reading
    served = decide(
        b.wire, coverage, (vehicle_id, b.batch_id, b.leaf_index), wanted=[signal], facts=b.facts
    )
    opening: dict[str, Any] | None = None
    commitments: list[dict[str, str]] | None = None
    if served.opened is not None:
        commitments = [
            {"name": name, "commitment": hex_of(c)} for name, c in served.opened.commitments.items()
        ]
        opening = served.opened.openings[0].as_json()
    device, vehicle, sequence, window_start, window_end, data_hash, sig_hash = b.leaf
    return {
        "vehicle_id": vehicle_id,
        "signal": signal,
        "reading": {
            "t": r.ts,
            "value": r.value,
            "batch_id": r.batch_id,
            "leaf_index": r.leaf_index,
        },
        "schema_version": served.disclosure.schema,
        "bundle_wire": hex_of(b.wire) if served.whole else None,
        "signature": hex_of(b.signature),
        "leaf_index": b.leaf_index,
        "leaf": {
            "device": device,
            "vehicle_id": vehicle,
            "sequence": sequence,
            "window_start": window_start,
            "window_end": window_end,
            "data_hash": hex_of(data_hash),
            "signature_hash": hex_of(sig_hash),
        },
        "proof": [hex_of(p) for p in b.proof],
        "batch": {
            "id": b.batch_id,
            "root": hex_of(b.root),
            "cid": b.cid,
            "tx_hash": b.tx_hash,
            "block_number": b.block_number,
        },
        "opening": opening,
        "commitments": commitments,
    }
