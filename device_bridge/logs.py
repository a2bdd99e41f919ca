"""Recorded CAN logs (candump -L, ASC, BLF, TRC, SavvyCAN CSV) as `can.Message` streams."""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import can
from can.io.generic import MessageReader

from device_bridge.exceptions import LogFormatError

__all__ = [
    "BadRecord",
    "LogFormat",
    "LogStats",
    "RecordedLog",
    "open_log",
    "parse_gvret_csv",
    "replay",
]

_MAX_EXAMPLES = 20


class LogFormat(enum.StrEnum):
    """Log formats the bridge reads."""

    CANDUMP = "candump"  # `candump -L`: (1.000000) can0 123#DEADBEEF
    ASC = "asc"  # Vector ASCII
    BLF = "blf"  # Vector binary logging format
    TRC = "trc"  # PEAK PCAN-View trace, versions 1.0, 1.1, 1.3, 2.0, 2.1
    GVRET_CSV = "gvret-csv"  # SavvyCAN GVRET CSV, timestamps in microseconds

    @classmethod
    def from_path(cls, path: str | Path) -> LogFormat:
        """Tell the format from a file name.

        Raises:
            LogFormatError: the suffix is not one the bridge reads.
        """
        suffix = Path(path).suffix.lower()
        try:
            return _SUFFIXES[suffix]
        except KeyError:
            raise LogFormatError(path, f"unknown suffix {suffix!r}") from None


_SUFFIXES = {
    ".log": LogFormat.CANDUMP,
    ".asc": LogFormat.ASC,
    ".blf": LogFormat.BLF,
    ".trc": LogFormat.TRC,
    ".csv": LogFormat.GVRET_CSV,
}


@dataclass(frozen=True, slots=True)
class BadRecord:
    """One record that could not be read.

    Attributes:
        line: 1-based line number (0 where the format has no lines).
        reason: short reason, also the key in `LogStats.bad`.
        text: the offending text, shortened.
    """

    line: int
    reason: str
    text: str


@dataclass
class LogStats:
    """What reading a log produced.

    Attributes:
        frames: messages yielded.
        bad: number of bad records by reason.
        examples: the first bad records, for the operator.
    """

    frames: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    examples: list[BadRecord] = field(default_factory=list)

    def record_bad(self, line: int, reason: str, text: str) -> None:
        """Count one bad record and keep it as an example if there is room."""
        self.bad[reason] += 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(BadRecord(line, reason, text.strip()[:120]))

    @property
    def bad_total(self) -> int:
        """Number of bad records of every reason."""
        return sum(self.bad.values())


class _LineTracker:
    """A text file whose lines python-can reads, remembering the last one handed out."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.line_no = 0
        self.last = ""

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        line = next(self._file)
        self.line_no += 1
        self.last = line
        return line

    def readline(self) -> str:
        line = self._file.readline()
        if line:
            self.line_no += 1
            self.last = line
        return line

    def close(self) -> None:
        self._file.close()


class RecordedLog(Iterable[can.Message]):
    """A recorded log, iterated as `can.Message` objects; bad records are counted, not raised.

    Reading is done by python-can's own readers (`can.CanutilsLogReader`, `can.ASCReader`,
    `can.BLFReader`, `can.TRCReader`) except SavvyCAN GVRET CSV, which python-can does not read.
    Each message carries its bus in `channel` (`"can0"` for candump, the bus number for CSV,
    0-based channel numbers for ASC/BLF/TRC as python-can gives them).
    """

    def __init__(self, path: str | Path, fmt: LogFormat | str | None = None) -> None:
        """Open nothing yet; the file is read on iteration.

        Args:
            path: the log file.
            fmt: its format; told from the suffix if None.

        Raises:
            LogFormatError: the format is unknown.
        """
        self.path = Path(path)
        try:
            self.format = LogFormat(fmt) if fmt is not None else LogFormat.from_path(path)
        except ValueError:
            raise LogFormatError(path, f"unknown format {fmt!r}") from None
        self.stats = LogStats()

    def __iter__(self) -> Iterator[can.Message]:
        """Yield the log's messages in file order; `stats` is reset and filled as it goes."""
        self.stats = LogStats()
        if not self.path.is_file():
            raise LogFormatError(self.path, "no such file")
        if self.format is LogFormat.GVRET_CSV:
            with self.path.open(encoding="utf-8", errors="replace", newline="") as file:
                yield from parse_gvret_csv(file, self.stats)
        elif self.format in (LogFormat.CANDUMP, LogFormat.TRC):
            yield from self._read_resumable()
        else:
            yield from self._read_whole()

    def _read_resumable(self) -> Iterator[can.Message]:
        # python-can's candump and TRC readers raise on a bad line and end their generator;
        # both keep no state between lines, so a fresh generator continues after the bad line.
        with self.path.open(encoding="utf-8", errors="replace") as raw:
            tracker = _LineTracker(raw)
            reader_type = (
                can.CanutilsLogReader if self.format is LogFormat.CANDUMP else can.TRCReader
            )
            reader = reader_type(tracker)  # type: ignore[arg-type]
            while True:
                try:
                    for message in reader:
                        self.stats.frames += 1
                        yield message
                except (ValueError, IndexError, KeyError) as exc:
                    reason = f"bad-line: {type(exc).__name__}"
                    self.stats.record_bad(tracker.line_no, reason, tracker.last)
                    continue
                return

    def _read_whole(self) -> Iterator[can.Message]:
        reader: MessageReader = (
            can.BLFReader(self.path) if self.format is LogFormat.BLF else can.ASCReader(self.path)
        )
        try:
            for message in reader:
                self.stats.frames += 1
                yield message
        except (ValueError, IndexError, KeyError, can.CanError) as exc:
            # ASC and BLF readers keep state (header, object stream); reading ends here
            self.stats.record_bad(0, f"unreadable-rest: {type(exc).__name__}", str(exc))
        finally:
            reader.stop()


