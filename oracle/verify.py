"""The verification pipeline: pure checks that turn received bytes into a verified bundle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import cbor2

from oracle.chainview import DeviceInfo
from oracle.exceptions import (
    BadSignature,
    BundleRejected,
    ImplausibleValue,
    MalformedPayload,
    RequestRejected,
    SaltReused,
    TimestampOutsideWindow,
    UnknownSignal,
    UnsupportedSchema,
    WindowInFuture,
    WindowTooOld,
)
from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    BUNDLE_TYPEHASH,
    MAX_BUNDLE_SIZE,
    SCHEMA_SIGNALS,
    BundleError,
    SaltReusedError,
    SignedBundle,
    TimestampOutsideWindowError,
    UnsupportedSchemaVersionError,
    _decode_document,
    bundle_leaf,
    decode_signed_bundle,
    signal_commitment,
    signals_root,
    verify_bundle,
)
from protocol.crypto import (
    SignatureError,
    checksum_address,
    keccak256,
    recover_address_bytes,
)
from protocol.eip712 import Eip712Domain
from protocol.merkle import leaf_encoder
from protocol.vss import CATALOG

#: The VSS signal whose readings must never go back per vehicle.
ODOMETER: Final = "Vehicle.TraveledDistance"
#: Most bundles one request array may hold.
MAX_BATCH: Final = 1000

_encode_leaf = leaf_encoder(BUNDLE_LEAF_ENCODING)

DeviceLookup = Callable[[str], DeviceInfo]
"""Answers for a checksummed device address (normally `DeviceDirectory.lookup`)."""


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle that passed every stateless check, ready for the journal.

    Attributes:
        signed: The decoded bundle and its signature.
        leaf: The Merkle leaf values (`protocol.bundle.bundle_leaf`).
        leaf_hash: The OpenZeppelin standard leaf hash of `leaf`.
        odometer: `(first km, last km, last timestamp ms)` of the bundle's
            `Vehicle.TraveledDistance` readings in time order, or None without any.
    """

    signed: SignedBundle
    leaf: tuple[str, int, int, int, int, bytes, bytes]
    leaf_hash: bytes
    odometer: tuple[float, float, int] | None

    @property
    def device(self) -> str:
        """The signing device (EIP-55)."""
        return self.signed.bundle.device

    @property
    def sequence(self) -> int:
        """The device's sequence number of this bundle."""
        return self.signed.bundle.sequence


def leaf_hash(signed: SignedBundle) -> bytes:
    """The OpenZeppelin standard Merkle leaf hash of a signed bundle."""
    return keccak256(keccak256(_encode_leaf(bundle_leaf(signed))))


def prepare(signed: SignedBundle) -> VerifiedBundle:
    """Computes what the journal needs of a bundle: its leaf, leaf hash and odometer span.

    Raises:
        ImplausibleValue: the bundle's odometer readings go back in time order.
    """
    odometer: tuple[float, float, int] | None = None
    samples = signed.bundle.readings.get(ODOMETER)
    if samples:
        previous = float(samples[0][1])
        for ts, value in samples:
            if float(value) < previous:
                raise ImplausibleValue(
                    ODOMETER, value, f"the odometer went back from {previous} km at {ts} ms"
                )
            previous = float(value)
        odometer = (float(samples[0][1]), previous, samples[-1][0])
    leaf = bundle_leaf(signed)
    return VerifiedBundle(signed, leaf, keccak256(keccak256(_encode_leaf(leaf))), odometer)


# --------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------


