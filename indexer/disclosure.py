"""What of a signed bundle may be handed to a caller: the one disclosure decision of the API.

Every route that hands out a bundle's bytes or openings (the reading proof, `POST /apps/proofs`,
the insurance export) asks `decide` and obeys it; nothing else decides.

A signal is *covered* when the caller's rights cover its privilege at every one of its readings'
times in the bundle. Names are never secret (rewards count which signals a vehicle sent), values
are:

- Schema 1: the Merkle leaf commits to the hash of the bundle's whole encoding, so a proof of any
  one reading needs the whole signed bundle, and with it every other signal of its window. Such a
  bundle is disclosed only *whole*, when every signal of it is covered; otherwise the answer is a
  403 `bundle-not-disclosable` problem that names the uncovered signals.
- Schema 2: the `dataHash` is the root of salted per-signal commitments, so a bundle is disclosed
  signal by signal: each covered signal that is wanted is *opened* (samples and salt, with its
  path to the `dataHash`; `protocol.disclosure`), every other signal shows only its name and
  commitment. The whole wire form (with every salt) goes only to a caller covering every signal,
  when the route asks for it. A wanted signal that is not covered is the same 403 problem.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import msgspec

from indexer.exceptions import BundleNotDisclosable, BundleNotServed
from indexer.rights import Coverage, Intervals, contains
from protocol.bundle import (
    SCHEMA_SIGNALS,
    SignedBundle,
    decode_signed_bundle,
    stored_signal_times,
)
from protocol.disclosure import DisclosedBundle, disclose

__all__ = [
    "BundleFacts",
    "Disclosure",
    "Served",
    "decide",
    "disclosable",
    "require_whole",
]


@dataclass(frozen=True)
class Disclosure:
    """What a caller may read of one bundle.

    Attributes:
        signals: Every signal the bundle holds, sorted.
        uncovered: The signals with at least one reading the caller may not read, sorted.
        any_readable: Whether the caller may read at least one reading of the bundle.
        schema: The bundle's schema version (1: whole only; 2: signal by signal).
        partial: The uncovered signals with some reading the caller may read, sorted (a
            bundle straddling the start or end of the caller's rights).
    """

    signals: tuple[str, ...]
    uncovered: tuple[str, ...]
    any_readable: bool
    schema: int = 1
    partial: tuple[str, ...] = ()

    @property
    def covered(self) -> tuple[str, ...]:
        """The signals every reading of which the caller may read, sorted."""
        return tuple(n for n in self.signals if n not in self.uncovered)

    @property
    def whole(self) -> bool:
        """Whether the whole bundle (every signal of it) may be disclosed."""
        return not self.uncovered


def disclosable(
    bundle_signals: Mapping[str, Sequence[int]], coverage: Coverage, schema: int = 1
) -> Disclosure:
    """Which signals of a bundle the caller may not read, by privilege and time.

    A signal is covered when the caller's rights cover its privilege at every one of its
    readings' times (`Coverage.for_signal`; position needs LOCATION, a signal outside the
    catalog RAW).

    Args:
        bundle_signals: Per signal of the bundle, the times of its readings (unix ms).
        coverage: The caller's rights on the bundle's vehicle.
        schema: The bundle's schema version.

    Returns:
        The bundle's signals, the uncovered ones, and whether any reading is readable.
    """
    uncovered: list[str] = []
    partial: list[str] = []
    readable = False
    for name, stamps in sorted(bundle_signals.items()):
        spans = coverage.for_signal(name)
        if stamps and _one_span_holds(spans, min(stamps), max(stamps)):
            readable = True  # every reading covered: no need to look at each
            continue
        inside = [contains(spans, ts) for ts in stamps]
        readable = readable or any(inside)
        if not all(inside):
            uncovered.append(name)
            if any(inside):
                partial.append(name)
    return Disclosure(
        tuple(sorted(bundle_signals)), tuple(uncovered), readable, schema, tuple(partial)
    )


def _one_span_holds(spans: Intervals, first: int, last: int) -> bool:
    """Whether one interval of the normalized set `spans` holds all of `[first, last]`."""
    if len(spans) == 1:  # the common case (an owner, one grant): no search
        return spans[0][0] <= first and last < spans[0][1]
    i = bisect.bisect_right(spans, first, key=lambda iv: iv[0]) - 1
    return i >= 0 and spans[i][0] <= first and last < spans[i][1]


#: `BundleFacts`' stored form, as msgspec reads it.
_FACTS_FORM: Any = tuple[int, dict[str, tuple[int, int] | None]]


@dataclass(frozen=True, slots=True)
class BundleFacts:
    """What a disclosure decision needs of a bundle, kept beside it from its loading
    (`bundles_index.disclosure`), so that a proof's decision need not read the wire form.

    `decide` settles from these alone the common case, a caller whose rights hold every
    signal's first and last reading time in one interval (an owner, a grant over the bundle's
    window); any other caller is decided from each reading's time, read from the wire form.

    Attributes:
        schema: The bundle's schema version.
        spans: Per signal, in the bundle's order, its first and last reading time (unix ms);
            None for a signal without readings.
    """

    schema: int
    spans: Mapping[str, tuple[int, int] | None]

    @classmethod
    def of_times(cls, schema: int, times: Mapping[str, Sequence[int]]) -> BundleFacts:
        """The facts of a bundle of schema `schema` whose signals have readings at `times`."""
        return cls(schema, {name: (min(ts), max(ts)) if ts else None for name, ts in times.items()})

    @classmethod
    def of_wire(cls, wire: bytes) -> BundleFacts:
        """The facts of a stored (verified) signed bundle's wire form."""
        return cls.of_times(*stored_signal_times(wire))

    def encode(self) -> str:
        """The stored form: JSON `[schema, {signal: [first, last] or null}]`."""
        return msgspec.json.encode([self.schema, self.spans]).decode()

    @classmethod
    def decode(cls, text: str) -> BundleFacts:
        """The facts of a stored form (`encode`).

        Raises:
            ValueError: `text` is not such a form.
        """
        try:
            schema, spans = msgspec.json.decode(text, type=_FACTS_FORM)
        except msgspec.DecodeError as exc:  # ValidationError is one
            raise ValueError(f"not a bundle's disclosure facts: {text[:80]!r}") from exc
        return cls(schema, spans)

    def held_whole(self, coverage: Coverage) -> bool:
        """Whether one interval of the caller's rights holds every reading of every signal
        (then every signal is covered and some reading readable, as `disclosable` finds)."""
        return bool(self.spans) and all(
            span is not None and _one_span_holds(coverage.for_signal(name), *span)
            for name, span in self.spans.items()
        )


