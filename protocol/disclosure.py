"""Schema-2 selective disclosure: open one signal of a bundle, verify an opening.

A schema-2 bundle's `dataHash` is the root of a small OpenZeppelin StandardMerkleTree over
`(name, commitment)` leaves, `commitment = keccak256(salt || encode_samples(samples))`. An
opening of one signal is its name, salt, samples and the proof from its leaf to `dataHash`; it
discloses nothing of the other signals but their names and commitments (see docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from protocol.bundle import (
    SALT_SIZE,
    SCHEMA_SIGNALS,
    SIGNAL_LEAF_ENCODING,
    UINT64_MAX,
    Bundle,
    BundleError,
    CommitmentMismatchError,
    MalformedBundleError,
    Reading,
    SignedBundle,
    _check_canonical,
    _normalise_readings,
    _Reader,
    bundle_leaf,
    encode_samples,
    leaf_signer,
    signal_commitment,
    signal_leaf_hash,
    signals_root,
)
from protocol.crypto import InvalidSignerError, address_bytes, checksum_address, keccak256
from protocol.eip712 import Eip712Domain
from protocol.merkle import StandardMerkleTree, process_proof

__all__ = [
    "DisclosedBundle",
    "SignalOpening",
    "TamperedOpeningError",
    "UnknownSignalError",
    "commitments_from_json",
    "commitments_json",
    "decode_samples",
    "disclose",
    "open_signal",
    "open_signals",
    "signal_tree",
    "verify_commitments",
]

_HASH_SIZE: Final = 32


class TamperedOpeningError(BundleError, ValueError):
    """A signal opening (name, salt, samples, proof) does not lead to the signed `dataHash`."""

    def __init__(self, signal: str, reason: str) -> None:
        self.signal = signal
        self.reason = reason
        super().__init__(
            f"the opening of {signal} is not the device's: {reason}; ask the data's source for "
            "the opening again, unmodified"
        )


class UnknownSignalError(BundleError, LookupError):
    """A bundle has no signal of that name to open."""

    def __init__(self, signal: str) -> None:
        self.signal = signal
        super().__init__(f"the bundle has no signal {signal}; open one of its own signals")


def decode_samples(raw: bytes, signal: str = "signal") -> tuple[Reading, ...]:
    """Decode `encode_samples` bytes, refusing anything not in canonical form.

    Args:
        raw: The canonical CBOR of `[[timestamp, value], ...]`.
        signal: The signal's name, for error messages.

    Returns:
        The samples, sorted by timestamp as they were encoded.

    Raises:
        MalformedBundleError: not CBOR, not a samples array, or not canonical.
        InvalidBundleError: a sample breaks the rules (NaN, duplicate timestamp, ...).
    """
    reader = _Reader(bytes(raw))
    obj = reader.item(depth=3)
    if reader.pos != len(raw):
        raise reader.fail("trailing bytes after the samples")
    if not isinstance(obj, list) or not all(isinstance(s, list) and len(s) == 2 for s in obj):
        raise MalformedBundleError(f"samples of {signal!r} must be [[timestamp, value], ...]")
    samples = _normalise_readings({signal: [(s[0], s[1]) for s in obj]}, 0, UINT64_MAX)[signal]
    _check_canonical(bytes(raw), encode_samples(samples))
    return samples


def signal_tree(commitments: Mapping[str, bytes]) -> StandardMerkleTree:
    """Return a bundle's signal tree (its root is the schema-2 `dataHash`).

    Args:
        commitments: Signal name -> commitment, in the bundle's (sorted) order.

    Returns:
        `StandardMerkleTree.of([(name, commitment), ...], SIGNAL_LEAF_ENCODING)`.
    """
    return StandardMerkleTree.of(list(commitments.items()), SIGNAL_LEAF_ENCODING)


def verify_commitments(data_hash: bytes, commitments: Mapping[str, bytes]) -> None:
    """Check that published commitments are exactly those the device signed.

    Args:
        data_hash: The signed `dataHash` (from the batch leaf).
        commitments: Signal name -> commitment, every signal of the bundle.

    Raises:
        CommitmentMismatchError: they lead to another root (or there are none, or a
            commitment is not 32 bytes).
    """
    if not commitments or any(
        not isinstance(c, bytes) or len(c) != _HASH_SIZE for c in commitments.values()
    ):
        raise CommitmentMismatchError("the commitments (malformed)", data_hash, b"")
    root = signals_root(commitments)
    if root != data_hash:
        raise CommitmentMismatchError("the commitments", data_hash, root)


@dataclass(frozen=True)
class SignalOpening:
    """One disclosed signal of a schema-2 bundle.

    Attributes:
        name: The signal's VSS name.
        salt: Its 32-byte salt in this bundle.
        samples_encoding: `encode_samples(samples)`, the exact bytes committed to.
        proof: Sibling hashes from the signal's leaf to the bundle's `dataHash`.
    """

    name: str
    salt: bytes
    samples_encoding: bytes
    proof: tuple[bytes, ...]

    @property
    def samples(self) -> tuple[Reading, ...]:
        """The disclosed samples, decoded (canonical form enforced)."""
        return decode_samples(self.samples_encoding, self.name)

    @property
    def commitment(self) -> bytes:
        """`keccak256(salt || samples_encoding)`."""
        return signal_commitment(self.salt, self.samples_encoding)

    @property
    def leaf_hash(self) -> bytes:
        """The signal's leaf hash in the bundle's signal tree."""
        return signal_leaf_hash(self.name, self.commitment)

    def verify(self, data_hash: bytes) -> tuple[Reading, ...]:
        """Check the opening against a signed `dataHash` and return its samples.

        Args:
            data_hash: The bundle's `dataHash` (from a batch leaf proven against the chain).

        Returns:
            The samples.

        Raises:
            TamperedOpeningError: a wrong-sized salt or proof node, or the opening leads to
                another root.
            MalformedBundleError: the samples bytes are not canonical samples.
        """
        if len(self.salt) != SALT_SIZE:
            raise TamperedOpeningError(self.name, f"the salt is not {SALT_SIZE} bytes")
        if any(len(node) != _HASH_SIZE for node in self.proof):
            raise TamperedOpeningError(self.name, "a proof node is not 32 bytes")
        if process_proof(self.leaf_hash, self.proof) != data_hash:
            raise TamperedOpeningError(self.name, "it does not lead to the signed dataHash")
        return self.samples

    def as_json(self) -> dict[str, Any]:
        """The opening as JSON: `{name, salt, samples, proof}`, bytes as 0x hex."""
        return {
            "name": self.name,
            "salt": "0x" + self.salt.hex(),
            "samples": "0x" + self.samples_encoding.hex(),
            "proof": ["0x" + node.hex() for node in self.proof],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SignalOpening:
        """Read `as_json` output.

        Raises:
            TamperedOpeningError: a field is missing or not hex.
        """
        name = doc.get("name") if isinstance(doc, Mapping) else None
        try:
            if not isinstance(name, str):
                raise TypeError("name")
            return cls(
                name,
                _hex(doc["salt"]),
                _hex(doc["samples"]),
                tuple(_hex(node) for node in doc["proof"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TamperedOpeningError(str(name), f"malformed opening ({exc})") from None


def _hex(value: object) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"{value!r} is not 0x hex")
    return bytes.fromhex(value[2:])


def open_signal(bundle: Bundle, signal: str) -> SignalOpening:
    """Open one signal of a schema-2 bundle.

    Args:
        bundle: The bundle, with its salts (the device's or the oracle's copy).
        signal: The name of the signal to disclose.

    Returns:
        The opening; `opening.verify(bundle.data_hash)` returns the signal's samples.

    Raises:
        UnknownSignalError: the bundle has no such signal.
        TamperedOpeningError: the bundle is schema 1, which has no per-signal openings.
    """
    if bundle.schema_version != SCHEMA_SIGNALS or bundle.salts is None:
        raise TamperedOpeningError(signal, "a schema-1 bundle opens only as a whole")
    if signal not in bundle.readings:
        raise UnknownSignalError(signal)
    tree = signal_tree(bundle.commitments)
    index = list(bundle.readings).index(signal)
    return SignalOpening(
        signal,
        bundle.salts[signal],
        encode_samples(bundle.readings[signal]),
        tuple(tree.proof(index)),
    )


def open_signals(bundle: Bundle, signals: Iterable[str]) -> list[SignalOpening]:
    """Open several signals of one bundle (see `open_signal`)."""
    return [open_signal(bundle, s) for s in signals]


def commitments_json(commitments: Mapping[str, bytes]) -> list[list[str]]:
    """`[[name, 0x commitment], ...]` in the bundle's order, for public documents."""
    return [[name, "0x" + c.hex()] for name, c in commitments.items()]


