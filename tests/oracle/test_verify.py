"""The verification pipeline on the session's anvil: each check and its reason code."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from eth_account import Account
from eth_utils import keccak

from oracle.chainview import DeviceDirectory
from oracle.exceptions import (
    REJECTIONS,
    BadSignature,
    BundleRejected,
    ImplausibleValue,
    MalformedPayload,
    RequestRejected,
    SaltReused,
    TimestampOutsideWindow,
    UnknownDevice,
    UnknownSignal,
    UnpairedDevice,
    UnsupportedSchema,
    WindowInFuture,
    WindowTooOld,
)
from oracle.verify import Verifier, split_body
from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    SCHEMA_SIGNALS,
    SignedBundle,
    bundle_leaf,
    encode_signed_bundle,
    sign_bundle,
)
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain
from protocol.merkle import StandardMerkleTree
from tests.conftest import make_device_key
from tests.oracle.conftest import SOC, SPEED, readings

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def directory(deployment: Deployment, rpc_url: str) -> DeviceDirectory:
    return DeviceDirectory(rpc_url, deployment, ttl_s=0.0)


@pytest.fixture
def verifier(domain: Eip712Domain, directory: DeviceDirectory) -> Verifier:
    return Verifier(domain, directory.lookup)


@pytest.fixture
def paired(
    paired_vehicle: Callable[[int], tuple[int, Any]], chain_now_ms: Callable[[], int]
) -> tuple[int, Any, int]:
    """Vehicle 1 paired with device key 1, and a window start just after the pairing."""
    vehicle, key = paired_vehicle(1)
    return vehicle, key, chain_now_ms() + 1000


def rejection(verifier: Verifier, wire: bytes, now_ms: int) -> BundleRejected:
    with pytest.raises(BundleRejected) as info:
        verifier.verify(wire, now_ms)
    return info.value


def test_a_bundle_from_a_paired_device_verifies_with_its_merkle_leaf(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    signed = make_signed(key, vehicle, 1, start)
    verified = verifier.verify(encode_signed_bundle(signed), start + 20_000)
    tree = StandardMerkleTree.of([bundle_leaf(signed)], BUNDLE_LEAF_ENCODING)
    assert verified.device == key.address
    assert verified.leaf_hash == tree.leaf_hash(bundle_leaf(signed))
    assert verified.odometer is not None
    assert verified.odometer[0] == 1000.0


def test_every_rejection_has_a_stable_reason_and_problem_type() -> None:
    assert set(REJECTIONS) == {
        "malformed-payload",
        "unsupported-schema",
        "salt-reused",
        "bad-signature",
        "unknown-device",
        "unpaired-device",
        "replayed-sequence",
        "implausible-value",
        "timestamp-outside-window",
        "window-in-future",
        "window-too-old",
        "unknown-signal",
    }
    problem = MalformedPayload("x").problem()
    assert problem["type"] == "https://dimo.local/problems/malformed-payload"
    assert problem["status"] == 400
    assert problem["reason"] == "malformed-payload"
    assert isinstance(UnknownDevice("0x0"), LookupError)
    assert isinstance(MalformedPayload("x"), ValueError)


@pytest.mark.parametrize(
    "wire",
    [
        b"\xa0",  # an empty map
        cbor2.dumps({"bundle": b"\xa0", "signature": b"\x00" * 65}),
        cbor2.dumps({"bundle": b"junk", "signature": b"\x00" * 64}),
    ],
    ids=["empty-map", "empty-bundle", "short-signature"],
)
def test_a_payload_that_is_not_a_signed_bundle_is_malformed(
    verifier: Verifier, wire: bytes
) -> None:
    assert isinstance(rejection(verifier, wire, 0), MalformedPayload)


def test_a_non_canonical_encoding_is_malformed(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    signed = make_signed(key, vehicle, 1, start)
    wire = cbor2.dumps({"signature": signed.signature, "bundle": signed.bundle.encoding})
    assert isinstance(rejection(verifier, wire, start), MalformedPayload)


def test_a_bundle_signed_by_another_key_has_a_bad_signature(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    signed = make_signed(key, vehicle, 1, start, signer=make_device_key(99))
    got = rejection(verifier, encode_signed_bundle(signed), start + 20_000)
    assert isinstance(got, BadSignature)
    assert got.reason == "bad-signature"
    assert got.device == key.address


def test_a_bundle_signed_for_another_chain_has_a_bad_signature(
    directory: DeviceDirectory,
    deployment: Deployment,
    paired: tuple[int, Any, int],
    make_signed: Callable[..., Any],
) -> None:
    vehicle, key, start = paired
    signed = make_signed(key, vehicle, 1, start)
    other = dimo_domain(deployment.chain_id + 1, deployment.contract("AttestationAnchor").address)
    got = rejection(Verifier(other, directory.lookup), encode_signed_bundle(signed), start)
    assert isinstance(got, BadSignature)


BUNDLE_TYPES = {
    "Bundle": [
        {"name": "device", "type": "address"},
        {"name": "vehicleId", "type": "uint256"},
        {"name": "sequence", "type": "uint64"},
        {"name": "windowStart", "type": "uint64"},
        {"name": "windowEnd", "type": "uint64"},
        {"name": "dataHash", "type": "bytes32"},
    ]
}


def _outside_window_wire(domain: Eip712Domain, key: Any, vehicle: int, start: int) -> bytes:
    """A bundle with a reading after its window, signed with eth-account (not our code)."""
    inner = cbor2.dumps(
        {
            "device": bytes.fromhex(key.address[2:]),
            "schema": 1,
            "readings": [[SPEED, [[start, 10.0], [start + 60_000, 12.0]]]],
            "sequence": 1,
            "vehicleId": vehicle,
            "windowEnd": start + 10_000,
            "windowStart": start,
        },
        canonical=True,
    )
    message = {
        "device": key.address,
        "vehicleId": vehicle,
        "sequence": 1,
        "windowStart": start,
        "windowEnd": start + 10_000,
        "dataHash": keccak(inner),
    }
    sig = Account.sign_typed_data(key.key, domain.as_dict(), BUNDLE_TYPES, message).signature
    return cbor2.dumps({"bundle": inner, "signature": bytes(sig)}, canonical=True)


def test_a_reading_outside_the_window_is_rejected_after_the_signature_check(
    verifier: Verifier, domain: Eip712Domain, paired: tuple[int, Any, int]
) -> None:
    vehicle, key, start = paired
    got = rejection(verifier, _outside_window_wire(domain, key, vehicle, start), start)
    assert isinstance(got, TimestampOutsideWindow)
    assert got.timestamp == start + 60_000


def test_a_reading_outside_the_window_with_a_forged_signature_is_a_bad_signature(
    verifier: Verifier, domain: Eip712Domain, paired: tuple[int, Any, int]
) -> None:
    vehicle, key, start = paired
    forged = _outside_window_wire(domain, make_device_key(98), vehicle, start)
    # Same content, but claiming device key 1 while signed by key 98.
    doc = cbor2.loads(forged)
    inner = cbor2.loads(doc["bundle"])
    inner["device"] = bytes.fromhex(key.address[2:])
    wire = cbor2.dumps(
        {"bundle": cbor2.dumps(inner, canonical=True), "signature": doc["signature"]},
        canonical=True,
    )
    assert isinstance(rejection(verifier, wire, start), BadSignature)


def test_a_window_ending_more_than_five_minutes_ahead_is_in_the_future(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    wire = encode_signed_bundle(make_signed(key, vehicle, 1, start))
    got = rejection(verifier, wire, start + 10_000 - 300_001)
    assert isinstance(got, WindowInFuture)
    # Exactly five minutes of clock skew is still accepted.
    assert verifier.verify(wire, start + 10_000 - 300_000).sequence == 1


def test_a_window_starting_more_than_seven_days_ago_is_too_old(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    wire = encode_signed_bundle(make_signed(key, vehicle, 1, start))
    assert isinstance(rejection(verifier, wire, start + 7 * DAY_MS + 1), WindowTooOld)


def test_a_signal_outside_the_catalog_is_unknown(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    data = {**readings(start), "Vehicle.Flux.Capacitor": [(start, 1.21)]}
    got = rejection(
        verifier, encode_signed_bundle(make_signed(key, vehicle, 1, start, data=data)), start
    )
    assert isinstance(got, UnknownSignal)
    assert got.signal == "Vehicle.Flux.Capacitor"


@pytest.mark.parametrize(
    ("signal", "value"),
    [(SOC, 100.5), (SOC, -1.0), (SPEED, 400.5)],
    ids=["soc-above-100", "soc-below-0", "speed-above-400"],
)
def test_a_value_outside_its_catalog_range_is_implausible(
    verifier: Verifier,
    paired: tuple[int, Any, int],
    make_signed: Callable[..., Any],
    signal: str,
    value: float,
) -> None:
    vehicle, key, start = paired
    data = {**readings(start), signal: [(start, value)]}
    wire = encode_signed_bundle(make_signed(key, vehicle, 1, start, data=data))
    got = rejection(verifier, wire, start)
    assert isinstance(got, ImplausibleValue)
    assert got.signal == signal


def test_an_odometer_going_back_inside_a_bundle_is_implausible(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    data = {"Vehicle.TraveledDistance": [(start, 1000.0), (start + 1000, 999.9)]}
    wire = encode_signed_bundle(make_signed(key, vehicle, 1, start, data=data))
    assert isinstance(rejection(verifier, wire, start), ImplausibleValue)


def test_a_device_never_minted_is_unknown(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, _, start = paired
    stranger_key = make_device_key(4242)
    got = rejection(
        verifier, encode_signed_bundle(make_signed(stranger_key, vehicle, 1, start)), start
    )
    assert isinstance(got, UnknownDevice)
    assert got.device == stranger_key.address


def test_a_claimed_but_unpaired_device_is_unpaired(
    verifier: Verifier,
    claim: Callable[..., None],
    owner: Any,
    minted_vehicle: int,
    chain_now_ms: Callable[[], int],
    make_signed: Callable[..., Any],
) -> None:
    key = make_device_key(7)
    claim(owner, key)
    start = chain_now_ms()
    got = rejection(
        verifier, encode_signed_bundle(make_signed(key, minted_vehicle, 1, start)), start
    )
    assert isinstance(got, UnpairedDevice)
    assert got.paired_vehicle == 0


def test_a_device_claiming_another_vehicle_is_unpaired(
    verifier: Verifier,
    paired_vehicle: Callable[[int], tuple[int, Any]],
    paired: tuple[int, Any, int],
    make_signed: Callable[..., Any],
) -> None:
    vehicle, key, start = paired
    other_vehicle, _ = paired_vehicle(2)
    wire = encode_signed_bundle(make_signed(key, other_vehicle, 1, start))
    got = rejection(verifier, wire, start)
    assert isinstance(got, UnpairedDevice)
    assert (got.vehicle_id, got.paired_vehicle) == (other_vehicle, vehicle)


def test_a_window_starting_before_the_pairing_is_unpaired(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    before = start - 60_000
    wire = encode_signed_bundle(make_signed(key, vehicle, 1, before))
    got = rejection(verifier, wire, start)
    assert isinstance(got, UnpairedDevice)
    assert got.paired_vehicle == vehicle


def test_an_unpairing_on_chain_is_seen_by_the_next_lookup(
    directory: DeviceDirectory, device_id: Any, owner: Any, paired: tuple[int, Any, int]
) -> None:
    vehicle, key, _ = paired
    assert directory.lookup(key.address).vehicle_id == vehicle
    device_id.unpair(key.address, sender=owner)
    assert directory.lookup(key.address).vehicle_id == 0


def test_a_cached_answer_is_kept_until_the_ttl_passes(
    deployment: Deployment,
    rpc_url: str,
    device_id: Any,
    owner: Any,
    paired: tuple[int, Any, int],
) -> None:
    vehicle, key, _ = paired
    now = [0.0]
    directory = DeviceDirectory(rpc_url, deployment, ttl_s=5.0, clock=lambda: now[0])
    assert directory.lookup(key.address).vehicle_id == vehicle
    device_id.unpair(key.address, sender=owner)
    assert directory.is_fresh([key.address])
    assert directory.lookup(key.address).vehicle_id == vehicle  # from the cache, no RPC
    now[0] = 6.0
    assert not directory.is_fresh([key.address])
    assert directory.lookup(key.address).vehicle_id == 0


def test_a_pairing_after_an_unknown_lookup_is_seen(
    directory: DeviceDirectory,
    paired_vehicle: Callable[[int], tuple[int, Any]],
) -> None:
    key = make_device_key(3)
    assert not directory.lookup(key.address).minted
    vehicle, _ = paired_vehicle(3)
    info = directory.lookup(key.address)
    assert info.minted
    assert info.vehicle_id == vehicle


def test_a_body_is_split_into_its_bundles_or_refused_whole() -> None:
    a, b = cbor2.dumps({"x": 1}), cbor2.dumps({"y": [1, 2]})
    assert split_body(a) == [a]
    assert split_body(cbor2.dumps([{"x": 1}, {"y": [1, 2]}])) == [a, b]
    for bad in (b"", b"not cbor", b"\x82\xa0", cbor2.dumps(5), cbor2.dumps({"x": 1}) + b"\x00"):
        with pytest.raises(RequestRejected) as info:
            split_body(bad)
        assert info.value.status == 400
    with pytest.raises(RequestRejected) as info:
        split_body(cbor2.dumps([{}] * 3), max_items=2)
    assert info.value.status == 413


# ------------------------------------------------------------------------------------------------
# Schema 2 (salted per-signal commitments)
# ------------------------------------------------------------------------------------------------


def _schema2(signed: SignedBundle, key: Any, domain: Eip712Domain, **changes: Any) -> SignedBundle:
    """`signed`'s bundle under schema 2 (fresh salts unless given), signed by `key`."""
    bundle = dataclasses.replace(signed.bundle, schema_version=SCHEMA_SIGNALS, **changes)
    return sign_bundle(bundle, bytes(key.key), domain)


