"""The signed telemetry bundle: canonical CBOR encoding, EIP-712 signature and Merkle leaf."""

from __future__ import annotations

import math
import operator
import re
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Final

try:  # C-accelerated CBOR for the decode hot path; the pure-Python codec is the reference.
    import cbor2 as _cbor2
except ImportError:  # pragma: no cover
    _cbor2 = None  # type: ignore[assignment]

from protocol.crypto import (
    AddressError,
    InvalidSignerError,
    MalformedSignatureError,
    address_bytes,
    checksum_address,
    double_keccak256_many,
    keccak256,
    recover_address_bytes,
    sign_digest,
)
from protocol.eip712 import EIP712_DOMAIN_FIELDS, Eip712Domain, type_hash
from protocol.exceptions import ProtocolError
from protocol.merkle import root_of_leaf_hashes

__all__ = [
    "BUNDLE_EIP712_FIELDS",
    "BUNDLE_LEAF_ENCODING",
    "BUNDLE_LEAF_FIELDS",
    "BUNDLE_TYPE",
    "BUNDLE_TYPEHASH",
    "MAX_BUNDLE_SIZE",
    "SALT_SIZE",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "SIGNAL_LEAF_ENCODING",
    "Bundle",
    "BundleError",
    "BundleTooLargeError",
    "CommitmentMismatchError",
    "DuplicateTimestampError",
    "InvalidBundleError",
    "InvalidSignalNameError",
    "MalformedBundleError",
    "NonCanonicalEncodingError",
    "NonFiniteValueError",
    "Reading",
    "ReadingValue",
    "SaltReusedError",
    "SignedBundle",
    "TimestampOutsideWindowError",
    "UnsupportedSchemaVersionError",
    "UnsupportedValueTypeError",
    "bundle_digest",
    "bundle_leaf",
    "bundle_struct_hash",
    "bundle_typed_data",
    "decode_bundle",
    "decode_signed_bundle",
    "encode_bundle",
    "encode_samples",
    "encode_signed_bundle",
    "leaf_signer",
    "new_salt",
    "sign_bundle",
    "signal_commitment",
    "signal_leaf_hash",
    "signals_root",
    "verify_bundle",
]

SCHEMA_VERSION: Final = 1
"""Schema 1: `dataHash` is the Keccak-256 of the whole encoding (values included)."""
SCHEMA_SIGNALS: Final = 2
"""Schema 2: `dataHash` is the root of a tree of salted per-signal commitments."""
SCHEMA_VERSIONS: Final = (SCHEMA_VERSION, SCHEMA_SIGNALS)
"""The schemas this code reads and writes."""
SALT_SIZE: Final = 32
"""Bytes of secret salt per signal and bundle (schema 2)."""
SIGNAL_LEAF_ENCODING: Final = ("string", "bytes32")
"""ABI types of a schema-2 signal leaf `(name, commitment)` in the bundle's signal tree."""
MAX_BUNDLE_SIZE: Final = 4 * 1024 * 1024
"""Largest encoded bundle `decode_bundle` accepts by default, in bytes."""

UINT64_MAX: Final = 2**64 - 1
UINT256_MAX: Final = 2**256 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_SIGNAL_NAME: Final = 256
_SIGNAL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")

ReadingValue = float | int | bool | str
"""A sample's value: a finite float, an int64, a bool or a text string."""
Reading = tuple[int, ReadingValue]
"""One sample: (unix time in ms, value)."""

# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


class BundleError(ProtocolError):
    """Root of the errors about bundles."""


class InvalidBundleError(BundleError, ValueError):
    """A bundle field breaks the format's rules."""

    def __init__(self, field_name: str, reason: str) -> None:
        self.field = field_name
        self.reason = reason
        super().__init__(f"invalid bundle field {field_name}: {reason}")


class InvalidSignalNameError(InvalidBundleError):
    """A signal name is not a dotted VSS path such as `Vehicle.Speed`."""

    def __init__(self, signal: object) -> None:
        self.signal = signal
        super().__init__(
            "readings",
            f"signal name {signal!r} is not a VSS path; use dot-separated segments of letters, "
            f"digits and '_' (at most {MAX_SIGNAL_NAME} characters), e.g. 'Vehicle.Speed'",
        )


class NonFiniteValueError(InvalidBundleError):
    """A float reading is NaN or infinite."""

    def __init__(self, signal: str, timestamp: int, value: float) -> None:
        self.signal = signal
        self.timestamp = timestamp
        self.value = value
        super().__init__(
            "readings",
            f"{signal} at {timestamp} is {value!r}; NaN and infinities are not readings, drop "
            "the sample (or send a separate status signal) instead",
        )


class DuplicateTimestampError(InvalidBundleError):
    """A signal has two samples with the same timestamp."""

    def __init__(self, signal: str, timestamp: int) -> None:
        self.signal = signal
        self.timestamp = timestamp
        super().__init__(
            "readings",
            f"{signal} has two samples at {timestamp} ms; keep one sample per signal and "
            "millisecond",
        )


class TimestampOutsideWindowError(InvalidBundleError):
    """A sample's timestamp lies outside `[window_start, window_end)`."""

    def __init__(self, signal: str, timestamp: int, window_start: int, window_end: int) -> None:
        self.signal = signal
        self.timestamp = timestamp
        self.window_start = window_start
        self.window_end = window_end
        super().__init__(
            "readings",
            f"{signal} at {timestamp} ms is outside the window [{window_start}, {window_end}); "
            "put the sample in the bundle of the window that contains it",
        )


