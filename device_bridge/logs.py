"""Recorded CAN logs (candump, ASC, BLF, TRC, CSV/TSV tables) as `can.Message` streams."""

from __future__ import annotations

import enum
import math
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    "TableLayout",
    "TimeUnit",
    "detect_format",
    "infer_time_unit",
    "open_log",
    "parse_gvret_csv",
    "parse_table",
    "repair_mangled_id",
    "replay",
]

_MAX_EXAMPLES = 20
_SNIFF_BYTES = 64 * 1024
_INFER_ROWS = 200_000


class LogFormat(enum.StrEnum):
    """Log formats the bridge reads."""

    CANDUMP = "candump"  # `candump -L`: (1.000000) can0 123#DEADBEEF
    ASC = "asc"  # Vector ASCII
    BLF = "blf"  # Vector binary logging format
    TRC = "trc"  # PEAK PCAN-View trace, versions 1.0, 1.1, 1.3, 2.0, 2.1
    CSV = "csv"  # python-can's CSV: timestamp,arbitration_id,extended,remote,error,dlc,data
    GVRET_CSV = "gvret-csv"  # SavvyCAN GVRET CSV and its variants (BOM, DLC, 0/1 flags)
    TABLE = "table"  # tab-, comma- or semicolon-separated export with a header row

    @classmethod
    def from_path(cls, path: str | Path) -> LogFormat:
        """Tell the format from a file name (a hint only: `detect_format` reads the content).

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
    ".tsv": LogFormat.TABLE,
    ".txt": LogFormat.TABLE,
}


class TimeUnit(enum.StrEnum):
    """Units of a table's time column."""

    S = "s"
    MS = "ms"
    US = "us"
    NS = "ns"

    @property
    def seconds(self) -> float:
        """Seconds per unit."""
        return _UNIT_SECONDS[self]


_UNIT_SECONDS = {TimeUnit.S: 1.0, TimeUnit.MS: 1e-3, TimeUnit.US: 1e-6, TimeUnit.NS: 1e-9}


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
        repaired: records read after a repair, by kind (`repaired-id`).
        repair_examples: the first repaired records, with what they became.
    """

    frames: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    examples: list[BadRecord] = field(default_factory=list)
    repaired: Counter[str] = field(default_factory=Counter)
    repair_examples: list[BadRecord] = field(default_factory=list)

    def record_bad(self, line: int, reason: str, text: str) -> None:
        """Count one bad record and keep it as an example if there is room."""
        self.bad[reason] += 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(BadRecord(line, reason, text.strip()[:120]))

    def record_repair(self, line: int, kind: str, text: str) -> None:
        """Count one repaired record and keep it as an example if there is room."""
        self.repaired[kind] += 1
        if len(self.repair_examples) < _MAX_EXAMPLES:
            self.repair_examples.append(BadRecord(line, kind, text.strip()[:120]))

    @property
    def bad_total(self) -> int:
        """Number of bad records of every reason."""
        return sum(self.bad.values())


# -- format detection -------------------------------------------------------------------------

_CANDUMP_LINE = re.compile(r"^\s*\(\s*\d+(\.\d+)?\)\s+\S+\s+[0-9A-Fa-f]+#")
_PYTHON_CAN_CSV = "timestamp,arbitration_id,extended,remote,error,dlc,data"


def detect_format(path: str | Path) -> tuple[LogFormat, str]:
    """Tell a log's format from its content, not its name.

    Args:
        path: the log file.

    Returns:
        The format and a short reason (what in the file gave it away).

    Raises:
        LogFormatError: the file is missing, empty, or in no layout the bridge reads.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            head = file.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise LogFormatError(path, "no such file") from None
    except OSError as exc:
        raise LogFormatError(path, f"cannot read: {exc}") from None
    if head.startswith(b"LOGG"):
        return LogFormat.BLF, "BLF signature LOGG"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise LogFormatError(path, "the file is empty")
    first = lines[0].strip()
    if first.startswith(";$FILEVERSION") or (
        first.startswith(";") and any("PCAN" in line or "$STARTTIME" in line for line in lines[:20])
    ):
        return LogFormat.TRC, f"PCAN trace header {first[:40]!r}"
    if re.match(r"^(date|base\s+hex|base\s+dec)\b", first, flags=re.IGNORECASE):
        return LogFormat.ASC, f"Vector ASC header {first[:40]!r}"
    if any(_CANDUMP_LINE.match(line) for line in lines[:5]):
        return LogFormat.CANDUMP, "candump -L lines `(time) channel id#data`"
    if first.replace(" ", "").lower() == _PYTHON_CAN_CSV:
        return LogFormat.CSV, "python-can CSV header"
    layout = TableLayout.from_header(first)
    if layout is not None:
        if layout.gvret:
            return LogFormat.GVRET_CSV, f"SavvyCAN/GVRET header {first[:60]!r}"
        return LogFormat.TABLE, f"header row with columns {layout.describe()}"
    raise LogFormatError(
        path,
        f"cannot tell the format from the first line {first[:80]!r}: not candump -L, ASC, BLF, "
        "TRC, python-can CSV, SavvyCAN/GVRET CSV, nor a table whose header names an id and "
        f"a data column ({_EXPECTED})",
    )


