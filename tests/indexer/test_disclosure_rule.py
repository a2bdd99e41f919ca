"""`indexer.disclosure.disclosable` answers as its rule says, reading by reading.

The decision looks at each signal's first and last reading when one interval of the caller's
rights holds both; otherwise at each reading. Both must give the rule's answer, which is
restated here the slow way: a signal is uncovered when one of its readings falls outside the
intervals its privilege covers.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from indexer.disclosure import disclosable
from indexer.rights import Coverage, contains, normalize
from protocol.privileges import Privilege
from protocol.readings import SPEED

LAT = "Vehicle.CurrentLocation.Latitude"

times = st.lists(st.integers(0, 1_000), min_size=1, max_size=8, unique=True).map(sorted)
spans = st.lists(
    st.tuples(st.integers(0, 1_000), st.integers(1, 300)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=4,
).map(normalize)


@given(
    speed=times,
    position=times,
    driving=spans,
    location=spans,
)
def test_disclosable_gives_the_reading_by_reading_answer(
    speed: list[int],
    position: list[int],
    driving: tuple[tuple[int, int], ...],
    location: tuple[tuple[int, int], ...],
) -> None:
    coverage = Coverage(
        vehicle_id=1,
        caller="0x" + "ab" * 20,
        now_ms=2_000,
        by_privilege={Privilege.DRIVING: driving, Privilege.LOCATION: location},
        is_owner=False,
    )
    bundle = {SPEED: speed, LAT: position}
    got = disclosable(bundle, coverage)
    inside = {
        name: [contains(coverage.for_signal(name), ts) for ts in stamps]
        for name, stamps in bundle.items()
    }
    assert got.uncovered == tuple(sorted(n for n, ok in inside.items() if not all(ok)))
    assert got.partial == tuple(sorted(n for n, ok in inside.items() if any(ok) and not all(ok)))
    assert got.any_readable == any(any(ok) for ok in inside.values())