class SaltReusedError(InvalidBundleError):
    """Two signals of one schema-2 bundle carry the same salt, or a salt is not 32 bytes."""

    def __init__(self, signals: tuple[str, ...], reason: str) -> None:
        self.signals = signals
        super().__init__(
            "salts",
            f"{reason} ({', '.join(signals)}); draw {SALT_SIZE} fresh random bytes per signal "
            "and bundle (`new_salt()`)",
        )


class CommitmentMismatchError(BundleError, ValueError):
    """Per-signal commitments (or an opened signal) do not lead to the signed `dataHash`."""

    def __init__(self, what: str, expected: bytes, found: bytes) -> None:
        self.what = what
        self.expected = expected
        self.found = found
        super().__init__(
            f"{what} lead to 0x{found.hex()}, not the signed dataHash 0x{expected.hex()}; the "
            "commitments or the opening were altered after the device signed"
        )


class UnsupportedValueTypeError(BundleError, TypeError):
    """A reading value is not a float, int, bool or str."""

    def __init__(self, signal: str, timestamp: object, value: object) -> None:
        self.signal = signal
        self.timestamp = timestamp
        self.value = value
        super().__init__(
            f"{signal} at {timestamp!r} has a value of type {type(value).__name__}; readings "
            "hold float, int (int64), bool or str only"
        )


class MalformedBundleError(BundleError, ValueError):
    """Bytes are not a bundle in the canonical encoding."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        where = "" if offset is None else f" at byte {offset}"
        super().__init__(
            f"malformed bundle payload{where}: {reason}; produce it with `encode_bundle` or a "
            "deterministic CBOR encoder following docs/protocol.md"
        )


class NonCanonicalEncodingError(MalformedBundleError):
    """Well-formed CBOR holding a valid bundle, but not in the one canonical form."""

    def __init__(self, offset: int) -> None:
        super().__init__(
            "valid CBOR but not the canonical encoding (shortest heads and floats, no "
            "indefinite lengths, sorted keys, readings and samples); re-encode before signing",
            offset,
        )


class BundleTooLargeError(MalformedBundleError):
    """An encoded bundle exceeds the size limit."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{size} bytes exceed the limit of {limit}; use shorter windows")


class UnsupportedSchemaVersionError(BundleError, ValueError):
    """A bundle declares a schema version this code does not speak."""

    def __init__(self, version: object, supported: tuple[int, ...] = SCHEMA_VERSIONS) -> None:
        self.version = version
        self.supported = supported
        super().__init__(
            f"bundle schema version {version!r} is not supported (this build speaks "
            f"{', '.join(map(str, supported))}); upgrade the receiver or have the device emit "
            f"version {max(supported)}"
        )


# ------------------------------------------------------------------------------------------------
# Canonical CBOR (RFC 8949 section 4.2.1, core deterministic encoding)
# ------------------------------------------------------------------------------------------------


def _head(major: int, n: int) -> bytes:
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


def _text(s: str) -> bytes:
    raw = s.encode("utf-8")
    return _head(3, len(raw)) + raw


def _float(x: float) -> bytes:
    # Preferred serialization: the shortest of binary16/32/64 that holds x exactly.
    try:
        half = struct.pack(">e", x)
        if struct.unpack(">e", half)[0] == x:
            return b"\xf9" + half
    except OverflowError:
        pass
    try:
        single = struct.pack(">f", x)
        if struct.unpack(">f", single)[0] == x:
            return b"\xfa" + single
    except OverflowError:
        pass
    return b"\xfb" + struct.pack(">d", x)


def _big_uint(n: int) -> bytes:
    if n <= UINT64_MAX:
        return _head(0, n)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\xc2" + _head(2, len(raw)) + raw


def _value(v: ReadingValue) -> bytes:
    # bool before int: bool is a subclass of int.
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, float):
        return _float(v)
    return _text(v)


def encode_samples(samples: Sequence[Reading]) -> bytes:
    """Return the canonical CBOR of one signal's samples, `[[timestamp, value], ...]`.

    This is the array exactly as it appears inside the bundle's encoding; a schema-2
    commitment hashes it behind the signal's salt.
    """
    parts = [_head(4, len(samples))]
    for ts, value in samples:
        parts += (b"\x82", _head(0, ts), _value(value))
    return b"".join(parts)


def _fast_samples_encoding(samples: Sequence[Reading]) -> bytes:
    # cbor2's canonical form equals `encode_samples` for valid samples (a property test checks).
    if _cbor2 is None:  # pragma: no cover
        return encode_samples(samples)
    return _cbor2.dumps(samples, canonical=True)


def new_salt() -> bytes:
    """Return a fresh secret salt: 32 bytes from the OS's CSPRNG."""
    return secrets.token_bytes(SALT_SIZE)


def signal_commitment(salt: bytes, samples_encoding: bytes) -> bytes:
    """Return a schema-2 signal commitment, `keccak256(salt || samples_encoding)`.

    Args:
        salt: The signal's 32-byte secret salt in this bundle.
        samples_encoding: `encode_samples(samples)`.
    """
    return keccak256(salt + samples_encoding)


def _signal_leaf_abi(name: str, commitment: bytes) -> bytes:
    # abi.encode(string name, bytes32 commitment): offset, commitment, length, padded bytes.
    raw = name.encode("utf-8")
    return b"".join(
        (
            _WORD_0x40,
            commitment,
            len(raw).to_bytes(32, "big"),
            raw,
            bytes(-len(raw) % 32),
        )
    )


_WORD_0x40: Final = (0x40).to_bytes(32, "big")