def _rewrapped(document: dict[str, Any], signature: bytes) -> bytes:
    """The wire form of a (changed) bundle document under an existing signature."""
    inner = cbor2.dumps(document, canonical=True)
    return cbor2.dumps({"bundle": inner, "signature": signature}, canonical=True)


def test_a_schema_2_bundle_verifies_with_its_merkle_leaf(
    verifier: Verifier,
    domain: Eip712Domain,
    paired: tuple[int, Any, int],
    make_signed: Callable[..., Any],
) -> None:
    vehicle, key, start = paired
    signed = _schema2(make_signed(key, vehicle, 1, start), key, domain)
    verified = verifier.verify(encode_signed_bundle(signed), start + 20_000)
    assert verified.signed == signed
    assert verified.leaf[5] == signed.bundle.data_hash  # the root of the signal tree
    assert verified.odometer is not None


def test_a_schema_2_bundle_whose_values_changed_after_signing_has_a_bad_signature(
    verifier: Verifier,
    domain: Eip712Domain,
    paired: tuple[int, Any, int],
    make_signed: Callable[..., Any],
) -> None:
    vehicle, key, start = paired
    signed = _schema2(make_signed(key, vehicle, 1, start), key, domain)
    readings = dict(signed.bundle.readings)
    readings[SPEED] = [(ts, 99.5) for ts, _ in readings[SPEED]]
    altered = dataclasses.replace(signed.bundle, readings=readings, salts=signed.bundle.salts)
    got = rejection(verifier, encode_signed_bundle(SignedBundle(altered, signed.signature)), start)
    assert isinstance(got, BadSignature)