def _skip(data: bytes, pos: int) -> int:
    """Returns the offset just past the CBOR data item starting at `pos` (definite lengths)."""
    pending = 1
    end = len(data)
    while pending:
        pending -= 1
        if pos >= end:
            raise ValueError("truncated CBOR")
        initial = data[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if info < 24:
            arg = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > end:
                raise ValueError("truncated CBOR")
            arg = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        else:
            raise ValueError(f"unsupported CBOR additional information {info} (indefinite?)")
        if major in (2, 3):
            pos += arg
            if pos > end:
                raise ValueError("truncated CBOR string")
        elif major == 4:
            pending += arg
        elif major == 5:
            pending += 2 * arg
        elif major == 6:
            pending += 1
    return pos


def split_body(body: bytes, *, max_items: int = MAX_BATCH) -> list[bytes]:
    """Splits an ingest request body into the wire forms of its signed bundles.

    Args:
        body: One wire-form signed bundle (a CBOR map) or a CBOR array of them.
        max_items: Most bundles an array may hold.

    Returns:
        The raw bytes of each bundle, in order (not decoded yet).

    Raises:
        RequestRejected: the body is empty, not well-formed CBOR, neither a map nor an array,
            or an array longer than `max_items`.
    """
    if not body:
        raise RequestRejected(
            400, "malformed-payload", "Malformed request", "the body is empty; send CBOR"
        )
    major = body[0] >> 5
    try:
        if major == 5:
            if _skip(body, 0) != len(body):
                raise ValueError("trailing bytes after the bundle")
            return [body]
        if major != 4:
            raise RequestRejected(
                400,
                "malformed-payload",
                "Malformed request",
                "the body must be a CBOR map (one signed bundle) or an array of them",
            )
        info = body[0] & 0x1F
        if info < 24:
            count, pos = info, 1
        elif info <= 27:
            size = 1 << (info - 24)
            count, pos = int.from_bytes(body[1 : 1 + size], "big"), 1 + size
        else:
            raise ValueError("indefinite-length arrays are not accepted")
        if count > max_items:
            raise RequestRejected(
                413,
                "too-many-bundles",
                "Too many bundles",
                f"the array holds {count} bundles; send at most {max_items} per request",
            )
        items: list[bytes] = []
        for _ in range(count):
            end = _skip(body, pos)
            items.append(body[pos:end])
            pos = end
        if pos != len(body):
            raise ValueError("trailing bytes after the array")
        return items
    except ValueError as exc:
        if isinstance(exc, RequestRejected):
            raise
        raise RequestRejected(
            400, "malformed-payload", "Malformed request", f"the body is not CBOR: {exc}"
        ) from None


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def _document_data_hash(doc: dict[str, Any], inner: bytes) -> bytes:
    """The `dataHash` of a decoded bundle document, by its schema (see docs/protocol.md)."""
    if doc.get("schema") != SCHEMA_SIGNALS:
        return keccak256(inner)
    commitments: dict[str, bytes] = {}
    for name, salt, samples in doc["readings"]:
        if not isinstance(name, str) or not isinstance(salt, bytes):
            raise TypeError("a schema-2 readings entry is [name, salt, samples]")
        commitments[name] = signal_commitment(salt, cbor2.dumps(samples, canonical=True))
    return signals_root(commitments)


def _signer_ok(inner: Any, signature: Any, domain: Eip712Domain) -> bool:
    """Whether `signature` is the device's over a bundle whose content fails validation."""
    if not isinstance(inner, bytes) or not isinstance(signature, bytes):
        return False
    doc = _decode_document(inner, MAX_BUNDLE_SIZE)
    device = doc.get("device") if isinstance(doc, dict) else None
    fields = [doc.get(k) for k in ("vehicleId", "sequence", "windowStart", "windowEnd")]
    if not isinstance(device, bytes) or len(device) != 20:
        return False
    if not all(type(v) is int and 0 <= v < 2**256 for v in fields):
        return False
    try:
        data_hash = _document_data_hash(doc, inner)
    except (TypeError, ValueError, BundleError):
        return False
    struct_hash = keccak256(
        BUNDLE_TYPEHASH
        + bytes(12)
        + device
        + b"".join(int(v).to_bytes(32, "big") for v in fields)
        + data_hash
    )
    try:
        return recover_address_bytes(domain.digest(struct_hash), signature) == device
    except SignatureError:
        return False


class Verifier:
    """Runs the stateless checks, in order, on one received bundle.

    1. decode (`malformed-payload`); 2. signature (`bad-signature`); 3. reading timestamps
    inside the window (`timestamp-outside-window`); 4. window not in the future
    (`window-in-future`) nor too old (`window-too-old`); 5. catalog and plausibility
    (`unknown-signal`, `implausible-value`); 6. device minted (`unknown-device`) and paired to
    the claimed vehicle since the window's start (`unpaired-device`).

    The journal then checks sequence and odometer against accepted state.
    """

    def __init__(
        self,
        domain: Eip712Domain,
        lookup: DeviceLookup,
        *,
        max_future_ms: int = 300_000,
        max_age_ms: int = 7 * 24 * 3600 * 1000,
        max_bundle_size: int = MAX_BUNDLE_SIZE,
    ) -> None:
        """Builds a verifier.

        Args:
            domain: The DIMO domain of this chain's AttestationAnchor.
            lookup: Device answers; must not make RPCs on the hot path (see `DeviceDirectory`).
            max_future_ms: How far past now a window may end.
            max_age_ms: How far before now a window may start.
            max_bundle_size: Largest encoded bundle accepted, in bytes.
        """
        self.domain = domain
        self.lookup = lookup
        self.max_future_ms = max_future_ms
        self.max_age_ms = max_age_ms
        self.max_bundle_size = max_bundle_size

    def decode(self, wire: bytes) -> SignedBundle:
        """Decodes and checks the signature (steps 1-3).

        Raises:
            MalformedPayload: not a canonical wire-form signed bundle.
            BadSignature: the signature is not the device's in this domain.
            TimestampOutsideWindow: a reading lies outside the window (signature valid).
        """
        try:
            signed = decode_signed_bundle(wire, max_size=self.max_bundle_size)
        except TimestampOutsideWindowError as exc:
            envelope = _decode_document(wire, self.max_bundle_size + 128)
            device = "unknown"
            inner = envelope.get("bundle") if isinstance(envelope, dict) else None
            if isinstance(inner, bytes):
                doc = _decode_document(inner, self.max_bundle_size)
                raw = doc.get("device") if isinstance(doc, dict) else None
                if isinstance(raw, bytes) and len(raw) == 20:
                    device = checksum_address(raw)
            if not (
                isinstance(envelope, dict)
                and _signer_ok(inner, envelope.get("signature"), self.domain)
            ):
                raise BadSignature(device, "the signature does not recover to the device") from None
            raise TimestampOutsideWindow(
                exc.signal, exc.timestamp, exc.window_start, exc.window_end
            ) from None
        except UnsupportedSchemaVersionError as exc:
            raise UnsupportedSchema(exc.version, exc.supported) from None
        except SaltReusedError as exc:
            raise SaltReused(exc.signals) from None
        except (BundleError, SignatureError) as exc:
            raise MalformedPayload(str(exc)) from None
        try:
            verify_bundle(signed, self.domain)
        except SignatureError as exc:
            raise BadSignature(signed.bundle.device, str(exc)) from None
        return signed

    def check(self, signed: SignedBundle, now_ms: int | None = None) -> VerifiedBundle:
        """Runs steps 4-6 on a decoded, signature-checked bundle.

        Raises:
            WindowInFuture, WindowTooOld, UnknownSignal, ImplausibleValue, UnknownDevice,
            UnpairedDevice: see the class docstring.
        """
        bundle = signed.bundle
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if bundle.window_end > now + self.max_future_ms:
            raise WindowInFuture(bundle.window_end, now, self.max_future_ms)
        if bundle.window_start < now - self.max_age_ms:
            raise WindowTooOld(bundle.window_start, now, self.max_age_ms)
        for signal, samples in bundle.readings.items():
            entry = CATALOG.get(signal)
            if entry is None:
                raise UnknownSignal(signal)
            if entry.all_plausible([value for _, value in samples]):
                continue
            check = entry.plausibility_error
            for _, value in samples:
                why = check(value)
                if why is not None:
                    raise ImplausibleValue(signal, value, why)
        verified = prepare(signed)
        self.lookup(bundle.device).check(bundle.vehicle_id, bundle.window_start)
        return verified

    def verify(self, wire: bytes, now_ms: int | None = None) -> VerifiedBundle:
        """Runs every check on the wire form of one signed bundle.

        Raises:
            BundleRejected: the subclass naming the first check that failed.
        """
        return self.check(self.decode(wire), now_ms)


def verify_all(
    verifier: Verifier, items: list[bytes], now_ms: int | None = None
) -> list[VerifiedBundle | BundleRejected]:
    """Verifies each wire-form bundle, returning the verified bundle or its rejection."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out: list[VerifiedBundle | BundleRejected] = []
    for wire in items:
        try:
            out.append(verifier.verify(wire, now))
        except BundleRejected as rejection:
            out.append(rejection)
    return out