def signal_leaf_hash(name: str, commitment: bytes) -> bytes:
    """Return the OpenZeppelin standard leaf hash of a signal leaf `(name, commitment)`."""
    return keccak256(keccak256(_signal_leaf_abi(name, commitment)))


def signals_root(commitments: Mapping[str, bytes]) -> bytes:
    """Return the root of a bundle's signal tree: its schema-2 `dataHash`.

    Args:
        commitments: Signal name -> commitment, every signal of the bundle.

    Returns:
        The root of `StandardMerkleTree.of([(name, commitment), ...], SIGNAL_LEAF_ENCODING)`.
    """
    return root_of_leaf_hashes(
        double_keccak256_many([_signal_leaf_abi(n, c) for n, c in commitments.items()])
    )


_KEYS: Final = ("device", "schema", "readings", "sequence", "vehicleId", "windowEnd", "windowStart")
# Core deterministic order sorts keys by their encoded bytes (shorter first, then bytewise).
assert list(_KEYS) == sorted(_KEYS, key=_text)
_K: Final = {k: _text(k) for k in _KEYS}
_KEY_SET: Final = frozenset(_KEYS)
_SIGNED_KEYS: Final = ("bundle", "signature")
assert list(_SIGNED_KEYS) == sorted(_SIGNED_KEYS, key=_text)


