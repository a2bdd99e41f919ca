"""Readings as columns: numpy arrays of times, values and bundle refs, read in bulk.

The applications are pure functions over each signal's readings in time order. At fleet
scale a Python object per reading is the cost, so a signal's readings can also be held as
`Columns`: four parallel arrays (`ts`, `value`, `batch`, `leaf`). `Columns` is a
`Sequence[Reading]` (indexing it gives a `Reading`), so code written for lists keeps
working, and the applications' vectorized paths take its arrays directly (`as_columns`).

The indexer fills `Columns` from SQL in bulk (`indexer.apps.inputs.fetch_fleet_columns`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from apps.exceptions import AppInputInvalid
from protocol.readings import Reading

__all__ = [
    "Columns",
    "as_columns",
    "bundle_keys",
    "keys_to_refs",
    "seq_sum",
    "trip_spans",
]

Int64s = NDArray[np.int64]


class Columns(Sequence[Reading]):
    """One signal's readings as parallel arrays, in time order (ties by batch, leaf).

    Attributes:
        ts: Unix ms, int64.
        value: float64 values, or an object array of str for text signals.
        batch: Batch ids, int64.
        leaf: Leaf indexes, int64.
    """

    __slots__ = ("batch", "leaf", "ts", "value")

    def __init__(self, ts: Int64s, value: NDArray[Any], batch: Int64s, leaf: Int64s) -> None:
        self.ts = ts
        self.value = value
        self.batch = batch
        self.leaf = leaf

    @classmethod
    def empty(cls, text: bool = False) -> Columns:
        """No readings (text values when `text`)."""
        z = np.empty(0, np.int64)
        return cls(z, np.empty(0, object if text else np.float64), z, z)

    @classmethod
    def of(cls, readings: Sequence[Any], text: bool | None = None) -> Columns:
        """The columns of `readings` (values are text when `text`, or when the first is).

        Args:
            readings: `Reading`s, or result rows with the same names (`ts`, `value`, ...).
            text: Whether the values are text; None to look at the first.

        Raises:
            AppInputInvalid: a numeric series holds a value that is not a number.
        """
        n = len(readings)
        if text is None:
            text = n > 0 and isinstance(readings[0].value, str)
        ts = np.fromiter((r.ts for r in readings), np.int64, n)
        batch = np.fromiter((r.batch_id for r in readings), np.int64, n)
        leaf = np.fromiter((r.leaf_index for r in readings), np.int64, n)
        if text:
            value: NDArray[Any] = np.array([str(r.value) for r in readings], dtype=object)
        else:
            try:
                value = np.fromiter((float(r.value) for r in readings), np.float64, n)
            except ValueError as exc:
                raise AppInputInvalid("value", f"not a number: {exc}") from exc
        return cls(ts, value, batch, leaf)

    @property
    def is_text(self) -> bool:
        """Whether the values are text."""
        return self.value.dtype == object

    def __len__(self) -> int:
        return len(self.ts)

    @overload
    def __getitem__(self, i: int) -> Reading: ...
    @overload
    def __getitem__(self, i: slice) -> Columns: ...
    def __getitem__(self, i: int | slice) -> Reading | Columns:
        if isinstance(i, slice):
            return Columns(self.ts[i], self.value[i], self.batch[i], self.leaf[i])
        v = self.value[i]
        return Reading(
            int(self.ts[i]), v if isinstance(v, str) else float(v), int(self.batch[i]),
            int(self.leaf[i]),
        )  # fmt: skip

    def __iter__(self) -> Iterator[Reading]:
        text = self.is_text
        values = self.value.tolist()
        for t, v, b, leaf in zip(
            self.ts.tolist(), values, self.batch.tolist(), self.leaf.tolist(), strict=True
        ):
            yield Reading(t, str(v) if text else v, b, leaf)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Columns({len(self)} readings)"

    def take(self, index: NDArray[Any]) -> Columns:
        """The readings at `index` (integer positions or a boolean mask), in that order."""
        return Columns(self.ts[index], self.value[index], self.batch[index], self.leaf[index])

    def keys(self) -> Int64s:
        """Each reading's bundle as one int64 key, `batch << 32 | leaf` (see `keys_to_refs`)."""
        return bundle_keys(self.batch, self.leaf)


def as_columns(readings: Sequence[Reading]) -> Columns:
    """`readings` as `Columns` (itself when it already is)."""
    return readings if isinstance(readings, Columns) else Columns.of(readings)


def bundle_keys(batch: Int64s, leaf: Int64s) -> Int64s:
    """`batch << 32 | leaf`: one sortable int64 per (batch id, leaf index)."""
    return (batch << 32) | leaf


def keys_to_refs(keys: Int64s) -> list[list[int]]:
    """`[batch_id, leaf_index]` of each distinct key of `bundle_keys`, sorted."""
    u = np.unique(keys)
    return np.stack((u >> 32, u & 0xFFFFFFFF), axis=1).tolist()  # type: ignore[no-any-return]


def seq_sum(values: NDArray[np.float64]) -> float:
    """The sum of `values` added left to right, as a Python loop adds them (bit for bit)."""
    return float(np.cumsum(values)[-1]) if len(values) else 0.0


def trip_spans(
    ts: Int64s,
    moving: NDArray[np.bool_],
    on_ts: Int64s,
    off_ts: Int64s,
    gap_ms: float,
    min_ms: float,
) -> tuple[Int64s, Int64s]:
    """Trip starts and ends (inclusive), as `indexer.queries.trips` segments them.

    Active marks are the speed readings at `ts` where `moving`, and ignition ON/START at
    `on_ts`; OFF/LOCK marks at `off_ts` end a trip. A trip is a run of active marks at most
    `gap_ms` apart with no end mark between them, kept if it lasts `min_ms`.
    """
    when = np.concatenate((ts[moving], on_ts, off_ts))
    if not len(when):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    state = np.concatenate(
        (np.ones(int(moving.sum()) + len(on_ts), dtype=bool), np.zeros(len(off_ts), dtype=bool))
    )
    order = np.lexsort((state, when))  # by time; at one instant the end mark first
    when, state = when[order], state[order]
    prev_state = np.concatenate(([False], state[:-1]))
    prev_when = np.concatenate(([when[0]], when[:-1]))
    starts_here = state & (~prev_state | (when - prev_when > gap_ms))
    active = np.flatnonzero(state)
    first = starts_here[active]
    begins = when[active][first]
    last_of_run = np.concatenate((np.flatnonzero(first)[1:] - 1, [len(active) - 1]))
    ends = when[active][last_of_run.astype(np.int64)]
    keep = ends - begins >= min_ms
    return begins[keep], ends[keep]
