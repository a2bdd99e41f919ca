"""Tests of the recorded-log readers and replay."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import can
import pytest

from device_bridge.exceptions import LogFormatError
from device_bridge.logs import LogFormat, LogStats, open_log, parse_gvret_csv, replay

HEADER = "Time Stamp,ID,Extended,Bus,LEN,D1,D2,D3,D4,D5,D6,D7,D8\n"
GOOD = "1000000,00000123,false,0,2,01,02\n"


def _key(message: can.Message) -> tuple[object, ...]:
    return (
        round(message.timestamp, 6),
        message.arbitration_id,
        message.is_extended_id,
        bytes(message.data),
    )


def test_savvycan_csv_gives_the_documented_counts(kona_frames: list[can.Message]) -> None:
    assert len(kona_frames) == 39_546
    assert Counter(m.channel for m in kona_frames) == {0: 24_263, 1: 15_283}
    assert len({m.arbitration_id for m in kona_frames}) == 136
    assert len({m.arbitration_id for m in kona_frames if m.channel == 0}) == 101
    assert len({m.arbitration_id for m in kona_frames if m.channel == 1}) == 52
    assert kona_frames[0].timestamp == pytest.approx(1953.6135)
    assert kona_frames[-1].timestamp - kona_frames[0].timestamp == pytest.approx(10.8404)


def test_candump_log_holds_the_same_frames_as_the_csv(
    kona_frames: list[can.Message], kona_candump: Path
) -> None:
    log = open_log(kona_candump)
    frames = list(log)
    assert [_key(m) for m in frames] == [_key(m) for m in kona_frames]
    assert {m.channel for m in frames} == {"can0", "can1"}
    assert log.stats.bad_total == 0


@pytest.mark.parametrize("suffix", [".asc", ".blf", ".trc", ".log"])
def test_logs_written_by_python_can_read_back_equal(
    suffix: str, kona_frames: list[can.Message], tmp_path: Path
) -> None:
    sample = [m for m in kona_frames[:600] if m.channel == 0]
    path = tmp_path / f"kona{suffix}"
    with can.Logger(path) as writer:
        for message in sample:
            writer.on_message_received(message)
    frames = list(open_log(path))
    assert [(m.arbitration_id, bytes(m.data)) for m in frames] == [
        (m.arbitration_id, bytes(m.data)) for m in sample
    ]
    start = sample[0].timestamp
    got = [m.timestamp - frames[0].timestamp for m in frames]
    assert got == pytest.approx([m.timestamp - start for m in sample], abs=1e-3)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1000000,00000123\n", "too-few-fields"),
        ("abc,00000123,false,0,2,01,02\n", "bad-timestamp"),
        ("1000000,zz,false,0,2,01,02\n", "bad-id"),
        ("1000000,00000123,maybe,0,2,01,02\n", "bad-extended-flag"),
        ("1000000,00000123,false,x,2,01,02\n", "bad-bus-or-length"),
        ("1000000,00000123,false,0,4,01,02\n", "length-mismatch"),
        ("1000000,00000123,false,0,2,01,G2\n", "bad-data-byte"),
        ("1000000,00000923,false,0,2,01,02\n", "id-out-of-range"),
    ],
)
def test_bad_csv_rows_are_counted_and_reading_goes_on(line: str, reason: str) -> None:
    stats = LogStats()
    frames = list(parse_gvret_csv([HEADER, GOOD, line, GOOD], stats))
    assert len(frames) == 2
    assert stats.bad == {reason: 1}
    assert stats.examples[0].line == 3


def test_csv_without_the_required_columns_counts_a_bad_header() -> None:
    stats = LogStats()
    assert list(parse_gvret_csv(["a,b,c\n", GOOD], stats)) == []
    assert stats.bad == {"bad-header": 1}


def test_csv_timestamps_are_microseconds_and_bus_is_the_channel() -> None:
    (frame,) = parse_gvret_csv([HEADER, "1953613500,00000109,false,1,3,00,01,FF\n"])
    assert frame.timestamp == pytest.approx(1953.6135)
    assert (frame.channel, frame.arbitration_id, bytes(frame.data)) == (1, 0x109, b"\x00\x01\xff")


def test_bad_candump_lines_are_counted_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "bad.log"
    path.write_text(
        "(1.000000) can0 123#0102\ngarbage line\n(1.100000) can0 12G#0102\n(1.200000) can0 124#03\n"
    )
    log = open_log(path)
    frames = list(log)
    assert [m.arbitration_id for m in frames] == [0x123, 0x124]
    assert log.stats.bad_total == 2
    assert [e.line for e in log.stats.examples] == [2, 3]


def test_unknown_log_suffix_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError):
        open_log(tmp_path / "x.mf4")
    assert LogFormat.from_path("a.TRC") is LogFormat.TRC


def test_missing_log_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="no such file"):
        list(open_log(tmp_path / "missing.log"))


def test_replay_waits_for_recorded_gaps_scaled_by_speed() -> None:
    messages = [can.Message(timestamp=t) for t in (10.0, 10.5, 11.5)]
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    out = list(replay(messages, 2.0, clock=lambda: now[0], sleep=sleep))
    assert out == messages
    assert slept == pytest.approx([0.25, 0.5])


def test_replay_without_speed_never_sleeps() -> None:
    messages = [can.Message(timestamp=t) for t in (1.0, 5.0)]

    def sleep(seconds: float) -> None:
        raise AssertionError("slept")

    assert list(replay(messages, None, sleep=sleep)) == messages