class _Reader:
    """A strict CBOR reader for the subset bundles use; canonical form is checked afterwards."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, reason: str) -> MalformedBundleError:
        return MalformedBundleError(reason, self.pos)

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise self.fail("truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def head(self) -> tuple[int, int, int]:
        start = self.pos
        (initial,) = self.take(1)
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            return major, info, int.from_bytes(self.take(1 << (info - 24)), "big")
        self.pos = start
        raise self.fail("indefinite lengths and reserved additional information are not allowed")

    def item(self, depth: int = 0) -> Any:
        if depth > 6:
            raise self.fail("nesting deeper than the bundle format allows")
        start = self.pos
        major, info, arg = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            raw = self.take(arg)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                self.pos = start
                raise self.fail("text string is not valid UTF-8") from None
        if major in (4, 5):
            if arg > len(self.data) - self.pos:
                raise self.fail(f"declares {arg} items, more than the bytes left")
            if major == 4:
                return [self.item(depth + 1) for _ in range(arg)]
            out: dict[str, Any] = {}
            for _ in range(arg):
                key_at = self.pos
                key = self.item(depth + 1)
                if not isinstance(key, str) or key in out:
                    self.pos = key_at
                    raise self.fail("map keys must be distinct text strings")
                out[key] = self.item(depth + 1)
            return out
        if major == 6:
            if arg != 2:
                self.pos = start
                raise self.fail(f"tag {arg} is not allowed (only tag 2, unsigned bignum)")
            raw = self.item(depth + 1)
            if not isinstance(raw, bytes):
                raise self.fail("tag 2 must wrap a byte string")
            return int.from_bytes(raw, "big")
        # major 7: simple values and floats
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 25:
            return float(struct.unpack(">e", arg.to_bytes(2, "big"))[0])
        if info == 26:
            return float(struct.unpack(">f", arg.to_bytes(4, "big"))[0])
        if info == 27:
            return float(struct.unpack(">d", arg.to_bytes(8, "big"))[0])
        self.pos = start
        raise self.fail("only false, true and floats are allowed among simple values")


def _first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _decode_document(data: bytes, max_size: int) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedBundleError(f"expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > max_size:
        raise BundleTooLargeError(len(raw), max_size)
    reader = _Reader(raw)
    obj = reader.item()
    if reader.pos != len(raw):
        raise reader.fail("trailing bytes after the bundle")
    return obj


# ------------------------------------------------------------------------------------------------
# The bundle
# ------------------------------------------------------------------------------------------------


def _uint(name: str, value: object, maximum: int) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        bits = maximum.bit_length()
        raise InvalidBundleError(
            name, f"{value!r} is not a uint{bits} (an int in [0, 2**{bits} - 1])"
        )
    return value


def _normalise_value(signal: str, ts: int, value: object) -> ReadingValue:
    if type(value) is float:  # the common case, checked first
        if not math.isfinite(value):
            raise NonFiniteValueError(signal, ts, value)
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidBundleError(
                "readings", f"{signal} at {ts}: integer {value} does not fit int64; send a float"
            )
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NonFiniteValueError(signal, ts, float(value))
        return float(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidBundleError(
                "readings", f"{signal} at {ts}: text has lone surrogates (not valid UTF-8)"
            ) from None
        return str(value)
    raise UnsupportedValueTypeError(signal, ts, value)


def _normalise_readings(
    readings: Mapping[str, Sequence[Reading]], window_start: int, window_end: int
) -> MappingProxyType[str, tuple[Reading, ...]]:
    if not isinstance(readings, Mapping):
        raise InvalidBundleError("readings", "expected a mapping of signal name to samples")
    out: dict[str, tuple[Reading, ...]] = {}
    # Names are ASCII (checked below), so str order is UTF-8 byte order.
    for signal in sorted(readings, key=lambda s: s if isinstance(s, str) else ""):
        if (
            not isinstance(signal, str)
            or len(signal) > MAX_SIGNAL_NAME
            or not _SIGNAL_RE.fullmatch(signal)
        ):
            raise InvalidSignalNameError(signal)
        samples = readings[signal]
        if (
            type(samples) not in (list, tuple)
            and (isinstance(samples, str | bytes) or not isinstance(samples, Sequence))
        ) or not samples:
            raise InvalidBundleError("readings", f"{signal} must have a non-empty list of samples")
        normalised: list[Reading] = []
        for sample in samples:
            # Exact list/tuple first: the ABC check is slow on the ingest hot path.
            if (
                type(sample) not in (list, tuple)
                and (not isinstance(sample, Sequence) or isinstance(sample, str))
            ) or len(sample) != 2:
                raise InvalidBundleError(
                    "readings", f"{signal}: sample {sample!r} is not (ts, value)"
                )
            ts, value = sample
            if type(ts) is not int or not 0 <= ts <= UINT64_MAX:
                raise InvalidBundleError(
                    "readings", f"{signal}: timestamp {ts!r} is not a uint64 ms"
                )
            if not window_start <= ts < window_end:
                raise TimestampOutsideWindowError(signal, ts, window_start, window_end)
            normalised.append((ts, _normalise_value(signal, ts, value)))
        normalised.sort(key=lambda r: r[0])
        for previous, current in pairwise(normalised):
            if previous[0] == current[0]:
                raise DuplicateTimestampError(signal, current[0])
        out[signal] = tuple(normalised)
    return MappingProxyType(out)


def _normalise_salts(
    salts: Mapping[str, bytes] | None, readings: Mapping[str, Sequence[Reading]]
) -> MappingProxyType[str, bytes]:
    if not readings:
        raise InvalidBundleError("readings", "a schema-2 bundle commits to at least one signal")
    if salts is None:
        return MappingProxyType({name: new_salt() for name in readings})
    if not isinstance(salts, Mapping) or set(salts) != set(readings):
        raise InvalidBundleError("salts", "give exactly one salt for each signal of the readings")
    out: dict[str, bytes] = {}
    seen: dict[bytes, str] = {}
    for name in readings:
        salt = salts[name]
        if not isinstance(salt, bytes | bytearray) or len(salt) != SALT_SIZE:
            raise InvalidBundleError("salts", f"the salt of {name} is not {SALT_SIZE} bytes")
        salt = bytes(salt)
        if salt in seen:
            raise SaltReusedError((seen[salt], name), "one salt is used by two signals")
        seen[salt] = name
        out[name] = salt
    return MappingProxyType(out)


@dataclass(frozen=True)
class Bundle:
    """The telemetry one device signs for one time window.

    Construction validates and normalises: the device address is checksummed, readings are
    sorted by signal name then timestamp, and any rule break raises a `BundleError`.

    Attributes:
        device: The device's address (EIP-55).
        vehicle_id: The vehicle's token id (uint256).
        sequence: Strictly increasing per device (uint64).
        window_start: Start of the window, unix ms, inclusive (uint64).
        window_end: End of the window, unix ms, exclusive (uint64, > window_start).
        readings: VSS signal name -> samples `(timestamp_ms, value)`, each timestamp in the
            window and unique within its signal.
        schema_version: `SCHEMA_VERSION` (1) or `SCHEMA_SIGNALS` (2, salted per-signal
            commitments).
        salts: Schema 2 only: signal name -> its secret 32-byte salt in this bundle, one per
            signal, all distinct; fresh random salts when omitted. None for schema 1.
    """

    device: str
    vehicle_id: int
    sequence: int
    window_start: int
    window_end: int
    readings: Mapping[str, Sequence[Reading]] = field(default_factory=dict, hash=False)
    schema_version: int = SCHEMA_VERSION
    salts: Mapping[str, bytes] | None = field(default=None, hash=False, repr=False)

    def __post_init__(self) -> None:
        if type(self.schema_version) is not int or self.schema_version not in SCHEMA_VERSIONS:
            raise UnsupportedSchemaVersionError(self.schema_version)
        try:
            raw = address_bytes(self.device)
        except AddressError as exc:
            raise InvalidBundleError("device", exc.reason) from exc
        object.__setattr__(self, "device", checksum_address(raw))
        self.__dict__["device_bytes"] = raw
        _uint("vehicle_id", self.vehicle_id, UINT256_MAX)
        _uint("sequence", self.sequence, UINT64_MAX)
        _uint("window_start", self.window_start, UINT64_MAX)
        _uint("window_end", self.window_end, UINT64_MAX)
        if self.window_end <= self.window_start:
            raise InvalidBundleError(
                "window_end",
                f"{self.window_end} is not after window_start {self.window_start}; windows are "
                "[start, end) in unix ms",
            )
        readings = _normalise_readings(self.readings, self.window_start, self.window_end)
        object.__setattr__(self, "readings", readings)
        if self.schema_version == SCHEMA_SIGNALS:
            object.__setattr__(self, "salts", _normalise_salts(self.salts, readings))
        elif self.salts is not None:
            raise InvalidBundleError("salts", "a schema-1 bundle has no salts; pass None")

    @cached_property
    def device_bytes(self) -> bytes:
        """The device address as 20 raw bytes."""
        return address_bytes(self.device)

    @cached_property
    def encoding(self) -> bytes:
        """The canonical CBOR encoding (see docs/protocol.md); what `data_hash` commits to."""
        return encode_bundle(self)

    @cached_property
    def commitments(self) -> Mapping[str, bytes]:
        """Schema 2: signal name -> `keccak256(salt || encode_samples(samples))`; empty for 1."""
        salts = self.salts
        if salts is None:
            return MappingProxyType({})
        return MappingProxyType(
            {
                name: keccak256(salts[name] + _fast_samples_encoding(samples))
                for name, samples in self.readings.items()
            }
        )

    @cached_property
    def data_hash(self) -> bytes:
        """The `dataHash` of the EIP-712 `Bundle` struct.

        Schema 1: `keccak256(encoding)`. Schema 2: the root of the signal tree over
        `(name, commitment)` (see `signals_root`).
        """
        if self.schema_version == SCHEMA_SIGNALS:
            return signals_root(self.commitments)
        return keccak256(self.encoding)

    @property
    def reading_count(self) -> int:
        """The number of samples across all signals."""
        return sum(len(samples) for samples in self.readings.values())


def encode_bundle(bundle: Bundle) -> bytes:
    """Return the canonical CBOR encoding of a bundle.

    Args:
        bundle: A validated bundle.

    Returns:
        The bytes whose Keccak-256 is the bundle's `dataHash`.
    """
    parts = [
        b"\xa7",
        _K["device"],
        b"\x54",  # byte string of 20
        bundle.device_bytes,
        _K["schema"],
        _head(0, bundle.schema_version),
        _K["readings"],
        _head(4, len(bundle.readings)),
    ]
    append = parts.append
    salts = bundle.salts
    for signal, samples in bundle.readings.items():
        if salts is None:
            append(b"\x82")
            append(_text(signal))
        else:
            append(b"\x83")
            append(_text(signal))
            append(b"\x58\x20")  # byte string of 32
            append(salts[signal])
        append(_head(4, len(samples)))
        for ts, value in samples:
            append(b"\x82")
            append(_head(0, ts))
            append(_value(value))
    parts += [
        _K["sequence"],
        _head(0, bundle.sequence),
        _K["vehicleId"],
        _big_uint(bundle.vehicle_id),
        _K["windowEnd"],
        _head(0, bundle.window_end),
        _K["windowStart"],
        _head(0, bundle.window_start),
    ]
    return b"".join(parts)


def _check_canonical(raw: bytes, again: bytes) -> None:
    if again != raw:
        raise NonCanonicalEncodingError(_first_difference(raw, again))


def _bundle_from_document(obj: Any) -> Bundle:
    if not isinstance(obj, dict):
        raise MalformedBundleError("the top level must be a map")
    if "schema" not in obj:
        raise MalformedBundleError("the 'schema' key is missing")
    schema = obj["schema"]
    if type(schema) is not int or schema not in SCHEMA_VERSIONS:
        raise UnsupportedSchemaVersionError(schema)
    width = 3 if schema == SCHEMA_SIGNALS else 2
    if set(obj) != set(_KEYS):
        raise MalformedBundleError(f"keys {sorted(obj)} differ from {sorted(_KEYS)}")
    device = obj["device"]
    if not isinstance(device, bytes) or len(device) != 20:
        raise MalformedBundleError("'device' must be a byte string of 20")
    entries = obj["readings"]
    if not isinstance(entries, list):
        raise MalformedBundleError("'readings' must be an array of [signal, samples]")
    readings: dict[str, list[Reading]] = {}
    salts: dict[str, bytes] | None = {} if width == 3 else None
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == width and isinstance(entry[0], str)):
            raise MalformedBundleError(
                "each readings entry must be [signal name, salt, [samples]]"
                if width == 3
                else "each readings entry must be [signal name, [samples]]"
            )
        signal, samples = entry[0], entry[-1]
        if salts is not None:
            if not isinstance(entry[1], bytes):
                raise MalformedBundleError(f"the salt of {signal!r} must be a byte string")
            if signal not in salts:
                salts[signal] = entry[1]
        if signal in readings:
            raise MalformedBundleError(f"signal {signal!r} appears twice")
        if not isinstance(samples, list) or not all(
            isinstance(s, list) and len(s) == 2 for s in samples
        ):
            raise MalformedBundleError(f"samples of {signal!r} must be [[timestamp, value], ...]")
        readings[signal] = [(s[0], s[1]) for s in samples]
    return Bundle(
        device=checksum_address(device),
        vehicle_id=obj["vehicleId"],
        sequence=obj["sequence"],
        window_start=obj["windowStart"],
        window_end=obj["windowEnd"],
        readings=readings,
        schema_version=schema,
        salts=salts,
    )


def decode_bundle(data: bytes, *, max_size: int = MAX_BUNDLE_SIZE) -> Bundle:
    """Decode and validate a canonically encoded bundle.

    Args:
        data: The bytes of `encode_bundle`.
        max_size: Reject longer payloads without parsing them.

    Returns:
        The bundle; its `encoding` is `data`.

    Raises:
        MalformedBundleError: not CBOR, not the bundle's shape, or not canonical
            (`NonCanonicalEncodingError`), or too large (`BundleTooLargeError`).
        UnsupportedSchemaVersionError: a schema version other than `SCHEMA_VERSION`.
        InvalidBundleError: a field breaks the rules (NaN, duplicate timestamp, ...).
        UnsupportedValueTypeError: a reading value of another type (a byte string, ...).
    """
    if isinstance(data, bytes | bytearray | memoryview) and len(data) <= max_size:
        fast = _decode_bundle_fast(bytes(data))
        if fast is not None:
            return fast
    obj = _decode_document(data, max_size)
    bundle = _bundle_from_document(obj)
    raw = bytes(data)
    _check_canonical(raw, encode_bundle(bundle))
    bundle.__dict__["encoding"] = raw
    return bundle


_VALUE_TYPES: Final = frozenset((float, int, bool, str))


#: Signal names already seen to be valid, and device addresses already checksummed: both
#: repeat in every bundle of a device, so the hot path looks them up instead.
_VALID_SIGNALS: set[str] = set()
_CHECKSUMS: dict[bytes, str] = {}
_CACHE_MAX: Final = 1 << 18
_LIST_TYPE: Final = {list}
_INT_TYPE: Final = {int}
_PAIR_LEN: Final = {2}


# The per-bundle hot path of the oracle and the indexer: its checks stay inline, one pass.
def _fast_bundle(obj: Any, encodings: Sequence[bytes] | None = None) -> Bundle | None:  # noqa: C901
    """The bundle of a decoded document if it is valid and already in canonical order.

    A vectorised restatement of `Bundle`'s rules (see `_normalise_readings`) for the ingest
    hot path: it returns None at the first doubt, and the reference decoder then raises the
    precise error. A property test checks that both agree on every valid bundle. For schema
    2, `encodings` are the signals' samples encodings if already serialised.
    """
    if type(obj) is not dict or obj.keys() != _KEY_SET:
        return None
    schema, device = obj["schema"], obj["device"]
    vid, seq, ws, we = obj["vehicleId"], obj["sequence"], obj["windowStart"], obj["windowEnd"]
    if (
        type(schema) is not int
        or schema not in SCHEMA_VERSIONS
        or type(device) is not bytes
        or len(device) != 20
        or type(vid) is not int
        or not 0 <= vid <= UINT256_MAX
        or type(seq) is not int
        or not 0 <= seq <= UINT64_MAX
        or type(ws) is not int
        or type(we) is not int
        or not 0 <= ws < we <= UINT64_MAX
    ):
        return None
    entries = obj["readings"]
    if type(entries) is not list:
        return None
    width = 3 if schema == SCHEMA_SIGNALS else 2
    readings: dict[str, tuple[Reading, ...]] = {}
    salts: dict[str, bytes] = {}
    commitments: dict[str, bytes] = {}
    previous = ""
    for entry in entries:
        if type(entry) is not list or len(entry) != width:
            return None
        signal, samples = entry[0], entry[-1]
        if width == 3:
            salt = entry[1]
            if type(salt) is not bytes or len(salt) != SALT_SIZE:
                return None
            salts[signal] = salt
        if type(signal) is not str or signal <= previous:
            return None
        if signal not in _VALID_SIGNALS:
            if len(signal) > MAX_SIGNAL_NAME or not _SIGNAL_RE.fullmatch(signal):
                return None
            if len(_VALID_SIGNALS) >= _CACHE_MAX:
                _VALID_SIGNALS.clear()
            _VALID_SIGNALS.add(signal)
        if (
            type(samples) is not list
            or not samples
            or set(map(type, samples)) != _LIST_TYPE
            or set(map(len, samples)) != _PAIR_LEN
        ):
            return None
        previous = signal
        stamps, values = zip(*samples, strict=True)
        if (
            set(map(type, stamps)) != _INT_TYPE
            or stamps[0] < ws
            or stamps[-1] >= we
            or not all(map(operator.lt, stamps, stamps[1:]))  # strictly increasing
        ):
            return None
        kinds = set(map(type, values))
        if not kinds <= _VALUE_TYPES:
            return None
        if int in kinds and not all(INT64_MIN <= v <= INT64_MAX for v in values if type(v) is int):
            return None
        if str not in kinds:
            if not all(map(math.isfinite, values)):  # ints and bools are finite: int64 above
                return None
        elif float in kinds and not all(math.isfinite(v) for v in values if type(v) is float):
            return None
        readings[signal] = tuple(zip(stamps, values, strict=True))
        if width == 3:
            encoded = (
                _cbor2.dumps(samples, canonical=True)
                if encodings is None
                else encodings[len(commitments)]
            )
            commitments[signal] = keccak256(salts[signal] + encoded)
    if width == 3 and (not readings or len(set(salts.values())) != len(salts)):
        return None
    address = _CHECKSUMS.get(device)
    if address is None:
        if len(_CHECKSUMS) >= _CACHE_MAX:
            _CHECKSUMS.clear()
        address = _CHECKSUMS[device] = checksum_address(device)
    bundle = object.__new__(Bundle)
    for name, value in (
        ("device", address),
        ("vehicle_id", vid),
        ("sequence", seq),
        ("window_start", ws),
        ("window_end", we),
        ("readings", MappingProxyType(readings)),
        ("schema_version", schema),
        ("salts", MappingProxyType(salts) if width == 3 else None),
    ):
        object.__setattr__(bundle, name, value)
    bundle.__dict__["device_bytes"] = device
    if width == 3:
        bundle.__dict__["commitments"] = MappingProxyType(commitments)
    return bundle


def _canonical_signals_document(obj: dict[str, Any]) -> tuple[bytes, list[bytes]]:
    """cbor2's canonical form of a schema-2 document, and each signal's samples encoding.

    Serialised part by part (keys in canonical order) so that the samples arrays, which the
    commitments hash, are serialised once for both.
    """
    if obj.keys() != _KEY_SET:
        raise ValueError("not the bundle's keys")
    dumps = _cbor2.dumps
    entries = obj["readings"]
    encodings = [dumps(entry[2], canonical=True) for entry in entries]
    parts = [
        b"\xa7",
        _K["device"],
        dumps(obj["device"]),
        _K["schema"],
        b"\x02",
        _K["readings"],
        _head(4, len(entries)),
    ]
    for entry, encoding in zip(entries, encodings, strict=True):
        if type(entry) is not list or len(entry) != 3:
            raise ValueError("not a schema-2 readings entry")
        parts += (b"\x83", dumps(entry[0]), dumps(entry[1]), encoding)
    for key in ("sequence", "vehicleId", "windowEnd", "windowStart"):
        parts += (_K[key], dumps(obj[key], canonical=True))
    return b"".join(parts), encodings


def _decode_bundle_fast(raw: bytes) -> Bundle | None:
    """The same decode through cbor2's C codec, for valid canonical input only.

    cbor2's canonical serialisation equals `encode_bundle` for every valid bundle (a property
    test checks it), so `raw` is canonical exactly when re-serialising its document gives it
    back; `_fast_bundle` then applies the bundle's rules. Anything else (not CBOR, not
    canonical, invalid) returns None and goes through the reference decoder, which raises
    the precise error.
    """
    if _cbor2 is None:
        return None
    try:
        obj = _cbor2.loads(raw)
        encodings = None
        if type(obj) is dict and obj.get("schema") == SCHEMA_SIGNALS:
            rebuilt, encodings = _canonical_signals_document(obj)
            if rebuilt != raw:
                return None
        elif _cbor2.dumps(obj, canonical=True) != raw:
            return None
        bundle = _fast_bundle(obj, encodings)
    except Exception:  # any failure here is reported precisely by the reference decoder
        return None
    if bundle is None:
        return None
    bundle.__dict__["encoding"] = raw
    return bundle


# ------------------------------------------------------------------------------------------------
# EIP-712
# ------------------------------------------------------------------------------------------------

BUNDLE_TYPE: Final = (
    "Bundle(address device,uint256 vehicleId,uint64 sequence,uint64 windowStart,"
    "uint64 windowEnd,bytes32 dataHash)"
)
BUNDLE_TYPEHASH: Final = type_hash(BUNDLE_TYPE)
BUNDLE_EIP712_FIELDS: Final = (
    {"name": "device", "type": "address"},
    {"name": "vehicleId", "type": "uint256"},
    {"name": "sequence", "type": "uint64"},
    {"name": "windowStart", "type": "uint64"},
    {"name": "windowEnd", "type": "uint64"},
    {"name": "dataHash", "type": "bytes32"},
)
_ZERO12: Final = bytes(12)


@dataclass(frozen=True)
class SignedBundle:
    """A bundle with the device's EIP-712 signature (65 bytes r || s || v, v in {27, 28})."""

    bundle: Bundle
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes | bytearray) or len(self.signature) != 65:
            raise MalformedSignatureError(
                bytes(self.signature) if isinstance(self.signature, bytes | bytearray) else b"",
                "a bundle signature is 65 bytes",
            )
        object.__setattr__(self, "signature", bytes(self.signature))