# -- header-row tables (GVRET, SavvyCAN, PC tool exports) -------------------------------------

_TIME_NAMES = {"time stamp", "timestamp", "time", "ts", "abs time", "time offset", "t"}
_ID_NAMES = {
    "id",
    "can id",
    "canid",
    "can_id",
    "arbitration_id",
    "arbitration id",
    "identifier",
    "msg id",
    "message id",
    "frame id",
    "msgid",
}
_EXT_NAMES = {"extended", "ext", "ide", "is_extended_id", "is extended", "xtd"}
_BUS_NAMES = {"bus", "channel", "chan", "ch", "can bus", "interface", "port"}
_LEN_NAMES = {"len", "dlc", "length", "data length", "size"}
_DIR_NAMES = {"dir", "direction", "rx/tx"}
_DATA_NAMES = {"data", "payload", "data bytes", "bytes data", "message data"}
_DATA_COLUMN = re.compile(r"^(d|b|byte|data)\s*\[?(\d{1,2})\]?$")
_EXPECTED = (
    "id: ID / CAN ID / Identifier / arbitration_id; data: Data / D1..D8 / B0..B7; optional: "
    "Time Stamp / Time / Timestamp, Extended, Bus / Channel, LEN / DLC / Length, Dir"
)
_TRUE = {"true", "1", "yes", "y", "x", "ext", "extended", "t"}
_FALSE = {"false", "0", "no", "n", "", "std", "standard", "f"}
_UNIT_IN_NAME = (
    (re.compile(r"(\(|\[|_|\s)(us|µs|μs|usec)(\)|\]|$)"), TimeUnit.US),
    (re.compile(r"(\(|\[|_|\s)(ms|msec)(\)|\]|$)"), TimeUnit.MS),
    (re.compile(r"(\(|\[|_|\s)(ns|nsec)(\)|\]|$)"), TimeUnit.NS),
    (re.compile(r"(\(|\[|_|\s)(s|sec|secs|seconds)(\)|\]|$)"), TimeUnit.S),
)


def _norm(name: str) -> str:
    return " ".join(name.strip().strip('"').strip("'").lstrip("\ufeff").lower().split())


def _bare(name: str) -> str:
    return re.sub(r"\s*[(\[].*$", "", re.sub(r"_(ms|us|ns|s)$", "", name)).strip()


