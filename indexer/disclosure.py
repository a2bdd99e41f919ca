"""What of a signed bundle may be handed to a caller: the one disclosure decision of the API.

Every route that hands out a bundle's bytes (the reading proof, `POST /apps/proofs`, the
insurance export) asks `disclosable` and obeys it; nothing else decides.

Under bundle schema 1 the Merkle leaf commits to the hash of the bundle's whole encoding, so
a proof of any one reading needs the whole signed bundle, and with it every other signal of
its window. A bundle is therefore disclosed only *whole*: when the caller's rights cover every
reading it holds (each signal's privilege, at each reading's time). Otherwise the route
answers a 403 `bundle-not-disclosable` problem that names the signals it may not read (names
are never secret: rewards count which signals a vehicle sent) and never carries their values.

Schema 2 (per-signal salted commitments) plugs in here: where `Disclosure.uncovered` is not
empty, a schema-2 bundle can still be disclosed by opening only the covered signals, so the
routes keep asking this one function and only its answer for such bundles changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from indexer.exceptions import BundleNotDisclosable
from indexer.rights import Coverage, contains
from protocol.bundle import decode_signed_bundle

__all__ = ["Disclosure", "bundle_signals", "disclosable", "require_whole"]


@dataclass(frozen=True)
class Disclosure:
    """What a caller may read of one bundle.

    Attributes:
        signals: Every signal the bundle holds, sorted.
        uncovered: The signals with at least one reading the caller may not read, sorted.
        any_readable: Whether the caller may read at least one reading of the bundle.
    """

    signals: tuple[str, ...]
    uncovered: tuple[str, ...]
    any_readable: bool

    @property
    def whole(self) -> bool:
        """Whether the whole bundle (every signal of it) may be disclosed."""
        return not self.uncovered


def bundle_signals(wire: bytes) -> dict[str, list[int]]:
    """Per signal of a signed bundle (its wire form), the times of its readings, unix ms."""
    readings = decode_signed_bundle(wire).bundle.readings
    return {name: [ts for ts, _ in samples] for name, samples in readings.items()}


def disclosable(bundle_signals: Mapping[str, Sequence[int]], coverage: Coverage) -> Disclosure:
    """Which signals of a bundle the caller may not read, by privilege and time.

    A signal is covered when the caller's rights cover its privilege at every one of its
    readings' times (`Coverage.for_signal`; position needs LOCATION, a signal outside the
    catalog RAW).

    Args:
        bundle_signals: Per signal of the bundle, the times of its readings (unix ms); see
            `bundle_signals`.
        coverage: The caller's rights on the bundle's vehicle.

    Returns:
        The bundle's signals, the uncovered ones, and whether any reading is readable.
    """
    uncovered: list[str] = []
    readable = False
    for name, stamps in sorted(bundle_signals.items()):
        spans = coverage.for_signal(name)
        inside = [contains(spans, ts) for ts in stamps]
        readable = readable or any(inside)
        if not all(inside):
            uncovered.append(name)
    return Disclosure(tuple(sorted(bundle_signals)), tuple(uncovered), readable)


def require_whole(disclosure: Disclosure, vehicle_id: int, batch_id: int, leaf_index: int) -> None:
    """Raises the 403 problem unless the whole bundle may be disclosed.

    Raises:
        BundleNotDisclosable: the bundle holds signals the caller may not read (named).
    """
    if not disclosure.whole:
        raise BundleNotDisclosable(vehicle_id, batch_id, leaf_index, disclosure.uncovered)