def bundle_struct_hash(bundle: Bundle) -> bytes:
    """Return EIP-712 `hashStruct(Bundle)`, as the contract computes it with `abi.encode`."""
    return keccak256(
        BUNDLE_TYPEHASH
        + _ZERO12
        + bundle.device_bytes
        + bundle.vehicle_id.to_bytes(32, "big")
        + bundle.sequence.to_bytes(32, "big")
        + bundle.window_start.to_bytes(32, "big")
        + bundle.window_end.to_bytes(32, "big")
        + bundle.data_hash
    )


def bundle_digest(bundle: Bundle, domain: Eip712Domain) -> bytes:
    """Return the EIP-712 digest the device signs (`_hashTypedDataV4(structHash)`)."""
    return domain.digest(bundle_struct_hash(bundle))


def bundle_typed_data(bundle: Bundle, domain: Eip712Domain) -> dict[str, Any]:
    """Return the bundle as `eth_signTypedData_v4` JSON, for wallets and eth-account.

    Args:
        bundle: The bundle.
        domain: The DIMO domain of the AttestationAnchor (see `protocol.eip712.dimo_domain`).

    Returns:
        `{types, primaryType, domain, message}`; `dataHash` is 0x hex.
    """
    return {
        "types": {
            "EIP712Domain": [dict(f) for f in EIP712_DOMAIN_FIELDS],
            "Bundle": [dict(f) for f in BUNDLE_EIP712_FIELDS],
        },
        "primaryType": "Bundle",
        "domain": domain.as_dict(),
        "message": {
            "device": bundle.device,
            "vehicleId": bundle.vehicle_id,
            "sequence": bundle.sequence,
            "windowStart": bundle.window_start,
            "windowEnd": bundle.window_end,
            "dataHash": "0x" + bundle.data_hash.hex(),
        },
    }


