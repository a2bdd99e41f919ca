"""Rights composition: which of the requested signals a caller may read, and over which times.

A caller's `Coverage` of a vehicle (`indexer.rights`, through the `Access` dependency) gives,
per privilege, the times it may read. Each signal is served only inside the times of its
privilege; the signals of which nothing is covered are withheld, named with the privilege
they lack, and a request of which nothing is covered is a 403 problem (`PrivilegeMissing`)
naming the missing privileges and the signals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NoReturn

from indexer.api.models import WithheldOut
from indexer.exceptions import PrivilegeMissing
from indexer.rights import Coverage, Intervals, clip, intersect, signal_privilege

__all__ = ["compose", "deny", "privilege_name", "rights_for", "split", "withheld_of"]


def privilege_name(signal: str) -> str:
    """The name of the privilege that reads `signal`."""
    return str(signal_privilege(signal).name)


def withheld_of(signal: str) -> WithheldOut:
    """`signal` withheld, with the privilege it needs."""
    return WithheldOut(signal=signal, missing_scope=privilege_name(signal))


def deny(coverage: Coverage, withheld: Sequence[WithheldOut]) -> NoReturn:
    """Refuse the request: a 403 problem naming each missing privilege and its signals.

    Raises:
        PrivilegeMissing: always.
    """
    missing: dict[str, list[str]] = defaultdict(list)
    for w in withheld:
        missing[w.missing_scope].append(w.signal)
    raise PrivilegeMissing(coverage.vehicle_id, dict(missing))


def split(
    coverage: Coverage, names: Sequence[str], start: int, end: int
) -> tuple[dict[str, Intervals], list[WithheldOut]]:
    """The covered signals with their covered times in `[start, end)`, and the withheld ones.

    Raises:
        PrivilegeMissing: none of `names` is covered at all.
    """
    covered: dict[str, Intervals] = {}
    withheld: list[WithheldOut] = []
    for name in names:
        spans = clip(coverage.for_signal(name), start, end)
        if spans:
            covered[name] = spans
        else:
            withheld.append(withheld_of(name))
    if names and not covered:
        deny(coverage, withheld)
    return covered, withheld


def compose(
    coverage: Coverage,
    required: Sequence[str],
    optional: Sequence[str],
    start: int,
    end: int,
) -> tuple[Intervals, dict[str, Intervals], list[WithheldOut]]:
    """Times all `required` signals are covered, each signal's times within them, the withheld.

    Raises:
        PrivilegeMissing: the required signals are not all covered at a common time.
    """
    base: Intervals = ((start, end),)
    for name in required:
        base = intersect(base, coverage.for_signal(name))
    if not base:
        lacking = [n for n in required if not clip(coverage.for_signal(n), start, end)]
        deny(coverage, [withheld_of(n) for n in (lacking or required)])
    within = dict.fromkeys(required, base)
    withheld: list[WithheldOut] = []
    for name in optional:
        spans = intersect(base, coverage.for_signal(name))
        if spans:
            within[name] = spans
        else:
            withheld.append(withheld_of(name))
    return base, within, withheld


def rights_for(
    coverage: Coverage,
    required: Sequence[str],
    optional: Sequence[str],
    start: int,
    end: int,
) -> tuple[dict[str, Intervals], list[WithheldOut]]:
    """Per signal, the times the caller may use; the optional signals it may not, withheld.

    Raises:
        PrivilegeMissing: the required signals are not all covered at a common time (403).
    """
    _, within, withheld = compose(coverage, required, optional, start, end)
    return within, withheld
