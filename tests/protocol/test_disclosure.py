"""Schema-2 bundles: salted per-signal commitments, openings of one signal, and their errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.bundle import (
    SALT_SIZE,
    SCHEMA_SIGNALS,
    SIGNAL_LEAF_ENCODING,
    Bundle,
    CommitmentMismatchError,
    InvalidBundleError,
    MalformedBundleError,
    SaltReusedError,
    UnsupportedSchemaVersionError,
    _bundle_from_document,
    _decode_document,
    decode_bundle,
    decode_signed_bundle,
    encode_samples,
    encode_signed_bundle,
    sign_bundle,
    verify_bundle,
)
from protocol.crypto import checksum_address
from protocol.disclosure import (
    SignalOpening,
    TamperedOpeningError,
    UnknownSignalError,
    commitments_from_json,
    commitments_json,
    decode_samples,
    open_signal,
    verify_commitments,
)
from protocol.eip712 import dimo_domain
from protocol.merkle import StandardMerkleTree
from tests.protocol.test_bundle import from_spec, reading_values, signal_names

DEVICE = "0x9E120061Cf003fB75E0eBD8c08E8438209C25791"
T0 = 1_735_689_600_000
DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


@st.composite
def bundles(draw: st.DrawFn) -> Bundle:
    start = draw(st.integers(0, 2**64 - 2))
    end = draw(st.integers(start + 1, 2**64 - 1))
    samples = st.dictionaries(
        st.integers(start, end - 1), reading_values, min_size=1, max_size=6
    ).map(lambda d: list(d.items()))
    readings = draw(st.dictionaries(signal_names, samples, min_size=1, max_size=8))
    salts = draw(
        st.lists(
            st.binary(min_size=SALT_SIZE, max_size=SALT_SIZE),
            min_size=len(readings),
            max_size=len(readings),
            unique=True,
        )
    )
    return Bundle(
        device=checksum_address(draw(st.binary(min_size=20, max_size=20))),
        vehicle_id=draw(st.integers(0, 2**256 - 1)),
        sequence=draw(st.integers(0, 2**64 - 1)),
        window_start=start,
        window_end=end,
        readings=readings,
        schema_version=SCHEMA_SIGNALS,
        salts=dict(zip(sorted(readings), salts, strict=True)),
    )


def simple(**overrides: Any) -> Bundle:
    fields: dict[str, Any] = {
        "device": DEVICE,
        "vehicle_id": 7,
        "sequence": 1,
        "window_start": T0,
        "window_end": T0 + 60_000,
        "readings": {
            "Vehicle.Speed": [(T0 + 1_000, 42.5)],
            "Vehicle.CurrentLocation.Latitude": [(T0 + 1_000, 52.52)],
            "Vehicle.CurrentLocation.Longitude": [(T0 + 1_000, 13.405)],
        },
        "schema_version": SCHEMA_SIGNALS,
    }
    fields.update(overrides)
    return Bundle(**fields)


def cbor_document(bundle: Bundle) -> dict[str, Any]:
    """The CBOR data model of a schema-2 encoding, written from docs/protocol.md."""
    assert bundle.salts is not None
    return {
        "device": bundle.device_bytes,
        "schema": 2,
        "readings": [
            [name, bundle.salts[name], [[ts, v] for ts, v in samples]]
            for name, samples in bundle.readings.items()
        ],
        "sequence": bundle.sequence,
        "vehicleId": bundle.vehicle_id,
        "windowEnd": bundle.window_end,
        "windowStart": bundle.window_start,
    }


# ------------------------------------------------------------------------------------------------
# Encoding
# ------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(bundles())
def test_the_encoding_is_cbor2_canonical_form_of_the_documented_map(bundle: Bundle) -> None:
    assert bundle.encoding == cbor2.dumps(cbor_document(bundle), canonical=True)


@settings(max_examples=150, deadline=None)
@given(bundles())
def test_decode_inverts_encode_by_both_decoders(bundle: Bundle) -> None:
    fast = decode_bundle(bundle.encoding)
    reference = _bundle_from_document(_decode_document(bundle.encoding, 1 << 22))
    for decoded in (fast, reference):
        assert decoded == bundle
        assert decoded.salts == bundle.salts
        assert decoded.commitments == bundle.commitments
        assert decoded.data_hash == bundle.data_hash


@settings(max_examples=150, deadline=None)
@given(bundles())
def test_encode_samples_is_cbor2_canonical_form(bundle: Bundle) -> None:
    for samples in bundle.readings.values():
        raw = encode_samples(samples)
        assert raw == cbor2.dumps([[ts, v] for ts, v in samples], canonical=True)
        assert decode_samples(raw) == samples


@settings(max_examples=100, deadline=None)
@given(bundles())
def test_data_hash_is_the_standard_tree_root_of_name_and_commitment(bundle: Bundle) -> None:
    assert bundle.salts is not None
    leaves = [
        (name, _commit(bundle.salts[name], samples)) for name, samples in bundle.readings.items()
    ]
    tree = StandardMerkleTree.of(leaves, SIGNAL_LEAF_ENCODING)
    assert bundle.data_hash == tree.root


def _commit(salt: bytes, samples: Any) -> bytes:
    from eth_utils.crypto import keccak

    return bytes(keccak(salt + cbor2.dumps([[ts, v] for ts, v in samples], canonical=True)))


@settings(max_examples=50, deadline=None)
@given(bundles(), st.integers(1, 2**200))
def test_a_signed_schema_2_bundle_round_trips_the_wire_and_verifies(
    bundle: Bundle, key_int: int
) -> None:
    key = key_int.to_bytes(32, "big")
    signed = sign_bundle(dataclasses.replace(bundle, device=_address(key)), key, DOMAIN)
    again = decode_signed_bundle(encode_signed_bundle(signed))
    assert again == signed
    assert verify_bundle(again, DOMAIN) == signed.bundle.device


def _address(key: bytes) -> str:
    from eth_account import Account

    return str(Account.from_key(key).address)


# ------------------------------------------------------------------------------------------------
# Openings
# ------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(bundles())
def test_every_signal_opens_to_its_samples(bundle: Bundle) -> None:
    for name, samples in bundle.readings.items():
        opening = open_signal(bundle, name)
        assert opening.verify(bundle.data_hash) == samples
        assert SignalOpening.from_json(opening.as_json()) == opening


@settings(max_examples=100, deadline=None)
@given(bundles(), st.data())
def test_a_changed_byte_of_an_opening_is_refused(bundle: Bundle, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(bundle.readings)))
    opening = open_signal(bundle, name)
    field = data.draw(st.sampled_from(["salt", "samples_encoding", "proof"]))
    if field == "proof" and not opening.proof:
        field = "salt"
    if field == "proof":
        i = data.draw(st.integers(0, len(opening.proof) - 1))
        node = bytearray(opening.proof[i])
        node[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
        proof = list(opening.proof)
        proof[i] = bytes(node)
        tampered = dataclasses.replace(opening, proof=tuple(proof))
    else:
        raw = bytearray(getattr(opening, field))
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        if field == "salt":
            tampered = dataclasses.replace(opening, salt=bytes(raw))
        else:
            tampered = dataclasses.replace(opening, samples_encoding=bytes(raw))
    with pytest.raises(TamperedOpeningError):
        tampered.verify(bundle.data_hash)


def test_an_opening_under_another_signal_name_is_refused() -> None:
    bundle = simple()
    opening = open_signal(bundle, "Vehicle.Speed")
    with pytest.raises(TamperedOpeningError):
        dataclasses.replace(opening, name="Vehicle.CurrentLocation.Latitude").verify(
            bundle.data_hash
        )


def test_an_opening_of_one_bundle_does_not_verify_against_another() -> None:
    first, second = simple(), simple()  # same readings, fresh salts
    with pytest.raises(TamperedOpeningError):
        open_signal(first, "Vehicle.Speed").verify(second.data_hash)


def test_an_opening_discloses_no_other_signal() -> None:
    bundle = simple()
    opening = open_signal(bundle, "Vehicle.Speed").as_json()
    assert bundle.salts is not None
    text = repr(opening)
    for other in ("Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"):
        assert bundle.salts[other].hex() not in text
        assert encode_samples(bundle.readings[other]).hex() not in text
    assert "Latitude" not in text
    assert "Longitude" not in text


def test_an_unknown_signal_cannot_be_opened() -> None:
    with pytest.raises(UnknownSignalError):
        open_signal(simple(), "Vehicle.Cabin.Door")


def test_a_schema_1_bundle_has_no_per_signal_opening() -> None:
    with pytest.raises(TamperedOpeningError):
        open_signal(simple(schema_version=1), "Vehicle.Speed")


def test_a_malformed_opening_document_is_refused() -> None:
    doc = open_signal(simple(), "Vehicle.Speed").as_json()
    doc["salt"] = "zz"
    with pytest.raises(TamperedOpeningError):
        SignalOpening.from_json(doc)


def test_non_canonical_samples_in_an_opening_are_refused() -> None:
    bundle = simple()
    opening = open_signal(bundle, "Vehicle.Speed")
    long_float = (
        b"\x81\x82\x1b"
        + (T0 + 1_000).to_bytes(8, "big")
        + b"\xfb"
        + (cbor2.dumps(42.5)[1:] + bytes(6))
    )
    with pytest.raises((MalformedBundleError, TamperedOpeningError)):
        dataclasses.replace(opening, samples_encoding=long_float).verify(bundle.data_hash)


# ------------------------------------------------------------------------------------------------
# Salts and commitments
# ------------------------------------------------------------------------------------------------


def test_a_salt_reused_across_signals_is_refused() -> None:
    salt = bytes(range(32))
    with pytest.raises(SaltReusedError) as caught:
        simple(
            salts={
                "Vehicle.Speed": salt,
                "Vehicle.CurrentLocation.Latitude": salt,
                "Vehicle.CurrentLocation.Longitude": bytes(32),
            }
        )
    assert set(caught.value.signals) == {"Vehicle.Speed", "Vehicle.CurrentLocation.Latitude"}


def test_a_payload_with_a_salt_reused_across_signals_is_refused() -> None:
    bundle = simple()
    document = cbor_document(bundle)
    document["readings"][1][1] = document["readings"][0][1]
    with pytest.raises(SaltReusedError):
        decode_bundle(cbor2.dumps(document, canonical=True))


@pytest.mark.parametrize("salt", [b"", bytes(31), bytes(33)])
def test_a_salt_that_is_not_32_bytes_is_refused(salt: bytes) -> None:
    bundle = simple()
    assert bundle.salts is not None
    with pytest.raises(InvalidBundleError):
        simple(salts={**bundle.salts, "Vehicle.Speed": salt})


def test_a_salt_for_each_signal_is_required() -> None:
    with pytest.raises(InvalidBundleError):
        simple(salts={"Vehicle.Speed": bytes(32)})


def test_a_schema_1_bundle_carries_no_salts() -> None:
    with pytest.raises(InvalidBundleError):
        simple(schema_version=1, salts={"Vehicle.Speed": bytes(32)})


def test_a_schema_2_bundle_has_at_least_one_signal() -> None:
    with pytest.raises(InvalidBundleError):
        simple(readings={})


def test_fresh_salts_differ_across_signals_and_bundles() -> None:
    salts = [s for b in (simple(), simple(), simple()) for s in (b.salts or {}).values()]
    assert len(salts) == 9
    assert len(set(salts)) == 9


def test_equal_readings_in_two_bundles_give_unrelated_commitments() -> None:
    first, second = simple(), simple()
    assert not set(first.commitments.values()) & set(second.commitments.values())


def test_published_commitments_verify_against_the_data_hash() -> None:
    bundle = simple()
    published = commitments_from_json(commitments_json(bundle.commitments))
    verify_commitments(bundle.data_hash, published)


def test_altered_published_commitments_are_refused() -> None:
    bundle = simple()
    published = dict(bundle.commitments)
    published["Vehicle.Speed"] = bytes(32)
    with pytest.raises(CommitmentMismatchError):
        verify_commitments(bundle.data_hash, published)
    del published["Vehicle.Speed"]
    with pytest.raises(CommitmentMismatchError):
        verify_commitments(bundle.data_hash, published)


def test_an_unknown_schema_in_a_payload_is_refused() -> None:
    document = cbor_document(simple())
    document["schema"] = 3
    with pytest.raises(UnsupportedSchemaVersionError):
        decode_bundle(cbor2.dumps(document, canonical=True))


def test_schema_1_entries_under_schema_2_are_refused() -> None:
    document = cbor_document(simple())
    document["readings"] = [[name, samples] for name, _, samples in document["readings"]]
    with pytest.raises(MalformedBundleError):
        decode_bundle(cbor2.dumps(document, canonical=True))


# ------------------------------------------------------------------------------------------------
# Vectors made with cbor2, eth-account and OpenZeppelin's JS merkle-tree
# ------------------------------------------------------------------------------------------------

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "signals_v2.json").read_text())
VECTOR_DOMAIN = dimo_domain(VECTORS["domain"]["chainId"], VECTORS["domain"]["verifyingContract"])
BY_NAME = {entry["name"]: entry for entry in VECTORS["bundles"]}


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _vector_bundle(entry: dict[str, Any]) -> Bundle:
    salts = {s["name"]: _unhex(s["salt"]) for s in entry["signals"]}
    return dataclasses.replace(from_spec(entry["spec"]), salts=salts)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_the_vector_encodes_commits_and_signs_as_the_independent_tools_did(name: str) -> None:
    entry = BY_NAME[name]
    bundle = _vector_bundle(entry)
    assert bundle.encoding == _unhex(entry["encoding"])
    assert decode_bundle(_unhex(entry["encoding"])) == bundle
    assert bundle.data_hash == _unhex(entry["dataHash"])
    assert {n: "0x" + c.hex() for n, c in bundle.commitments.items()} == {
        s["name"]: s["commitment"] for s in entry["signals"]
    }
    key = _unhex(entry["key"])
    assert sign_bundle(bundle, key, VECTOR_DOMAIN).signature == _unhex(entry["signature"])


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_vector_opening_equals_ours_and_verifies(name: str) -> None:
    entry = BY_NAME[name]
    bundle = _vector_bundle(entry)
    for signal in entry["signals"]:
        ours = open_signal(bundle, signal["name"]).as_json()
        assert ours == {k: signal[k] for k in ("name", "salt", "samples", "proof")}
        theirs = SignalOpening.from_json(signal)
        assert theirs.verify(_unhex(entry["dataHash"])) == bundle.readings[signal["name"]]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_the_vector_leaf_proves_against_the_oz_batch_root(name: str) -> None:
    from protocol.bundle import BUNDLE_LEAF_ENCODING, SignedBundle, bundle_leaf
    from protocol.merkle import verify_proof

    entry = BY_NAME[name]
    signed = SignedBundle(_vector_bundle(entry), _unhex(entry["signature"]))
    assert verify_bundle(signed, VECTOR_DOMAIN) == signed.bundle.device
    assert verify_proof(
        VECTORS["batchRoot"], BUNDLE_LEAF_ENCODING, bundle_leaf(signed), entry["batchProof"]
    )


@pytest.mark.parametrize("case", VECTORS["tampered"], ids=lambda c: c["name"])
def test_a_tampered_vector_opening_is_refused(case: dict[str, Any]) -> None:
    entry = VECTORS["bundles"][case["bundle"]]
    with pytest.raises(TamperedOpeningError):
        SignalOpening.from_json(case["opening"]).verify(_unhex(entry["dataHash"]))


@pytest.mark.parametrize("case", VECTORS["malformed"], ids=lambda c: c["name"])
def test_a_malformed_vector_payload_is_refused_with_its_error(case: dict[str, Any]) -> None:
    import protocol.bundle as bundle_module

    with pytest.raises(getattr(bundle_module, case["error"])):
        decode_bundle(_unhex(case["encoding"]))