@dataclass(frozen=True, slots=True)
class TableLayout:
    """Where each field sits in a header-row table.

    Attributes:
        delimiter: the column separator (tab, comma or semicolon).
        columns: the header's names, normalised (lower case, single spaces, no BOM).
        time: index of the time column, or -1.
        id: index of the id column.
        extended: index of the extended-id flag, or -1 (then ids above 0x7FF are extended).
        bus: index of the bus/channel column, or -1 (then bus 0).
        length: index of the DLC/LEN column, or -1.
        direction: index of the Rx/Tx column, or -1.
        data: indices of the data columns: one column of space-separated bytes, or one a byte.
        time_unit: the unit the time column's name states, or None.
        gvret: whether this is SavvyCAN's GVRET layout (`Time Stamp,ID,Extended,...`).
    """

    delimiter: str
    columns: tuple[str, ...]
    time: int
    id: int
    extended: int
    bus: int
    length: int
    direction: int
    data: tuple[int, ...]
    time_unit: TimeUnit | None
    gvret: bool

    @classmethod
    def from_header(cls, header: str) -> TableLayout | None:
        """Recognise a header row by its column names; None if it names no id or data column."""
        best: TableLayout | None = None
        for delimiter in ("\t", ",", ";"):
            if delimiter not in header:
                continue
            layout = cls._parse(header, delimiter)
            if layout is not None and (best is None or len(layout.columns) > len(best.columns)):
                best = layout
        return best

    @classmethod
    def _parse(cls, header: str, delimiter: str) -> TableLayout | None:
        columns = tuple(_norm(c) for c in header.rstrip("\r\n").split(delimiter))
        bare = [_bare(c) for c in columns]

        def find(names: set[str]) -> int:
            return next((i for i, c in enumerate(bare) if c in names), -1)

        id_col = find(_ID_NAMES)
        if id_col < 0:
            return None
        data_col = find(_DATA_NAMES)
        numbered = sorted(
            ((int(m.group(2)), i) for i, c in enumerate(bare) if (m := _DATA_COLUMN.match(c))),
        )
        length = find(_LEN_NAMES)
        if data_col >= 0:
            data: tuple[int, ...] = (data_col,)
        elif numbered:
            data = tuple(i for _, i in numbered)
        elif length >= 0 and length == len(columns) - 1:
            data = ()  # GVRET-like files whose byte columns carry no names
        else:
            return None
        time_col = find(_TIME_NAMES)
        if time_col < 0:
            time_col = next((i for i, c in enumerate(bare) if c.startswith("time")), -1)
        unit = None
        if time_col >= 0:
            unit = next((u for rx, u in _UNIT_IN_NAME if rx.search(" " + columns[time_col])), None)
        gvret = bare[:2] == ["time stamp", "id"] and "extended" in bare and "bus" in bare
        return cls(
            delimiter=delimiter,
            columns=columns,
            time=time_col,
            id=id_col,
            extended=find(_EXT_NAMES),
            bus=find(_BUS_NAMES),
            length=length,
            direction=find(_DIR_NAMES),
            data=data,
            time_unit=unit,
            gvret=gvret,
        )

    def describe(self) -> str:
        """The recognised columns, for reports."""
        parts = [f"id={self.columns[self.id]!r}"]
        if self.time >= 0:
            parts.append(f"time={self.columns[self.time]!r}")
        if self.length >= 0:
            parts.append(f"length={self.columns[self.length]!r}")
        if self.extended >= 0:
            parts.append(f"extended={self.columns[self.extended]!r}")
        if self.bus >= 0:
            parts.append(f"bus={self.columns[self.bus]!r}")
        names = [self.columns[i] for i in self.data] or ["columns after length"]
        parts.append(f"data={names[0]!r}" + (f"..{names[-1]!r}" if len(names) > 1 else ""))
        return ", ".join(parts)

    @property
    def default_unit(self) -> TimeUnit:
        """The time unit of the published layout: µs for GVRET, seconds otherwise."""
        return TimeUnit.US if self.gvret else TimeUnit.S


_BUS_NAME = re.compile(r"^[A-Za-z]+[0-9]+$")
_MANGLED_ID = re.compile(r"^(\d+)(?:\.(\d+))?e\+?(\d+)$", flags=re.IGNORECASE)


def repair_mangled_id(text: str, known_ids: Iterable[int]) -> tuple[int | None, list[int]]:
    """Repair an id that a spreadsheet rewrote as a number in E notation (`3.00E+09`).

    A hex id such as `3E9` (or `000003E9`) reads as 3 x 10^9 to a spreadsheet, which shows
    `3.00E+09`. The shown value is compared with every known id whose hex spelling has the
    form `<digits>E<digits>`; the repair is made only if exactly one matches.

    Args:
        text: the id field as written in the file.
        known_ids: the ids the DBC defines and the rest of the file uses.

    Returns:
        The repaired id (None if none or several match) and the ids that matched.
    """
    match = _MANGLED_ID.match(text.strip())
    if match is None:
        return None, []
    shown = float(text.strip())
    decimals = len(match.group(2) or "")
    digits = len(match.group(1)) + decimals
    # the shown mantissa is rounded to its digits: half a unit of its last place
    tolerance = 0.5 * 10.0 ** (math.floor(math.log10(shown)) - digits + 1) if shown else 0.5
    matches = []
    for known in sorted(set(known_ids)):
        spelled = re.match(r"^(\d+)E(\d+)$", f"{known:X}")
        if spelled is None:
            continue
        value = int(spelled.group(1)) * 10.0 ** int(spelled.group(2))
        if abs(value - shown) <= tolerance * (1 + 1e-9):
            matches.append(known)
    return (matches[0] if len(matches) == 1 else None), matches