def sign_bundle(bundle: Bundle, private_key: bytes | str, domain: Eip712Domain) -> SignedBundle:
    """Sign a bundle's EIP-712 digest with the device key.

    Args:
        bundle: The bundle; its `device` must be the key's address for `verify_bundle` to pass.
        private_key: The device's secp256k1 key, 32 bytes or hex.
        domain: The DIMO domain of the AttestationAnchor.

    Returns:
        The bundle and its 65-byte signature (low s, v in {27, 28}).
    """
    return SignedBundle(bundle, sign_digest(bundle_digest(bundle, domain), private_key))


def verify_bundle(signed: SignedBundle, domain: Eip712Domain) -> str:
    """Check that the bundle's own device signed it under `domain`.

    Args:
        signed: The bundle and signature.
        domain: The DIMO domain of the AttestationAnchor on this chain.

    Returns:
        The device address (EIP-55), which is the recovered signer.

    Raises:
        MalformedSignatureError: not 65 bytes, `v` not 27/28, or `r`/`s` out of range.
        SignatureHighSError: `s` above n/2 (EIP-2).
        UnrecoverableSignatureError: no key recovers.
        InvalidSignerError: the signer is not `signed.bundle.device`.
    """
    bundle = signed.bundle
    signer = recover_address_bytes(bundle_digest(bundle, domain), signed.signature)
    if signer != bundle.device_bytes:
        raise InvalidSignerError(checksum_address(signer), bundle.device)
    return bundle.device


