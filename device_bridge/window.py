"""Windows: readings grouped into wall-clock-aligned [start, end) windows, reduced per signal.

Policy (also in docs/bridge.md):

- A window is `[k * window_ms, (k + 1) * window_ms)` in unix ms (default 10 s), so every
  device's windows line up on the same wall-clock grid. A reading belongs to the window that
  contains its timestamp (truncated to the millisecond); the end is exclusive.
- `Policy.LAST` (the default for every signal): the window keeps the signal's last reading
  (in arrival order) as one sample at the time it was observed.
- `Policy.EXTREMES` (default for `Vehicle.Speed` and the traction battery's `CurrentCurrent`
  and `CurrentPower`): the window keeps the first, the minimum, the maximum and the last
  reading, each as a separate sample of the same VSS signal at the time it was observed (the
  first time for ties). These are observations, not derived values: a mean has no instant at
  which the car reported it, and a derived name (`Vehicle.Speed.Mean`) is not in the VSS
  catalog, so the oracle would reject it as `unknown-signal`. Where two kept samples fall in
  the same millisecond the later role wins (last > max > min > first).
- A window closes once the newest timestamp seen (or the wall clock, for live buses) passes
  its end by `lateness_ms`. A reading for an already closed window is counted in
  `stats.late` and dropped; NaN or infinite floats are counted in `stats.non_finite`.
- `coalesce` merges closed windows into one wider window with the same policies; the runner
  uses it when the queue is full (see `device_bridge.queue`).

`Sealer` turns a closed window into a signed `protocol.bundle.Bundle`: it reserves the next
sequence number in the queue database (committed before signing, so sequences survive
restarts and never repeat), signs, and stores the bundle in the queue.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from device_bridge.decoder import Reading
from protocol.bundle import SCHEMA_SIGNALS, Bundle, SignedBundle, sign_bundle
from protocol.eip712 import Eip712Domain
from protocol.vss import VssValue, get_signal

if TYPE_CHECKING:
    from device_bridge.keys import DeviceKey
    from device_bridge.queue import BundleQueue

__all__ = [
    "DEFAULT_POLICIES",
    "ClosedWindow",
    "Policy",
    "Sealer",
    "WindowStats",
    "Windower",
    "window_start",
]

Sample = tuple[int, VssValue]
_INF: Final = math.inf
_NEG_INF: Final = -math.inf


class Policy(enum.StrEnum):
    """How a window reduces one signal's readings."""

    LAST = "last"
    EXTREMES = "extremes"


_TB: Final = "Vehicle.Powertrain.TractionBattery"
DEFAULT_POLICIES: Final[Mapping[str, Policy]] = {
    "Vehicle.Speed": Policy.EXTREMES,
    f"{_TB}.CurrentCurrent": Policy.EXTREMES,
    f"{_TB}.CurrentPower": Policy.EXTREMES,
}
"""Signals kept as first/min/max/last; every other signal keeps its last reading."""


def window_start(timestamp_ms: int, window_ms: int) -> int:
    """Return the start of the aligned window holding `timestamp_ms`."""
    return timestamp_ms - timestamp_ms % window_ms


@dataclass(frozen=True)
class ClosedWindow:
    """A window whose readings are final.

    Attributes:
        start: unix ms, inclusive.
        end: unix ms, exclusive.
        readings: VSS path -> samples `(timestamp_ms, value)`, ready for `Bundle`.
        windows: how many aligned windows were coalesced into this one (1 normally).
    """

    start: int
    end: int
    readings: dict[str, list[Sample]]
    windows: int = 1

    @property
    def sample_count(self) -> int:
        """The number of samples across signals."""
        return sum(len(s) for s in self.readings.values())


@dataclass
class WindowStats:
    """Counters of the windower.

    Attributes:
        readings: readings taken into a window.
        late: readings dropped because their window had already closed.
        non_finite: NaN/infinite float readings dropped at closing.
        closed: windows closed (non-empty ones).
        coalesced: windows merged into another by `coalesce`.
    """

    readings: int = 0
    late: int = 0
    non_finite: int = 0
    closed: int = 0
    coalesced: int = 0


@dataclass
class _Open:
    start: int
    end: int
    last: dict[str, Sample] = field(default_factory=dict)
    ext: dict[str, list[object]] = field(default_factory=dict)