def _parse_id(text: str) -> int:
    raw = text.strip().strip('"').lower()
    raw = raw.removesuffix("h").removesuffix("x")
    return int(raw.removeprefix("0x"), 16)


def _parse_flag(text: str) -> bool | None:
    value = text.strip().strip('"').lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _parse_bytes(fields: Sequence[str]) -> bytes:
    out = bytearray()
    for chunk in fields:
        for token in chunk.replace(",", " ").split():
            out.append(int(token.lower().removeprefix("0x"), 16))
    return bytes(out)


def _split(line: str, delimiter: str) -> list[str]:
    return [f.strip().strip('"') for f in line.rstrip("\r\n").split(delimiter)]


def infer_time_unit(
    rows: Iterable[tuple[float, object]], default: TimeUnit, *, truncated: bool = False
) -> tuple[TimeUnit, str]:
    """Infer a time column's unit from the spread of the times and the frames' periods.

    Periodic CAN frames repeat every 1 ms .. 5 s, most every 10-100 ms. The median of the ids'
    median periods is read in each unit; the unit giving a period nearest 50 ms (log scale)
    wins, among those that keep the whole recording under 30 days.

    Args:
        rows: (raw time, frame key such as (bus, id)) pairs in file order.
        default: the unit to keep when the data cannot tell (fewer than 2 repeats of any id).
        truncated: whether `rows` are only the file's first rows (said in the reason).

    Returns:
        The unit and a sentence saying how it was chosen.
    """
    last: dict[object, float] = {}
    periods: defaultdict[object, list[float]] = defaultdict(list)
    first_time: float | None = None
    last_time = 0.0
    for raw, key in rows:
        if first_time is None:
            first_time = raw
        last_time = raw
        previous = last.get(key)
        if previous is not None and raw > previous:
            periods[key].append(raw - previous)
        last[key] = raw
    per_id = [statistics.median(p) for p in periods.values() if len(p) >= 2]
    if not per_id or first_time is None:
        return default, f"{default.value} (the layout's default; too few repeated frames to infer)"
    period = statistics.median(per_id)
    spread = last_time - first_time
    candidates = [u for u in TimeUnit if spread * u.seconds <= 30 * 86_400]
    best = min(
        candidates or list(TimeUnit),
        key=lambda u: abs(math.log10(max(period * u.seconds, 1e-12)) - math.log10(0.05)),
    )
    seconds = period * best.seconds
    return best, (
        f"{best.value} (inferred: median frame period {period:g} raw = {seconds * 1000:.3g} ms, "
        f"{'first ' if truncated else ''}{spread * best.seconds:.4g} s recorded)"
    )