def encode_signed_bundle(signed: SignedBundle) -> bytes:
    """Return the wire form `{"bundle": bstr(encoding), "signature": bstr(65)}` in CBOR."""
    encoding = signed.bundle.encoding
    return b"".join(
        (
            b"\xa2",
            _text("bundle"),
            _head(2, len(encoding)),
            encoding,
            _text("signature"),
            b"\x58\x41",
            signed.signature,
        )
    )


def decode_signed_bundle(data: bytes, *, max_size: int = MAX_BUNDLE_SIZE) -> SignedBundle:
    """Decode the wire form of `encode_signed_bundle`; the signature is not verified here.

    Args:
        data: The bytes received.
        max_size: Reject longer payloads without parsing them.

    Returns:
        The bundle and signature; call `verify_bundle` next.

    Raises:
        MalformedBundleError: the envelope or the bundle inside is malformed or not canonical.
        UnsupportedSchemaVersionError: see `decode_bundle`.
        InvalidBundleError: see `decode_bundle`.
        MalformedSignatureError: the signature is not 65 bytes.
    """
    obj = _decode_document(data, max_size + 128)
    if not isinstance(obj, dict) or set(obj) != set(_SIGNED_KEYS):
        raise MalformedBundleError("a signed bundle is a map with keys 'bundle' and 'signature'")
    inner, signature = obj["bundle"], obj["signature"]
    if not isinstance(inner, bytes) or not isinstance(signature, bytes):
        raise MalformedBundleError("'bundle' and 'signature' must be byte strings")
    signed = SignedBundle(decode_bundle(inner, max_size=max_size), signature)
    _check_canonical(bytes(data), encode_signed_bundle(signed))
    return signed


