"""CPU time of processes from `/proc` (Linux), and the machine's load, for benchmarks.

`cpu_seconds(pids)` sums user and system time (`utime + stime` of `/proc/<pid>/stat`) of the
given processes; `tree(pid)` is a process and its descendants (e.g. uvicorn's supervisor and its
workers). The clock tick is 10 ms, so a figure is only good over many ticks: measure a run of
seconds, not one request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name, or None if it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may hold spaces: split after its last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU seconds used so far by `pids` (processes gone count as 0)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total * _TICK_S


def tree(pid: int) -> list[int]:
    """`pid` and every process descending from it, found by parent id in `/proc`."""
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, ()))
    return out


def settle(threshold: float, most_s: float, poll_s: float = 5.0) -> tuple[float, float]:
    """Waits until the 1-minute load average is at most `threshold`, for at most `most_s`.

    Returns:
        The 1-minute load average when the wait ended, and the seconds waited.
    """
    started = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - started
        if load <= threshold or waited >= most_s:
            return load, waited
        time.sleep(min(poll_s, most_s - waited))
