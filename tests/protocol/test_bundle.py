"""Bundles encode canonically, sign under EIP-712 as eth-account does, and reject tampering."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import bundle as bundle_module
from protocol import crypto
from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    Bundle,
    BundleError,
    BundleTooLargeError,
    DuplicateTimestampError,
    InvalidBundleError,
    InvalidSignalNameError,
    MalformedBundleError,
    NonCanonicalEncodingError,
    NonFiniteValueError,
    SignedBundle,
    TimestampOutsideWindowError,
    UnsupportedSchemaVersionError,
    UnsupportedValueTypeError,
    bundle_digest,
    bundle_leaf,
    bundle_typed_data,
    decode_bundle,
    decode_signed_bundle,
    encode_bundle,
    encode_signed_bundle,
    sign_bundle,
    stored_signal_times,
    verify_bundle,
)
from protocol.crypto import (
    InvalidSignerError,
    MalformedSignatureError,
    SignatureHighSError,
    checksum_address,
    keccak256,
    private_key_to_address,
)
from protocol.eip712 import Eip712Domain, dimo_domain
from protocol.merkle import StandardMerkleTree

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "bundles.json").read_text())
ERRORS = {
    name: getattr(bundle_module, name, None) or getattr(crypto, name)
    for name in {entry["error"] for entry in VECTORS["invalid"] + VECTORS["malformed"]}
}
T0 = 1_735_689_600_000
KEY = keccak256(b"dimo-test-device")
DEVICE = private_key_to_address(KEY)
DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


def from_spec(spec: dict[str, Any]) -> Bundle:
    return Bundle(
        device=spec["device"],
        vehicle_id=int(spec["vehicleId"]),
        sequence=spec["sequence"],
        window_start=spec["windowStart"],
        window_end=spec["windowEnd"],
        readings={name: [tuple(s) for s in samples] for name, samples in spec["readings"].items()},
        schema_version=spec["schemaVersion"],
    )


def domain_of(spec: dict[str, Any]) -> Eip712Domain:
    return Eip712Domain(spec["name"], spec["version"], spec["chainId"], spec["verifyingContract"])


def unhex(s: str) -> bytes:
    return bytes.fromhex(s.removeprefix("0x"))


def same_float(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    return type(a) is type(b) and a == b


def simple(**overrides: Any) -> Bundle:
    fields: dict[str, Any] = {
        "device": DEVICE,
        "vehicle_id": 7,
        "sequence": 1,
        "window_start": T0,
        "window_end": T0 + 60_000,
        "readings": {"Vehicle.Speed": [(T0 + 1_000, 42.5)]},
    }
    fields.update(overrides)
    return Bundle(**fields)


# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------

reading_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=16),
)
signal_names = st.from_regex(r"Vehicle(\.[A-Za-z][A-Za-z0-9_]{0,8}){1,4}", fullmatch=True)


@st.composite
def bundles(draw: st.DrawFn) -> Bundle:
    start = draw(st.integers(0, 2**64 - 2))
    end = draw(st.integers(start + 1, 2**64 - 1))
    samples = st.dictionaries(
        st.integers(start, end - 1), reading_values, min_size=1, max_size=6
    ).map(lambda d: list(d.items()))
    return Bundle(
        device=checksum_address(draw(st.binary(min_size=20, max_size=20))),
        vehicle_id=draw(st.integers(0, 2**256 - 1)),
        sequence=draw(st.integers(0, 2**64 - 1)),
        window_start=start,
        window_end=end,
        readings=draw(st.dictionaries(signal_names, samples, max_size=5)),
    )


private_keys = st.integers(1, crypto.SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))

# ------------------------------------------------------------------------------------------------
# Vectors made with cbor2 and eth-account
# ------------------------------------------------------------------------------------------------

VALID = {entry["name"]: entry for entry in VECTORS["valid"]}
INVALID = {entry["name"]: entry for entry in VECTORS["invalid"]}
MALFORMED = {entry["name"]: entry for entry in VECTORS["malformed"]}


@pytest.mark.parametrize("name", sorted(VALID))
def test_encoding_equals_the_vector(name: str) -> None:
    entry = VALID[name]
    bundle = from_spec(entry["bundle"])
    assert encode_bundle(bundle).hex() == entry["encoding"][2:]
    assert bundle.data_hash.hex() == entry["dataHash"][2:]


@pytest.mark.parametrize("name", sorted(VALID))
def test_decoding_the_vector_gives_the_bundle(name: str) -> None:
    entry = VALID[name]
    assert decode_bundle(unhex(entry["encoding"])) == from_spec(entry["bundle"])


@pytest.mark.parametrize("name", sorted(VALID))
def test_the_vector_signature_verifies_to_its_device(name: str) -> None:
    entry = VALID[name]
    signed = SignedBundle(decode_bundle(unhex(entry["encoding"])), unhex(entry["signature"]))
    assert verify_bundle(signed, domain_of(VECTORS["domain"])) == entry["bundle"]["device"]


@pytest.mark.parametrize("name", sorted(VALID))
def test_sign_bundle_gives_the_signature_eth_account_gave(name: str) -> None:
    entry = VALID[name]
    signed = sign_bundle(
        from_spec(entry["bundle"]), entry["privateKey"], domain_of(VECTORS["domain"])
    )
    assert signed.signature.hex() == entry["signature"][2:]


@pytest.mark.parametrize("name", sorted(VALID))
def test_leaf_equals_the_vector(name: str) -> None:
    entry = VALID[name]
    signed = SignedBundle(from_spec(entry["bundle"]), unhex(entry["signature"]))
    tree = StandardMerkleTree.of([bundle_leaf(signed)], BUNDLE_LEAF_ENCODING)
    assert tree.dump()["values"][0]["value"] == entry["leaf"]
    assert tree.leaf_hash(bundle_leaf(signed)).hex() == entry["leafHash"][2:]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_a_tampered_vector_fails_with_its_error(name: str) -> None:
    entry = INVALID[name]
    bundle = decode_bundle(unhex(entry["encoding"]))
    signed = SignedBundle(bundle, unhex(entry["signature"]))
    with pytest.raises(ERRORS[entry["error"]]) as caught:
        verify_bundle(signed, domain_of(entry["domain"]))
    if "signer" in entry:
        assert caught.value.signer == entry["signer"]
        assert caught.value.expected == entry["expected"]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_payload_is_rejected_with_its_error(name: str) -> None:
    entry = MALFORMED[name]
    with pytest.raises(ERRORS[entry["error"]]):
        decode_bundle(unhex(entry["encoding"]))


# ------------------------------------------------------------------------------------------------
# Agreement with eth-account
# ------------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(bundles(), private_keys)
def test_digest_and_recovery_equal_eth_account(bundle: Bundle, key: bytes) -> None:
    signable = encode_typed_data(full_message=bundle_typed_data(bundle, DOMAIN))
    assert bundle_digest(bundle, DOMAIN) == _hash_eip191_message(signable)
    signature = bytes(Account.sign_message(signable, key).signature)
    signer = Account.recover_message(signable, signature=signature)
    signed = SignedBundle(bundle, signature)
    if signer == bundle.device:
        assert verify_bundle(signed, DOMAIN) == signer
    else:
        with pytest.raises(InvalidSignerError) as caught:
            verify_bundle(signed, DOMAIN)
        assert caught.value.signer == signer


def test_verify_returns_the_device_for_its_own_signature() -> None:
    bundle = simple()
    assert verify_bundle(sign_bundle(bundle, KEY, DOMAIN), DOMAIN) == DEVICE


def test_a_signature_by_another_key_names_signer_and_expected_signer() -> None:
    other = keccak256(b"someone else")
    with pytest.raises(InvalidSignerError) as caught:
        verify_bundle(sign_bundle(simple(), other, DOMAIN), DOMAIN)
    assert caught.value.signer == private_key_to_address(other)
    assert caught.value.expected == DEVICE
    assert DEVICE in str(caught.value)


def test_a_high_s_signature_is_rejected() -> None:
    sig = sign_bundle(simple(), KEY, DOMAIN).signature
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (crypto.SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - sig[64],))
    with pytest.raises(SignatureHighSError):
        verify_bundle(SignedBundle(simple(), twin), DOMAIN)


@pytest.mark.parametrize("length", [0, 64, 66])
def test_a_signature_of_the_wrong_length_is_rejected(length: int) -> None:
    with pytest.raises(MalformedSignatureError):
        SignedBundle(simple(), b"\x01" * length)


# ------------------------------------------------------------------------------------------------
# Encoding properties
# ------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(bundles())
def test_decode_inverts_encode(bundle: Bundle) -> None:
    encoded = encode_bundle(bundle)
    decoded = decode_bundle(encoded)
    assert decoded == bundle
    assert encode_bundle(decoded) == encoded
    for signal, samples in bundle.readings.items():
        for (_, a), (_, b) in zip(samples, decoded.readings[signal], strict=True):
            assert same_float(a, b)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_bit_for_bit(value: float) -> None:
    decoded = decode_bundle(simple(readings={"Vehicle.Speed": [(T0, value)]}).encoding)
    assert same_float(decoded.readings["Vehicle.Speed"][0][1], value)


@settings(max_examples=200, deadline=None)
@given(bundles(), st.data())
def test_a_changed_byte_is_rejected_or_is_another_canonical_bundle(
    bundle: Bundle, data: st.DataObject
) -> None:
    encoded = bytearray(encode_bundle(bundle))
    i = data.draw(st.integers(0, len(encoded) - 1))
    encoded[i] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_bundle(bytes(encoded))
    except BundleError:
        return
    assert encode_bundle(decoded) == bytes(encoded)


@settings(max_examples=100, deadline=None)
@given(bundles(), private_keys)
def test_the_wire_form_round_trips(bundle: Bundle, key: bytes) -> None:
    signed = sign_bundle(bundle, key, DOMAIN)
    assert decode_signed_bundle(encode_signed_bundle(signed)) == signed


@given(bundles(), private_keys, st.sampled_from(sorted(SCHEMA_VERSIONS)))
def test_stored_signal_times_are_the_decoded_bundles(
    bundle: Bundle, key: bytes, schema: int
) -> None:
    """What the disclosure decision reads of a stored bundle, without checking it again."""
    if schema != SCHEMA_VERSION and not bundle.readings:
        return  # a schema-2 bundle holds at least one signal
    bundle = dataclasses.replace(bundle, schema_version=schema)
    wire = encode_signed_bundle(sign_bundle(bundle, key, DOMAIN))
    decoded = decode_signed_bundle(wire).bundle
    assert stored_signal_times(wire) == (
        schema,
        {name: [ts for ts, _ in samples] for name, samples in decoded.readings.items()},
    )


@pytest.mark.parametrize("wire", [b"", b"\xa0", b"\xa1fbundle\x41\x00", b"not cbor at all"])
def test_stored_signal_times_of_a_form_not_of_the_shape_raise_the_decoders_error(
    wire: bytes,
) -> None:
    with pytest.raises(MalformedBundleError):
        stored_signal_times(wire)


def test_the_same_readings_in_any_order_encode_identically() -> None:
    a = simple(readings={"Vehicle.Speed": [(T0 + 2, 1.0), (T0 + 1, 2.0)], "Vehicle.A": [(T0, 1)]})
    b = simple(readings={"Vehicle.A": [(T0, 1)], "Vehicle.Speed": [(T0 + 1, 2.0), (T0 + 2, 1.0)]})
    assert a.encoding == b.encoding
    assert list(a.readings) == ["Vehicle.A", "Vehicle.Speed"]
    assert [ts for ts, _ in a.readings["Vehicle.Speed"]] == [T0 + 1, T0 + 2]


def test_int_float_and_bool_of_equal_value_encode_differently() -> None:
    encodings = {simple(readings={"Vehicle.X": [(T0, v)]}).encoding for v in (1, 1.0, True)}
    assert len(encodings) == 3


def test_decoding_keeps_the_value_types() -> None:
    bundle = simple(readings={"Vehicle.X": [(T0, 1), (T0 + 1, 1.0), (T0 + 2, True), (T0 + 3, "1")]})
    values = [v for _, v in decode_bundle(bundle.encoding).readings["Vehicle.X"]]
    assert [type(v) for v in values] == [int, float, bool, str]


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_float_is_rejected(value: float) -> None:
    with pytest.raises(NonFiniteValueError) as caught:
        simple(readings={"Vehicle.Speed": [(T0, value)]})
    assert caught.value.signal == "Vehicle.Speed"


def test_two_samples_at_one_timestamp_are_rejected() -> None:
    with pytest.raises(DuplicateTimestampError) as caught:
        simple(readings={"Vehicle.Speed": [(T0, 1.0), (T0, 2.0)]})
    assert caught.value.timestamp == T0


@pytest.mark.parametrize("ts", [T0 - 1, T0 + 60_000])
def test_a_sample_outside_the_window_is_rejected(ts: int) -> None:
    with pytest.raises(TimestampOutsideWindowError):
        simple(readings={"Vehicle.Speed": [(ts, 1.0)]})


@pytest.mark.parametrize("value", [b"raw", None, [1], 1j])
def test_a_value_of_another_type_is_rejected(value: object) -> None:
    with pytest.raises(UnsupportedValueTypeError):
        simple(readings={"Vehicle.Speed": [(T0, value)]})


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_an_integer_beyond_int64_is_rejected(value: int) -> None:
    with pytest.raises(InvalidBundleError):
        simple(readings={"Vehicle.Speed": [(T0, value)]})


@pytest.mark.parametrize(
    "name", ["", "Vehicle..Speed", "Vehicle.Speed.", "1Vehicle", "Vehicle Speed"]
)
def test_a_signal_name_that_is_not_a_vss_path_is_rejected(name: str) -> None:
    with pytest.raises(InvalidSignalNameError):
        simple(readings={name: [(T0, 1.0)]})


@pytest.mark.parametrize(
    "overrides",
    [
        {"vehicle_id": -1},
        {"vehicle_id": 2**256},
        {"sequence": 2**64},
        {"sequence": True},
        {"window_end": T0},
        {"device": "0x1234"},
        {"readings": {"Vehicle.Speed": []}},
        {"readings": {"Vehicle.Speed": [(T0, 1.0, 2.0)]}},
        {"readings": {"Vehicle.Speed": [(float(T0), 1.0)]}},
    ],
)
def test_an_invalid_field_is_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidBundleError):
        simple(**overrides)


def test_another_schema_version_is_rejected() -> None:
    unknown = max(SCHEMA_VERSIONS) + 1
    with pytest.raises(UnsupportedSchemaVersionError) as caught:
        simple(schema_version=unknown)
    assert caught.value.version == unknown


def test_a_payload_over_the_size_limit_is_rejected_unparsed() -> None:
    with pytest.raises(BundleTooLargeError):
        decode_bundle(simple().encoding, max_size=10)


def test_a_signed_envelope_with_a_non_canonical_head_is_rejected() -> None:
    wire = encode_signed_bundle(sign_bundle(simple(), KEY, DOMAIN))
    # The signature's length (65) in a two-byte head instead of one.
    bad = wire.replace(b"\x69signature\x58\x41", b"\x69signature\x59\x00\x41")
    with pytest.raises(NonCanonicalEncodingError):
        decode_signed_bundle(bad)


def test_a_signed_envelope_with_extra_keys_is_rejected() -> None:
    with pytest.raises(MalformedBundleError):
        decode_signed_bundle(b"\xa1\x61x\x01")


def test_a_device_given_in_lower_case_is_stored_checksummed() -> None:
    assert simple(device=DEVICE.lower()).device == DEVICE


def test_the_leaf_commits_to_the_signature_through_its_hash() -> None:
    signed = sign_bundle(simple(), KEY, DOMAIN)
    leaf = bundle_leaf(signed)
    assert leaf[-1] == keccak256(signed.signature)
    assert leaf[:-1] == (DEVICE, 7, 1, T0, T0 + 60_000, simple().data_hash)


def test_bundles_that_differ_in_one_reading_have_different_data_hashes() -> None:
    a = simple(readings={"Vehicle.Speed": [(T0, 42.5)]})
    b = simple(readings={"Vehicle.Speed": [(T0, 42.75)]})
    assert a.data_hash != b.data_hash


@given(bundles())
def test_cbor2_canonical_form_equals_ours_so_the_fast_decoder_agrees(bundle: Bundle) -> None:
    import cbor2

    from protocol.bundle import _decode_bundle_fast

    assert cbor2.dumps(_cbor_document(bundle), canonical=True) == bundle.encoding
    fast = _decode_bundle_fast(bundle.encoding)
    assert fast == bundle


def test_the_fast_decoder_leaves_non_canonical_input_to_the_reference_decoder() -> None:
    import cbor2

    from protocol.bundle import NonCanonicalEncodingError, _decode_bundle_fast, decode_bundle

    bundle = Bundle(
        device="0x" + "11" * 20,
        vehicle_id=1,
        sequence=1,
        window_start=1000,
        window_end=2000,
        readings={"Vehicle.Speed": [(1000, 1.5)]},
    )
    # The same data with a float widened to 8 bytes: valid CBOR, not canonical.
    longer = cbor2.dumps(
        {**cbor2.loads(bundle.encoding), "readings": [["Vehicle.Speed", [[1000, 1.5]]]]},
        canonical=False,
    )
    assert longer != bundle.encoding
    assert _decode_bundle_fast(longer) is None
    with pytest.raises(NonCanonicalEncodingError):
        decode_bundle(longer)


@pytest.mark.parametrize(
    ("signal", "samples"),
    [
        ("Vehicle.Speed", [[1000, 1.5], [1000, 2.5]]),  # a repeated timestamp
        ("Vehicle.Speed", [[1500, 1.5], [1200, 2.5]]),  # timestamps out of order
        ("Vehicle.Speed", [[900, 1.5]]),  # before the window
        ("Vehicle.Speed", [[2000, 1.5]]),  # at the window's end
        ("Vehicle.Speed", [[1000, float("nan")]]),
        ("Vehicle.Speed", [[1000, float("inf")], [1001, 2]]),
        ("Vehicle.Speed", [[1000, "a"], [1001, float("-inf")]]),
        ("Vehicle.Speed", [[1000, 2**63]]),  # past int64
        ("Vehicle.Speed", [[1000, 10**400]]),  # past any float
        ("Vehicle.Speed", [[1000, b"\x01"]]),  # a byte string
        ("Vehicle.Speed", [[1000, 1.5, 2]]),  # not a pair
        ("Vehicle.Speed", [(1000, 1.5), {"a": 1, "b": 2}]),  # not a list
        ("Vehicle.Speed", [[1000.0, 1.5]]),  # a float timestamp
        ("Vehicle.Speed", []),
        ("Vehicle..Speed", [[1000, 1.5]]),  # not a signal name
        ("V" * 257, [[1000, 1.5]]),  # too long
    ],
)
def test_the_fast_decoder_refuses_what_the_bundle_rules_refuse(signal: str, samples: Any) -> None:
    import cbor2

    from protocol.bundle import BundleError, _fast_bundle, decode_bundle

    document = {
        "schema": SCHEMA_VERSION,
        "device": bytes.fromhex("11" * 20),
        "vehicleId": 1,
        "sequence": 1,
        "windowStart": 1000,
        "windowEnd": 2000,
        "readings": [[signal, samples]],
    }
    assert _fast_bundle(document) is None
    # The reference decoder, which the wire form then goes to, refuses it too.
    with pytest.raises(BundleError):
        decode_bundle(cbor2.dumps(document, canonical=True))
    # The same readings under two signals in the wrong order are refused as well.
    valid = [[1000, 1.5]]
    document["readings"] = [["Vehicle.Speed", valid], ["Vehicle.Acceleration", valid]]
    assert _fast_bundle(document) is None


def _cbor_document(bundle: Bundle) -> dict[str, Any]:
    """The CBOR data model of `encode_bundle`'s output, for cbor2 to serialise."""
    return {
        "device": bundle.device_bytes,
        "schema": bundle.schema_version,
        "readings": [
            [signal, [[ts, value] for ts, value in samples]]
            for signal, samples in bundle.readings.items()
        ],
        "sequence": bundle.sequence,
        "vehicleId": bundle.vehicle_id,
        "windowEnd": bundle.window_end,
        "windowStart": bundle.window_start,
    }