def _extremes(samples: Iterable[Sample]) -> list[Sample]:
    """First, min, max and last of observed samples (time order for first/last)."""
    ordered = sorted(samples, key=lambda s: s[0])
    first, last = ordered[0], ordered[-1]
    low = high = first
    for sample in ordered:
        if sample[1] < low[1]:  # type: ignore[operator]
            low = sample
        if sample[1] > high[1]:  # type: ignore[operator]
            high = sample
    kept = dict((first, low, high, last))
    return sorted(kept.items())


class Windower:
    """Groups readings into aligned windows and reduces each signal by its policy."""

    def __init__(
        self,
        window_ms: int = 10_000,
        *,
        lateness_ms: int = 1_000,
        policies: Mapping[str, Policy] | None = None,
    ) -> None:
        """Set up an empty windower.

        Args:
            window_ms: window length in ms; windows start at multiples of it.
            lateness_ms: how long past its end a window waits for late readings.
            policies: VSS path -> policy; `DEFAULT_POLICIES` if None, `LAST` for others.

        Raises:
            ValueError: a non-positive window, or `EXTREMES` for a non-numeric signal.
        """
        if window_ms <= 0 or lateness_ms < 0:
            raise ValueError("window_ms must be > 0 and lateness_ms >= 0")
        self.window_ms = window_ms
        self.lateness_ms = lateness_ms
        self.policies = dict(DEFAULT_POLICIES if policies is None else policies)
        for path, policy in self.policies.items():
            if policy is Policy.EXTREMES and not get_signal(path).datatype.is_numeric:
                raise ValueError(f"{path} is not numeric; only numeric signals have extremes")
        self._ext_paths = frozenset(p for p, v in self.policies.items() if v is Policy.EXTREMES)
        self._open: dict[int, _Open] = {}
        self._current: _Open | None = None
        self._closed_before = -1  # every ms below this belongs to a closed window
        self._watermark = -1
        self.stats = WindowStats()

    @property
    def open_windows(self) -> int:
        """The number of windows still open."""
        return len(self._open)

    def _window_for(self, ms: int) -> _Open | None:
        start = ms - ms % self.window_ms
        window = self._open.get(start)
        if window is None:
            if ms < self._closed_before:
                return None
            window = self._open[start] = _Open(start, start + self.window_ms)
        return window

    def add(self, readings: Sequence[Reading]) -> list[ClosedWindow]:
        """Take readings (timestamps in unix seconds) and return the windows they close.

        Args:
            readings: decoded readings, roughly in time order.

        Returns:
            Windows closed because the newest timestamp passed their end by `lateness_ms`,
            oldest first.
        """
        cur = self._current
        if cur is None:
            start = end = 0
            last: dict[str, Sample] = {}
            ext: dict[str, list[object]] = {}
        else:
            start, end, last, ext = cur.start, cur.end, cur.last, cur.ext
        ext_paths = self._ext_paths
        high = self._watermark
        prev_ts: float | None = None
        ms = 0
        skip = False
        late = non_finite = 0
        for ts, path, value in readings:
            if ts != prev_ts:
                prev_ts = ts
                ms = int(ts * 1000)
                skip = False
                if ms > high:
                    high = ms
                if not start <= ms < end:
                    found = self._window_for(ms)
                    if found is None:
                        skip = True
                    else:
                        cur = found
                        start, end, last, ext = cur.start, cur.end, cur.last, cur.ext
            if skip:
                late += 1
                continue
            if path in ext_paths:
                if not _NEG_INF < value < _INF:  # type: ignore[operator]
                    non_finite += 1
                    continue
                s = ext.get(path)
                if s is None:
                    ext[path] = [ms, value, ms, value, ms, value, ms, value]
                else:
                    if value < s[3]:  # type: ignore[operator]
                        s[2] = ms
                        s[3] = value
                    elif value > s[5]:  # type: ignore[operator]
                        s[4] = ms
                        s[5] = value
                    s[6] = ms
                    s[7] = value
            else:
                last[path] = (ms, value)
        self._current = cur
        self._watermark = high
        self.stats.readings += len(readings) - late - non_finite
        self.stats.late += late
        self.stats.non_finite += non_finite
        return self.advance(high)

    def advance(self, now_ms: int) -> list[ClosedWindow]:
        """Close every window whose end plus `lateness_ms` is at or before `now_ms`.

        Call it with the wall clock on a live bus so windows close while the bus is quiet.

        Returns:
            The closed non-empty windows, oldest first.
        """
        horizon = now_ms - self.lateness_ms
        if not self._open or min(self._open) + self.window_ms > horizon:
            return []
        done = sorted(s for s in self._open if s + self.window_ms <= horizon)
        return self._close(done)

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of a log, shutdown); oldest first."""
        return self._close(sorted(self._open))

    def _close(self, starts: list[int]) -> list[ClosedWindow]:
        out: list[ClosedWindow] = []
        for start in starts:
            window = self._open.pop(start)
            if window is self._current:
                self._current = None
            self._closed_before = max(self._closed_before, window.end)
            closed = self._finish(window)
            if closed.readings:
                self.stats.closed += 1
                out.append(closed)
        return out

    def _finish(self, window: _Open) -> ClosedWindow:
        readings: dict[str, list[Sample]] = {}
        dropped = 0
        for path, sample in window.last.items():
            if isinstance(sample[1], float) and not math.isfinite(sample[1]):
                dropped += 1
                continue
            readings[path] = [sample]
        for path, s in window.ext.items():
            samples = [(s[0], s[1]), (s[2], s[3]), (s[4], s[5]), (s[6], s[7])]
            readings[path] = _extremes(samples)  # type: ignore[arg-type]
        self.stats.non_finite += dropped
        return ClosedWindow(window.start, window.end, readings)

    def coalesce(self, older: ClosedWindow, newer: ClosedWindow) -> ClosedWindow:
        """Merge two closed windows into one spanning both, applying the same policies.

        Args:
            older: the earlier window (or an earlier coalesced window).
            newer: the later one.

        Returns:
            A window `[older.start, newer.end)`: `LAST` signals keep the later sample,
            `EXTREMES` signals the first, min, max and last over both.
        """
        readings: dict[str, list[Sample]] = {p: list(s) for p, s in older.readings.items()}
        for path, samples in newer.readings.items():
            mine = readings.get(path)
            if mine is None:
                readings[path] = list(samples)
            elif path in self._ext_paths:
                readings[path] = _extremes([*mine, *samples])
            else:
                readings[path] = [max(mine[-1], samples[-1], key=lambda s: s[0])]
        self.stats.coalesced += 1
        return ClosedWindow(
            min(older.start, newer.start),
            max(older.end, newer.end),
            readings,
            older.windows + newer.windows,
        )


class Sealer:
    """Closed windows to signed bundles stored in the queue, with persisted sequences."""

    def __init__(
        self,
        queue: BundleQueue,
        key: DeviceKey,
        domain: Eip712Domain,
        vehicle_id: int,
    ) -> None:
        """Bind the queue, the device key, the EIP-712 domain and the vehicle.

        Args:
            queue: where sequences are reserved and signed bundles stored.
            key: the device key.
            domain: the DIMO domain of the AttestationAnchor.
            vehicle_id: the vehicle's token id.
        """
        self.queue = queue
        self.key = key
        self.domain = domain
        self.vehicle_id = vehicle_id

    def build(self, window: ClosedWindow, sequence: int) -> Bundle:
        """Return the unsigned bundle of a window with a given sequence number.

        The bundle is schema 2: one commitment per signal, each behind a fresh random salt
        (docs/protocol.md), so a proof can later disclose one signal alone.
        """
        return Bundle(
            device=self.key.address,
            vehicle_id=self.vehicle_id,
            sequence=sequence,
            window_start=window.start,
            window_end=window.end,
            readings=window.readings,
            schema_version=SCHEMA_SIGNALS,
        )

    def seal(self, window: ClosedWindow) -> SignedBundle:
        """Reserve a sequence (committed), build, sign and enqueue the window's bundle.

        Raises:
            QueueFullError: the queue is full (check `queue.has_room()` first).
            QueueError: the queue cannot be written.
            BundleError: the window breaks the bundle format (a bug upstream).
        """
        self.queue.ensure_room()
        sequence = self.queue.reserve_sequence(self.key.address)
        signed = sign_bundle(self.build(window, sequence), self.key.private_key, self.domain)
        self.queue.put(signed)
        return signed