def parse_table(
    lines: Iterable[str],
    stats: LogStats | None = None,
    *,
    time_unit: TimeUnit | str | None = None,
    known_ids: Iterable[int] = (),
    layout: TableLayout | None = None,
) -> Iterator[can.Message]:
    """Parse a header-row table (GVRET/SavvyCAN CSV, tab- or comma-separated tool exports).

    Columns are found by name (`TableLayout`); bad rows are counted in `stats` with their
    reason and skipped; ids a spreadsheet rewrote in E notation are repaired when exactly one
    of `known_ids` (and the ids of the other rows) matches (`repaired-id`), else counted as
    `bad-id`.

    Args:
        lines: the file's lines, header first (a UTF-8 BOM is ignored).
        stats: where to count frames, bad and repaired rows (a fresh one if None).
        time_unit: the time column's unit; None: the unit its name states, else seconds
            (µs for GVRET). `RecordedLog` infers it from the data first.
        known_ids: ids a mangled id may be repaired to (e.g. the DBC's).
        layout: the layout, if already known; read from the header otherwise.

    Yields:
        One `can.Message` per good row.
    """
    stats = stats if stats is not None else LogStats()
    iterator = iter(lines)
    header = next(iterator, None)
    if header is None:
        return
    layout = layout or TableLayout.from_header(header.lstrip("\ufeff"))
    if layout is None:
        stats.record_bad(1, "bad-header", f"{header.strip()[:60]} (expected columns: {_EXPECTED})")
        return
    unit = TimeUnit(time_unit) if time_unit else (layout.time_unit or layout.default_unit)
    factor = unit.seconds
    known = set(known_ids)
    data_start = layout.length + 1 if layout.length >= 0 else max(layout.id, layout.time) + 1
    needed = max(layout.id, layout.time, layout.extended, layout.bus, layout.length) + 1
    delimiter = layout.delimiter
    for line_no, line in enumerate(iterator, start=2):
        if not line.strip():
            continue
        fields = _split(line, delimiter)
        if len(fields) < needed:
            stats.record_bad(line_no, "too-few-fields", line)
            continue
        timestamp = 0.0
        if layout.time >= 0:
            try:
                timestamp = float(fields[layout.time]) * factor
            except ValueError:
                stats.record_bad(line_no, "bad-timestamp", line)
                continue
        id_text = fields[layout.id]
        try:
            arbitration_id = _parse_id(id_text)
        except ValueError:
            repaired, matches = repair_mangled_id(id_text, known)
            if repaired is None:
                why = "no known id matches" if not matches else f"ambiguous: {matches}"
                stats.record_bad(line_no, "bad-id", f"{id_text} ({why}): {line}")
                continue
            arbitration_id = repaired
            stats.record_repair(line_no, "repaired-id", f"{id_text} -> 0x{repaired:X}")
        if layout.extended >= 0:
            flag = _parse_flag(fields[layout.extended])
            if flag is None:
                stats.record_bad(line_no, "bad-extended-flag", line)
                continue
            is_extended = flag
        else:
            is_extended = arbitration_id > 0x7FF
        bus: int | str = 0
        if layout.bus >= 0:
            raw_bus = fields[layout.bus]
            if raw_bus.isdigit():
                bus = int(raw_bus)
            elif _BUS_NAME.match(raw_bus):
                bus = raw_bus
            else:
                stats.record_bad(line_no, "bad-bus-or-length", line)
                continue
        try:
            length = int(fields[layout.length]) if layout.length >= 0 else -1
        except ValueError:
            stats.record_bad(line_no, "bad-bus-or-length", line)
            continue
        data_fields = (
            [fields[i] for i in layout.data if i < len(fields)]
            if layout.data
            else fields[data_start:]
        )
        try:
            data = _parse_bytes(data_fields)
        except ValueError:
            stats.record_bad(line_no, "bad-data-byte", line)
            continue
        if length < 0:
            length = len(data)
        if length > 64 or len(data) < length:
            stats.record_bad(line_no, "length-mismatch", line)
            continue
        if arbitration_id > (0x1FFF_FFFF if is_extended else 0x7FF):
            stats.record_bad(line_no, "id-out-of-range", line)
            continue
        is_rx = layout.direction < 0 or fields[layout.direction].strip().lower() != "tx"
        stats.frames += 1
        yield can.Message(
            timestamp=timestamp,
            arbitration_id=arbitration_id,
            is_extended_id=is_extended,
            channel=bus,
            dlc=length,
            data=data[:length],
            is_fd=length > 8,
            is_rx=is_rx,
        )


def parse_gvret_csv(lines: Iterable[str], stats: LogStats | None = None) -> Iterator[can.Message]:
    """Parse SavvyCAN GVRET CSV (`Time Stamp,ID,Extended,[Dir,]Bus,LEN,D1..D8`), times in µs.

    Args:
        lines: the file's lines, header first.
        stats: where to count frames and bad rows (a fresh one if None).

    Yields:
        One `can.Message` per good row.
    """
    return parse_table(lines, stats, time_unit=TimeUnit.US)


# -- the reader -------------------------------------------------------------------------------


