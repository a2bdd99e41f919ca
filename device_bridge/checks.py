"""Checks that a decoded log gave something: no silent zero frames or zero signals."""

from __future__ import annotations

from device_bridge.decoder import Decoder
from device_bridge.exceptions import EmptyLogError, NoReadingsError
from device_bridge.logs import LogStats, RecordedLog

__all__ = ["check_decoded", "check_frames"]


def check_frames(log: RecordedLog, stats: LogStats | None = None) -> None:
    """Raise if reading the log gave no frame.

    Args:
        log: the log, after iteration.
        stats: its counts (the log's own if None).

    Raises:
        EmptyLogError: 0 frames; names the assumed format and the first offending line.
    """
    stats = stats if stats is not None else log.stats
    if stats.frames:
        return
    if stats.examples:
        first = stats.examples[0]
        where = f"line {first.line}: " if first.line else ""
        offending = f"{where}{first.text!r} ({first.reason})"
    else:
        offending = f"line 1: {log.first_line()!r}"
    raise EmptyLogError(log.path, log.describe(), offending)


def check_decoded(log: RecordedLog, decoder: Decoder, readings: int) -> None:
    """Raise if the log gave no frame or its frames decoded into no mapped signal.

    Args:
        log: the log, after iteration.
        decoder: the decoder it went through.
        readings: the readings the decoder produced.

    Raises:
        EmptyLogError: 0 frames.
        NoReadingsError: 0 readings; says which ids and events were met instead.
    """
    check_frames(log)
    if readings:
        return
    stats = decoder.stats
    parts = []
    if stats.unknown_ids:
        channel, first_id = next(iter(stats.unknown_ids))
        parts.append(
            f"{sum(stats.unknown_ids.values()):,} frames of {len(stats.unknown_ids)} ids not "
            f"in the DBC (first: channel {channel!r} id 0x{first_id & 0x1FFF_FFFF:X})"
        )
    reasons = stats.by_reason()
    if reasons:
        parts.append("dropped: " + ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items())))
    if stats.decoded == 0 and not parts:
        parts.append("no frame matched a mapped message")
    raise NoReadingsError(log.path, stats.frames, log.describe(), "; ".join(parts))