def test_a_salt_reused_across_signals_is_refused_as_salt_reused(
    verifier: Verifier,
    domain: Eip712Domain,
    paired: tuple[int, Any, int],
    make_signed: Callable[..., Any],
) -> None:
    vehicle, key, start = paired
    signed = _schema2(make_signed(key, vehicle, 1, start), key, domain)
    doc = cbor2.loads(signed.bundle.encoding)
    doc["readings"][1][1] = doc["readings"][0][1]
    got = rejection(verifier, _rewrapped(doc, signed.signature), start)
    assert isinstance(got, SaltReused)
    assert got.problem()["type"] == "https://dimo.local/problems/salt-reused"
    assert set(got.signals) == {doc["readings"][0][0], doc["readings"][1][0]}


def test_an_unknown_schema_is_refused_as_unsupported_schema(
    verifier: Verifier, paired: tuple[int, Any, int], make_signed: Callable[..., Any]
) -> None:
    vehicle, key, start = paired
    signed = make_signed(key, vehicle, 1, start)
    doc = cbor2.loads(signed.bundle.encoding)
    doc["schema"] = 3
    got = rejection(verifier, _rewrapped(doc, signed.signature), start)
    assert isinstance(got, UnsupportedSchema)
    assert got.problem()["status"] == 400
    assert got.version == 3


