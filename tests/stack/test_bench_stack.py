"""`benchmarks/stack.py` (`make bench-stack`): its core runs at a tiny size against the real
platform and prints sane figures; its search climbs, then bisects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.stack import LADDER, _grows, _next_level, percentile

ROOT = Path(__file__).resolve().parents[2]


def _level(vehicles: int, passed: bool) -> dict[str, object]:
    return {"vehicles": vehicles, "passed": passed}


def test_the_search_climbs_the_ladder_while_levels_pass() -> None:
    assert _next_level([]) == LADDER[0]
    assert _next_level([_level(2_000, True)]) == 5_000
    assert _next_level([_level(n, True) for n in LADDER]) is None


def test_the_search_bisects_between_the_last_pass_and_the_first_failure() -> None:
    assert _next_level([_level(5_000, True), _level(10_000, False)]) == 7_500
    assert _next_level([_level(2_000, False)]) == 1_000
    # Within a fifth of the level (or 500 vehicles), the search stops.
    assert _next_level([_level(7_500, True), _level(8_000, False)]) is None


def test_a_lag_grows_when_its_second_half_exceeds_one_and_a_half_times_plus_5_s() -> None:
    assert not _grows(10.0, 20.0)
    assert _grows(10.0, 20.5)
    assert not _grows(None, 100.0)


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def _processes_mentioning(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text:
            found.append(text)
    return found


@pytest.mark.slow
def test_a_tiny_level_runs_end_to_end_and_stops_every_process(tmp_path: Path) -> None:
    data = tmp_path / "stack"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "stack.py"),
            "--vehicles",
            "50",
            "--window",
            "10",
            "--warmup",
            "4",
            "--batch-interval",
            "2",
            "--data",
            str(data),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    (level,) = figures["levels"]
    assert level["vehicles"] == 50
    assert level["offered"] == level["accepted"] == 50 * 2, level
    assert level["passed"], level["why"]
    assert figures["sustained_vehicles"] == 50
    # Every sampled bundle of the window was served with its own leaf, after its receipt.
    assert level["samples"] >= 40
    p50, p99 = figures["receipt_to_served_s_p50"], figures["receipt_to_served_s_p99"]
    assert 0 < p50 <= p99 < 60
    db50, db99 = figures["receipt_to_loaded_db_s_p50"], figures["receipt_to_loaded_db_s_p99"]
    assert 0 < db50 <= db99 < 60
    assert level["bundles_in_window"] >= 50
    assert level["journaled_in_window"] >= 0.98 * level["offered_in_window"] > 0
    assert figures["databases"].startswith("sqlite")
    # The platform ran as the stack runs it, and nothing of it is left running.
    assert (data / "logs" / "oracle.log").exists()
    assert (data / "logs" / "indexer.log").exists()
    assert _processes_mentioning(data) == []