def open_log(path: str | Path, fmt: LogFormat | str | None = None) -> RecordedLog:
    """Open a recorded log for iteration.

    Args:
        path: the log file.
        fmt: its format (`candump`, `asc`, `blf`, `trc`, `gvret-csv`); from the suffix if None.

    Returns:
        A `RecordedLog`; iterate it for messages, read `stats` for counts.

    Raises:
        LogFormatError: the format is unknown.
    """
    return RecordedLog(path, fmt)


_GVRET_REQUIRED = ("time stamp", "id", "extended", "bus", "len")


def parse_gvret_csv(lines: Iterable[str], stats: LogStats | None = None) -> Iterator[can.Message]:
    """Parse SavvyCAN GVRET CSV (`Time Stamp,ID,Extended,[Dir,]Bus,LEN,D1..D8`).

    Time stamps are microseconds; the bus number becomes the message's `channel`. Bad rows
    are counted in `stats` with their reason and skipped.

    Args:
        lines: the file's lines, header first.
        stats: where to count frames and bad rows (a fresh one if None).

    Yields:
        One `can.Message` per good row.
    """
    stats = stats if stats is not None else LogStats()
    iterator = iter(lines)
    header = next(iterator, None)
    if header is None:
        return
    columns = [c.strip().lower() for c in header.split(",")]
    if any(name not in columns for name in _GVRET_REQUIRED):
        stats.record_bad(1, "bad-header", header)
        return
    i_ts, i_id, i_ext, i_bus, i_len = (columns.index(n) for n in _GVRET_REQUIRED)
    i_dir = columns.index("dir") if "dir" in columns else -1
    first_data = i_len + 1
    for line_no, line in enumerate(iterator, start=2):
        row = line.strip()
        if not row:
            continue
        fields = row.split(",")
        if len(fields) < first_data:
            stats.record_bad(line_no, "too-few-fields", line)
            continue
        try:
            timestamp = int(fields[i_ts]) / 1_000_000
        except ValueError:
            stats.record_bad(line_no, "bad-timestamp", line)
            continue
        try:
            arbitration_id = int(fields[i_id], 16)
        except ValueError:
            stats.record_bad(line_no, "bad-id", line)
            continue
        extended = fields[i_ext].strip().lower()
        if extended not in ("true", "false"):
            stats.record_bad(line_no, "bad-extended-flag", line)
            continue
        try:
            bus = int(fields[i_bus])
            length = int(fields[i_len])
        except ValueError:
            stats.record_bad(line_no, "bad-bus-or-length", line)
            continue
        data_fields = [f for f in fields[first_data:] if f.strip()]
        if length < 0 or length > 64 or len(data_fields) < length:
            stats.record_bad(line_no, "length-mismatch", line)
            continue
        try:
            data = bytes(int(f, 16) for f in data_fields[:length])
        except ValueError:
            stats.record_bad(line_no, "bad-data-byte", line)
            continue
        is_extended = extended == "true"
        if arbitration_id > (0x1FFF_FFFF if is_extended else 0x7FF):
            stats.record_bad(line_no, "id-out-of-range", line)
            continue
        is_rx = i_dir < 0 or fields[i_dir].strip().lower() != "tx"
        stats.frames += 1
        yield can.Message(
            timestamp=timestamp,
            arbitration_id=arbitration_id,
            is_extended_id=is_extended,
            channel=bus,
            dlc=length,
            data=data,
            is_fd=length > 8,
            is_rx=is_rx,
        )


def replay(
    messages: Iterable[can.Message],
    speed: float | None = 1.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[can.Message]:
    """Yield messages at their recorded pace, scaled by `speed`, or as fast as possible.

    Args:
        messages: messages in timestamp order (e.g. a `RecordedLog`).
        speed: 1.0 for recorded timing, 2.0 for twice as fast; None or 0 for no waiting.
        clock: monotonic clock in seconds (injectable for tests).
        sleep: sleep function (injectable for tests).

    Yields:
        The messages, unchanged.
    """
    if not speed:
        yield from messages
        return
    start_wall: float | None = None
    start_log = 0.0
    for message in messages:
        if start_wall is None:
            start_wall, start_log = clock(), message.timestamp
        else:
            due = start_wall + (message.timestamp - start_log) / speed
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield message