def stored_signal_times(data: bytes) -> tuple[int, dict[str, list[int]]]:
    """The schema version of a signed bundle and the times of each signal's readings, read
    from a wire form that was verified before it was stored (the index keeps only bundles
    its loader decoded and checked), without checking it again.

    A disclosure decision needs nothing else, and this is a tenth of `decode_signed_bundle`'s
    time: no canonical re-encoding, no check of the bundle's rules. A form that is not even
    the shape of a signed bundle goes through `decode_signed_bundle`, which raises its
    precise error.

    Raises:
        MalformedBundleError: see `decode_signed_bundle` (only for a form not of the shape).
    """
    if _cbor2 is not None:
        try:
            outer = _cbor2.loads(data)
            inner = _cbor2.loads(outer["bundle"])
            schema = inner["schema"]
            times = {entry[0]: [ts for ts, _ in entry[-1]] for entry in inner["readings"]}
        except Exception:  # not the shape: the reference decoder says precisely why
            pass
        else:
            if type(schema) is int and all(type(name) is str for name in times):
                return schema, times
    bundle = decode_signed_bundle(data).bundle
    return bundle.schema_version, {
        name: [ts for ts, _ in samples] for name, samples in bundle.readings.items()
    }


# ------------------------------------------------------------------------------------------------
# Merkle leaf
# ------------------------------------------------------------------------------------------------

BUNDLE_LEAF_ENCODING: Final = (
    "address",
    "uint256",
    "uint64",
    "uint64",
    "uint64",
    "bytes32",
    "bytes32",
)
"""ABI types of a batch leaf; pass to `StandardMerkleTree.of(leaves, BUNDLE_LEAF_ENCODING)`."""
BUNDLE_LEAF_FIELDS: Final = (
    "device",
    "vehicleId",
    "sequence",
    "windowStart",
    "windowEnd",
    "dataHash",
    "sigHash",
)
"""Names of the leaf's fields, in order; `sigHash = keccak256(signature)`."""


def leaf_signer(
    leaf: tuple[str, int, int, int, int, bytes, bytes], signature: bytes, domain: Eip712Domain
) -> bytes:
    """Return the address (20 bytes) that signed the EIP-712 `Bundle` a leaf's fields describe.

    The struct hash needs only the leaf's fields (the `dataHash` stands for the readings), so a
    signature checks without the readings: a public document's entry, a schema-2 opening.

    Raises:
        SignatureError: the signature is malformed or recovers to no key.
    """
    device, vehicle_id, sequence, window_start, window_end, data_hash, _ = leaf
    struct_hash = keccak256(
        BUNDLE_TYPEHASH
        + _ZERO12
        + address_bytes(device)
        + b"".join(v.to_bytes(32, "big") for v in (vehicle_id, sequence, window_start, window_end))
        + data_hash
    )
    return recover_address_bytes(domain.digest(struct_hash), signature)


def bundle_leaf(signed: SignedBundle) -> tuple[str, int, int, int, int, bytes, bytes]:
    """Return the Merkle leaf values committing to a signed bundle.

    Args:
        signed: A verified bundle.

    Returns:
        `(device, vehicleId, sequence, windowStart, windowEnd, dataHash, sigHash)`, matching
        `BUNDLE_LEAF_ENCODING`.
    """
    b = signed.bundle
    return (
        b.device,
        b.vehicle_id,
        b.sequence,
        b.window_start,
        b.window_end,
        b.data_hash,
        keccak256(signed.signature),
    )