def require_whole(disclosure: Disclosure, vehicle_id: int, batch_id: int, leaf_index: int) -> None:
    """Raises the 403 problem unless the whole bundle may be disclosed.

    Raises:
        BundleNotDisclosable: the bundle holds signals the caller may not read (named).
    """
    if not disclosure.whole:
        raise BundleNotDisclosable(vehicle_id, batch_id, leaf_index, disclosure.uncovered)


@dataclass(frozen=True)
class Served:
    """What a route hands out of one bundle, as `decide` chose.

    Attributes:
        disclosure: The decision's grounds (with the bundle's schema version).
        wire: The signed bundle's wire form (the server's copy; never sent as such unless
            `whole`).
        whole: Whether the whole wire form is handed out.
        opened: Schema 2: the bundle disclosed signal by signal (every signal's commitment, the
            opened signals' samples and salts); None for schema 1.
    """

    disclosure: Disclosure
    wire: bytes
    whole: bool
    opened: DisclosedBundle | None

    @cached_property
    def signed(self) -> SignedBundle:
        """The signed bundle, decoded when first asked for (a schema-1 proof never needs it)."""
        return decode_signed_bundle(self.wire)


def decide(
    wire: bytes,
    coverage: Coverage,
    ids: tuple[int, int, int],
    *,
    wanted: Collection[str] | None = None,
    whole: bool = True,
    facts: BundleFacts | None = None,
) -> Served:
    """The disclosure decision for one stored bundle: whole, opened signal by signal, or 403.

    Args:
        wire: The bundle's signed wire form, as the indexer stores it (schema 2: with salts;
            checked when it was loaded, so only read here).
        coverage: The caller's rights on the bundle's vehicle.
        ids: `(vehicle id, batch id, leaf index)`, for the problem.
        wanted: Schema 2: the signals to open (each must be covered); None opens every covered
            signal, and refuses a bundle with a signal the caller may read only part of (its
            readable readings could not be proved). Ignored for schema 1.
        whole: Whether the route hands out the whole wire form to a caller covering every
            signal (a schema-1 bundle goes out only whole, whatever this says).
        facts: The bundle's stored `BundleFacts`, when read with it: a caller whose rights
            hold them whole is decided without reading the wire form's times (the same
            decision).

    Returns:
        What to hand out.

    Raises:
        BundleNotServed: the caller may read no reading of the bundle (404, the answer for a
            bundle that does not exist).
        BundleNotDisclosable: schema 1 and a signal is not covered; schema 2 and a wanted
            signal is not covered, nothing wanted is covered, or (`wanted` None) a signal is
            covered only in part.
    """
    names_held: Sequence[str]
    if facts is not None and facts.held_whole(coverage):
        schema, names_held = facts.schema, tuple(facts.spans)
        disclosure = Disclosure(tuple(sorted(names_held)), (), True, schema)
    else:  # the index's copies were verified on loading
        schema, times = stored_signal_times(wire)
        disclosure, names_held = disclosable(times, coverage, schema), tuple(times)
    if not disclosure.any_readable:
        raise BundleNotServed(*ids)
    if schema != SCHEMA_SIGNALS:
        require_whole(disclosure, *ids)
        return Served(disclosure, wire, True, None)
    if wanted is None:
        names, refused = disclosure.covered, list(disclosure.partial)
    else:
        names = tuple(n for n in names_held if n in wanted)
        refused = [n for n in names if n in disclosure.uncovered]
    if refused or not names:
        raise BundleNotDisclosable(*ids, refused or list(disclosure.uncovered))
    signed = decode_signed_bundle(wire)
    served = Served(disclosure, wire, whole and disclosure.whole, disclose(signed, names))
    served.__dict__["signed"] = signed  # decoded already: `signed` need not decode it again
    return served