class _LineTracker:
    """A text file whose lines python-can reads, remembering the last one handed out."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.line_no = 0
        self.last = ""
        self.pushed: list[str] = []

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        if self.pushed:
            return self.pushed.pop()
        line = next(self._file)
        self.line_no += 1
        self.last = line
        return line

    def readline(self) -> str:
        if self.pushed:
            return self.pushed.pop()
        line = self._file.readline()
        if line:
            self.line_no += 1
            self.last = line
        return line

    def close(self) -> None:
        self._file.close()


class RecordedLog(Iterable[can.Message]):
    """A recorded log, iterated as `can.Message` objects; bad records are counted, not raised.

    The format is told from the content (`detect_format`) unless given. Reading is done by
    python-can's own readers (`can.CanutilsLogReader`, `can.ASCReader`, `can.BLFReader`,
    `can.TRCReader`, `can.CSVReader`) except header-row tables (SavvyCAN GVRET CSV and tool
    exports), which python-can does not read. Each message carries its bus in `channel`
    (`"can0"` for candump, the bus number for tables, 0-based channel numbers for ASC/BLF/TRC
    as python-can gives them).
    """

    def __init__(
        self,
        path: str | Path,
        fmt: LogFormat | str | None = None,
        *,
        time_unit: TimeUnit | str | None = None,
        known_ids: Iterable[int] = (),
    ) -> None:
        """Detect the format (reading the file's head); the frames are read on iteration.

        Args:
            path: the log file.
            fmt: its format; told from the content if None.
            time_unit: the unit of a table's time column; inferred if None.
            known_ids: ids a spreadsheet-mangled id may be repaired to (the DBCs' ids).

        Raises:
            LogFormatError: the format is unknown or cannot be told, or the file is missing.
        """
        self.path = Path(path)
        self.known_ids = frozenset(known_ids)
        try:
            self.time_unit: TimeUnit | None = TimeUnit(time_unit) if time_unit else None
        except ValueError:
            raise LogFormatError(
                path, f"unknown time unit {time_unit!r}; use {[u.value for u in TimeUnit]}"
            ) from None
        self.time_unit_reason = f"{self.time_unit.value} (--time-unit)" if self.time_unit else ""
        if fmt is not None:
            try:
                self.format = LogFormat(fmt)
            except ValueError:
                raise LogFormatError(
                    path, f"unknown format {fmt!r}; use {[f.value for f in LogFormat]}"
                ) from None
            self.format_reason = "given"
        else:
            self.format, self.format_reason = detect_format(self.path)
        self.stats = LogStats()
        self._layout: TableLayout | None = None

    def describe(self) -> str:
        """The assumed format and, for tables, the columns and time unit, in one line."""
        text = f"{self.format.value} ({self.format_reason})"
        if self._layout is not None:
            text += f"; columns {self._layout.describe()}"
        if self.time_unit_reason:
            text += f"; time unit {self.time_unit_reason}"
        return text

    def first_line(self) -> str:
        """The file's first non-empty line (text formats), for error messages."""
        if self.format is LogFormat.BLF:
            return "<binary BLF>"
        try:
            with self.path.open(encoding="utf-8-sig", errors="replace") as file:
                return next((line.strip() for line in file if line.strip()), "")[:120]
        except OSError:
            return ""

    def __iter__(self) -> Iterator[can.Message]:
        """Yield the log's messages in file order; `stats` is reset and filled as it goes."""
        self.stats = LogStats()
        if not self.path.is_file():
            raise LogFormatError(self.path, "no such file")
        if self.format in (LogFormat.GVRET_CSV, LogFormat.TABLE):
            yield from self._read_table()
        elif self.format in (LogFormat.CANDUMP, LogFormat.TRC, LogFormat.CSV):
            yield from self._read_resumable()
        else:
            yield from self._read_whole()

    def _open_text(self) -> IO[str]:
        return self.path.open(encoding="utf-8-sig", errors="replace", newline="")

    def _read_table(self) -> Iterator[can.Message]:
        with self._open_text() as file:
            header = file.readline()
            layout = TableLayout.from_header(header)
        self._layout = layout
        if layout is None:
            self.stats.record_bad(
                1, "bad-header", f"{header.strip()[:60]} (expected columns: {_EXPECTED})"
            )
            return
        known = set(self.known_ids)
        if self.time_unit is None:
            unit, reason = self._infer_unit(layout, known)
            self.time_unit, self.time_unit_reason = unit, reason
        else:
            with self._open_text() as file:
                known |= {m.arbitration_id for m in parse_table(file, LogStats(), layout=layout)}
        with self._open_text() as file:
            yield from parse_table(
                file, self.stats, time_unit=self.time_unit, known_ids=known, layout=layout
            )

    def _infer_unit(self, layout: TableLayout, known: set[int]) -> tuple[TimeUnit, str]:
        # one pass collects the ids the file uses (for mangled-id repair) and the times
        rows: list[tuple[float, object]] = []
        truncated = False
        with self._open_text() as file:
            for message in parse_table(file, LogStats(), time_unit=TimeUnit.S, layout=layout):
                known.add(message.arbitration_id)
                if len(rows) < _INFER_ROWS:
                    rows.append((message.timestamp, (message.channel, message.arbitration_id)))
                else:
                    truncated = True
        if layout.time < 0:
            return TimeUnit.S, "s (no time column: every frame at 0)"
        if layout.time_unit is not None:
            return layout.time_unit, f"{layout.time_unit.value} (named in the time column)"
        return infer_time_unit(rows, layout.default_unit, truncated=truncated)

    def _read_resumable(self) -> Iterator[can.Message]:
        # python-can's candump, TRC and CSV readers raise on a bad line and end their
        # generator; they keep no state between lines (the CSV reader skips one header line
        # per generator, so it gets the header back), so a fresh one continues after the line.
        with self._open_text() as raw:
            tracker = _LineTracker(raw)
            header = ""
            reader: MessageReader
            if self.format is LogFormat.CANDUMP:
                reader = can.CanutilsLogReader(tracker)  # type: ignore[arg-type]
            elif self.format is LogFormat.TRC:
                reader = can.TRCReader(tracker)  # type: ignore[arg-type]
            else:
                header = _PYTHON_CAN_CSV + "\n"
                reader = can.CSVReader(tracker)  # type: ignore[arg-type]
            while True:
                try:
                    for message in reader:
                        self.stats.frames += 1
                        yield message
                except (ValueError, IndexError, KeyError, TypeError) as exc:
                    reason = f"bad-line: {type(exc).__name__}"
                    self.stats.record_bad(tracker.line_no, reason, tracker.last)
                    if header:
                        tracker.pushed.append(header)
                    continue
                return

    def _read_whole(self) -> Iterator[can.Message]:
        try:
            reader: MessageReader = (
                can.BLFReader(self.path)
                if self.format is LogFormat.BLF
                else can.ASCReader(self.path)
            )
        except (ValueError, IndexError, KeyError, can.CanError, OSError) as exc:
            self.stats.record_bad(0, f"unreadable: {type(exc).__name__}", str(exc))
            return
        try:
            for message in reader:
                self.stats.frames += 1
                yield message
        except (ValueError, IndexError, KeyError, can.CanError) as exc:
            # ASC and BLF readers keep state (header, object stream); reading ends here
            self.stats.record_bad(0, f"unreadable-rest: {type(exc).__name__}", str(exc))
        finally:
            reader.stop()


def open_log(
    path: str | Path,
    fmt: LogFormat | str | None = None,
    *,
    time_unit: TimeUnit | str | None = None,
    known_ids: Iterable[int] = (),
) -> RecordedLog:
    """Open a recorded log for iteration.

    Args:
        path: the log file.
        fmt: its format (`candump`, `asc`, `blf`, `trc`, `csv`, `gvret-csv`, `table`); told
            from the content if None.
        time_unit: the unit of a table's time column (`s`, `ms`, `us`, `ns`); inferred if None.
        known_ids: ids a spreadsheet-mangled id may be repaired to (the DBCs' ids).

    Returns:
        A `RecordedLog`; iterate it for messages, read `stats` for counts.

    Raises:
        LogFormatError: the format is unknown or cannot be told, or the file is missing.
    """
    return RecordedLog(path, fmt, time_unit=time_unit, known_ids=known_ids)


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
