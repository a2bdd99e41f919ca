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
    _check_canonical,
    _normalise_readings,
    _Reader,
    encode_samples,
    signal_commitment,
    signal_leaf_hash,
    signals_root,
)
from protocol.merkle import StandardMerkleTree, process_proof

__all__ = [
    "SignalOpening",
    "TamperedOpeningError",
    "UnknownSignalError",
    "commitments_from_json",
    "commitments_json",
    "decode_samples",
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
