"""`proof_json`, the one builder of a reading's proof: the REST route validates it into
`ProofOut` and the Telemetry GraphQL serves it as it is, so it must be exactly the model's JSON
(fields, order, types) for both bundle schemas, whole or opened signal by signal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account

from indexer.api.routes.telemetry_proofs import ProofOut, proof_json
from indexer.exceptions import BundleNotDisclosable
from indexer.queries import BundleProof, Reading
from indexer.rights import PRIVILEGES, Coverage
from protocol.bundle import (
    SCHEMA_SIGNALS,
    SCHEMA_VERSION,
    Bundle,
    bundle_leaf,
    encode_signed_bundle,
    sign_bundle,
)
from protocol.crypto import keccak256
from protocol.eip712 import dimo_domain
from protocol.privileges import Privilege
from tests.indexer.leaks import latitude, longitude, position_found

SPEED = "Vehicle.Speed"
LAT = "Vehicle.CurrentLocation.Latitude"
LON = "Vehicle.CurrentLocation.Longitude"
T0 = 1_700_000_000_000
VEHICLE = 42
LATS = [(T0 + 5_000 * i, latitude(i)) for i in range(2)]
LONS = [(T0 + 5_000 * i, longitude(i)) for i in range(2)]


def _proved(schema: int) -> tuple[Reading, BundleProof]:
    device = Account.from_key(keccak256(b"proof-json-device"))
    readings = {
        SPEED: [(T0 + 1_000 * i, 50.0 + i) for i in range(10)],
        LAT: LATS,
        LON: LONS,
    }
    bundle = Bundle(device.address, VEHICLE, 3, T0, T0 + 60_000, readings, schema_version=schema)
    signed = sign_bundle(bundle, bytes(device.key), dimo_domain(31337, "0x" + "a1" * 20))
    proof = BundleProof(
        batch_id=7,
        leaf_index=0,
        wire=encode_signed_bundle(signed),
        signature=signed.signature,
        leaf=bundle_leaf(signed),
        proof=[b"\x11" * 32, b"\x22" * 32],
        root=b"\x33" * 32,
        cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        tx_hash="0x" + "44" * 32,
        block_number=9,
    )
    return Reading(T0 + 4_000, 54.0, 7, 0), proof


def _coverage(privileges: tuple[Privilege, ...]) -> Coverage:
    return Coverage(
        VEHICLE, "0x" + "55" * 20, T0 + 10**6, {p: ((0, 2**62),) for p in privileges}, True
    )


def _fields(model: type[Any]) -> list[str]:
    return list(model.model_fields)


def _as_served(doc: dict[str, Any]) -> dict[str, Any]:
    served: dict[str, Any] = ProofOut.model_validate(doc).model_dump(mode="json")
    return served


@pytest.mark.parametrize("schema", [SCHEMA_VERSION, SCHEMA_SIGNALS])
def test_the_proof_is_the_models_json_whole(schema: int) -> None:
    reading, bundle = _proved(schema)
    doc = proof_json(None, _coverage(PRIVILEGES), VEHICLE, SPEED, reading.ts, reading, bundle)  # type: ignore[arg-type]
    assert doc == _as_served(doc)
    assert list(doc) == _fields(ProofOut)
    assert list(doc["leaf"]) == list(_as_served(doc)["leaf"])
    assert doc["bundle_wire"] == "0x" + bundle.wire.hex()
    assert doc["schema_version"] == schema
    assert (doc["opening"] is None) == (schema == SCHEMA_VERSION)


def test_an_opened_proof_is_the_models_json_and_holds_no_position() -> None:
    reading, bundle = _proved(SCHEMA_SIGNALS)
    without_location = tuple(p for p in PRIVILEGES if p != Privilege.LOCATION)
    coverage = _coverage(without_location)
    doc = proof_json(None, coverage, VEHICLE, SPEED, reading.ts, reading, bundle)  # type: ignore[arg-type]
    assert doc == _as_served(doc)
    assert doc["bundle_wire"] is None
    assert doc["opening"]["name"] == SPEED
    assert list(doc["opening"]) == ["name", "salt", "samples", "proof"]
    assert [c["name"] for c in doc["commitments"]] == sorted([SPEED, LAT, LON])
    lats = [v for _, v in LATS]
    lons = [v for _, v in LONS]
    assert position_found(json.dumps(doc), lats, lons) == []
    # A schema-1 bundle holding the position cannot be proved to this caller at all.
    reading1, bundle1 = _proved(SCHEMA_VERSION)
    with pytest.raises(BundleNotDisclosable):
        proof_json(None, coverage, VEHICLE, SPEED, reading1.ts, reading1, bundle1)  # type: ignore[arg-type]