def commitments_from_json(items: Sequence[Any]) -> dict[str, bytes]:
    """Read `commitments_json` output.

    Raises:
        ValueError: not a list of `[name, 0x32-byte hex]` pairs with distinct names.
    """
    out: dict[str, bytes] = {}
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError("commitments are [[name, 0x hex], ...]")
        if item[0] in out:
            raise ValueError(f"signal {item[0]} is listed twice")
        raw = _hex(item[1])
        if len(raw) != _HASH_SIZE:
            raise ValueError(f"the commitment of {item[0]} is not 32 bytes")
        out[item[0]] = raw
    return out


Leaf = tuple[str, int, int, int, int, bytes, bytes]


@dataclass(frozen=True)
class DisclosedBundle:
    """A schema-2 bundle disclosed signal by signal.

    Everything needed to check the opened signals against the chain, and nothing of the others
    but their names and commitments.

    Attributes:
        leaf: The bundle's batch leaf, `protocol.bundle.bundle_leaf` (its `dataHash` is the
            signal tree's root, its `sigHash` the signature's hash).
        signature: The device's EIP-712 signature of the bundle.
        commitments: Every signal's name -> commitment, in the bundle's order.
        openings: The disclosed signals.
    """

    leaf: Leaf
    signature: bytes
    commitments: Mapping[str, bytes]
    openings: tuple[SignalOpening, ...]

    @property
    def device(self) -> str:
        """The device that signed the bundle (EIP-55)."""
        return checksum_address(self.leaf[0])

    @property
    def vehicle_id(self) -> int:
        """The bundle's vehicle."""
        return self.leaf[1]

    def verify(self, domain: Eip712Domain) -> dict[str, tuple[Reading, ...]]:
        """Check the signature, the commitments and every opening; return the opened samples.

        Args:
            domain: The DIMO domain the device signed in.

        Returns:
            Opened signal name -> its samples (the signals not opened are absent).

        Raises:
            TamperedOpeningError: the signature is not the leaf's, an opening is listed twice,
                names a signal the bundle lacks, or does not lead to the signed `dataHash`.
            InvalidSignerError: the signature recovers to another address than the device.
            CommitmentMismatchError: the commitments do not lead to the signed `dataHash`.
            MalformedBundleError: opened samples are not canonical samples.
        """
        data_hash = self.leaf[5]
        if keccak256(self.signature) != self.leaf[6]:
            raise TamperedOpeningError("the bundle", "its signature is not the leaf's sigHash")
        signer = leaf_signer(self.leaf, self.signature, domain)
        if signer != address_bytes(self.leaf[0]):
            raise InvalidSignerError(checksum_address(signer), self.leaf[0])
        verify_commitments(data_hash, self.commitments)
        out: dict[str, tuple[Reading, ...]] = {}
        for opening in self.openings:
            if opening.name in out:
                raise TamperedOpeningError(opening.name, "it is opened twice")
            if self.commitments.get(opening.name) != opening.commitment:
                raise TamperedOpeningError(opening.name, "it is not the listed commitment")
            out[opening.name] = opening.verify(data_hash)
        return out

    def as_json(self) -> dict[str, Any]:
        """`{leaf, signature, commitments, openings}`, bytes as 0x hex, the leaf as a list."""
        return {
            "leaf": [
                *self.leaf[:5],
                "0x" + self.leaf[5].hex(),
                "0x" + self.leaf[6].hex(),
            ],
            "signature": "0x" + self.signature.hex(),
            "commitments": commitments_json(self.commitments),
            "openings": [o.as_json() for o in self.openings],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DisclosedBundle:
        """Read `as_json` output (nothing is verified here; call `verify`).

        Raises:
            TamperedOpeningError: a member is missing or malformed.
        """
        try:
            leaf = doc["leaf"]
            if not isinstance(leaf, list) or len(leaf) != 7:
                raise ValueError("the leaf is [device, vehicleId, sequence, start, end, 2 hashes]")
            vehicle, sequence, start, end = (int(v) for v in leaf[1:5])
            parsed: Leaf = (
                checksum_address(str(leaf[0])),
                vehicle,
                sequence,
                start,
                end,
                _hex(leaf[5]),
                _hex(leaf[6]),
            )
            return cls(
                parsed,
                _hex(doc["signature"]),
                commitments_from_json(doc["commitments"]),
                tuple(SignalOpening.from_json(o) for o in doc["openings"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TamperedOpeningError("the bundle", f"malformed disclosure ({exc})") from None


def disclose(signed: SignedBundle, signals: Iterable[str]) -> DisclosedBundle:
    """Disclose some signals of a signed schema-2 bundle (the rest as commitments only).

    Raises:
        UnknownSignalError: the bundle has no such signal.
        TamperedOpeningError: the bundle is schema 1.
    """
    b = signed.bundle
    return DisclosedBundle(
        bundle_leaf(signed), signed.signature, dict(b.commitments), tuple(open_signals(b, signals))
    )