def test_a_schema_2_reading_outside_the_window_is_rejected_after_the_signature_check(
    verifier: Verifier, domain: Eip712Domain, paired: tuple[int, Any, int]
) -> None:
    vehicle, key, start = paired
    forged = make_device_key(97)
    for signer, expected in ((key, TimestampOutsideWindow), (forged, BadSignature)):
        salt, samples = bytes(range(32)), [[start, 10.0], [start + 60_000, 12.0]]
        inner = cbor2.dumps(
            {
                "device": bytes.fromhex(key.address[2:]),
                "schema": 2,
                "readings": [[SPEED, salt, samples]],
                "sequence": 1,
                "vehicleId": vehicle,
                "windowEnd": start + 10_000,
                "windowStart": start,
            },
            canonical=True,
        )
        commitment = keccak(salt + cbor2.dumps(samples, canonical=True))
        data_hash = StandardMerkleTree.of([(SPEED, commitment)], ["string", "bytes32"]).root
        message = {
            "device": key.address,
            "vehicleId": vehicle,
            "sequence": 1,
            "windowStart": start,
            "windowEnd": start + 10_000,
            "dataHash": data_hash,
        }
        sig = Account.sign_typed_data(signer.key, domain.as_dict(), BUNDLE_TYPES, message)
        wire = cbor2.dumps({"bundle": inner, "signature": bytes(sig.signature)}, canonical=True)
        assert isinstance(rejection(verifier, wire, start), expected)
