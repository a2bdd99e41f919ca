"""Tests of log formats as owners hand them in: detection by content, table variants, units."""

from __future__ import annotations

import re
from pathlib import Path

import can
import pytest
from typer.testing import CliRunner, Result

from device_bridge.cli import app
from device_bridge.decoder import Decoder
from device_bridge.exceptions import LogFormatError
from device_bridge.logs import (
    LogFormat,
    TimeUnit,
    infer_time_unit,
    open_log,
    repair_mangled_id,
)

SAMPLE = 3_000


def _key(message: can.Message) -> tuple[object, ...]:
    return (message.channel, message.arbitration_id, message.is_extended_id, bytes(message.data))


@pytest.fixture(scope="module")
def sample(kona_frames: list[can.Message]) -> list[can.Message]:
    return kona_frames[:SAMPLE]


def _gvret_rows(
    frames: list[can.Message], *, ext: tuple[str, str] = ("true", "false"), dlc: str = "LEN"
) -> list[str]:
    rows = [f"Time Stamp,ID,Extended,Dir,Bus,{dlc},D1,D2,D3,D4,D5,D6,D7,D8\n"]
    for m in frames:
        data = ",".join(f"{b:02X}" for b in m.data)
        flag = ext[0] if m.is_extended_id else ext[1]
        stamp = round(m.timestamp * 1e6)
        rows.append(f"{stamp},{m.arbitration_id:08X},{flag},Rx,{m.channel},{len(m.data)},{data}\n")
    return rows


@pytest.mark.parametrize(
    ("writer_suffix", "name", "fmt"),
    [
        (".blf", "recording.log", LogFormat.BLF),
        (".asc", "recording.csv", LogFormat.ASC),
        (".trc", "recording.log", LogFormat.TRC),
        (".csv", "recording.txt", LogFormat.CSV),
        (".log", "recording.csv", LogFormat.CANDUMP),
    ],
)
def test_files_written_by_python_can_are_told_by_content_not_name(
    writer_suffix: str, name: str, fmt: LogFormat, sample: list[can.Message], tmp_path: Path
) -> None:
    frames = [m for m in sample if m.channel == 0][:500]
    written = tmp_path / f"w{writer_suffix}"
    with can.Logger(written) as writer:
        for message in frames:
            writer.on_message_received(message)
    misnamed = tmp_path / name
    written.rename(misnamed)
    log = open_log(misnamed)
    got = list(log)
    assert log.format is fmt
    assert [(m.arbitration_id, bytes(m.data)) for m in got] == [
        (m.arbitration_id, bytes(m.data)) for m in frames
    ]
    assert got[-1].timestamp - got[0].timestamp == pytest.approx(
        frames[-1].timestamp - frames[0].timestamp, abs=1e-3
    )


def test_savvycan_variant_with_bom_dlc_and_0_1_flags_reads_like_gvret(
    sample: list[can.Message], tmp_path: Path
) -> None:
    path = tmp_path / "savvycan.log"  # a misleading suffix on purpose
    path.write_text("\ufeff" + "".join(_gvret_rows(sample, ext=("1", "0"), dlc="DLC")))
    log = open_log(path)
    frames = list(log)
    assert log.format is LogFormat.GVRET_CSV
    assert log.stats.bad_total == 0
    assert [_key(m) for m in frames] == [_key(m) for m in sample]
    assert [m.timestamp for m in frames] == pytest.approx([m.timestamp for m in sample])
    assert log.time_unit is TimeUnit.US
    assert "inferred" in log.describe()


def test_bad_header_names_the_columns_it_expected(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Time Stamp,Ident,Extended,Bus,LEN,D1\n1,1,false,0,1,01\n")
    with pytest.raises(LogFormatError, match=r"ID / CAN ID / Identifier"):
        open_log(path)


def _tab_export(frames: list[can.Message], unit_scale: float) -> str:
    rows = ["Time\tID\tLength\tData\n"]
    start = frames[0].timestamp
    for m in frames:
        stamp = round((m.timestamp - start) * unit_scale + 58 * unit_scale)
        data = "0x" + " ".join(f"{b:02x}" for b in m.data)
        rows.append(f"{stamp}\t0x{m.arbitration_id:08x}\t{len(m.data)}\t{data}\n")
    return "".join(rows)


@pytest.mark.parametrize(
    ("per_second", "unit", "name"),
    [(1000.0, TimeUnit.MS, "export.log"), (1e6, TimeUnit.US, "export.tsv")],
)
def test_tab_separated_export_is_read_in_the_unit_its_frame_periods_show(
    per_second: float, unit: TimeUnit, name: str, sample: list[can.Message], tmp_path: Path
) -> None:
    frames = [m for m in sample if m.channel == 0]
    path = tmp_path / name
    path.write_text(_tab_export(frames, per_second))
    log = open_log(path)
    got = list(log)
    assert log.format is LogFormat.TABLE
    assert log.time_unit is unit
    assert "inferred" in log.time_unit_reason
    assert got[0].timestamp == pytest.approx(58.0)  # not 0.058 s
    assert got[-1].timestamp - got[0].timestamp == pytest.approx(
        frames[-1].timestamp - frames[0].timestamp, abs=1e-3
    )
    assert [(m.arbitration_id, bytes(m.data)) for m in got] == [
        (m.arbitration_id, bytes(m.data)) for m in frames
    ]


def test_time_unit_option_overrides_the_inference(
    sample: list[can.Message], tmp_path: Path
) -> None:
    path = tmp_path / "export.log"
    path.write_text(_tab_export([m for m in sample if m.channel == 0], 1000.0))
    log = open_log(path, time_unit="s")
    assert next(iter(log)).timestamp == pytest.approx(58_000.0)
    assert log.time_unit_reason == "s (--time-unit)"


def test_time_unit_inference_keeps_the_layout_default_without_repeats() -> None:
    unit, reason = infer_time_unit([(1.0, 1), (2.0, 2)], TimeUnit.US)
    assert unit is TimeUnit.US
    assert "default" in reason


def test_format_option_overrides_detection(sample: list[can.Message], tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("".join(_gvret_rows(sample[:10])))
    log = open_log(path, fmt="candump")
    assert list(log) == []
    assert log.stats.bad_total == 11


def _mangle(hex_id: str) -> str:
    """What a spreadsheet shows for a hex id that looks like E notation (000005E5 -> 5.00E+05)."""
    if not re.fullmatch(r"0*\d+E\d+", hex_id):
        return hex_id
    return f"{float(hex_id):.2E}"


def test_spreadsheet_mangled_ids_are_repaired_when_one_dbc_id_matches(
    kona_frames: list[can.Message], kona_decoder: Decoder, tmp_path: Path
) -> None:
    rows = _gvret_rows(kona_frames)
    mangled = [rows[0]]
    for row in rows[1:]:
        fields = row.split(",")
        fields[1] = _mangle(fields[1])
        mangled.append(",".join(fields))
    mangled.append("1953700000,1.00E+03,false,Rx,0,1,00\n")  # 0x1E3: no known id
    path = tmp_path / "edited.csv"
    path.write_text("".join(mangled))
    blind = open_log(path)  # without the DBC's ids, every mangled row is a bad-id
    list(blind)
    assert blind.stats.bad == {"bad-id": 482}
    log = open_log(path, known_ids=kona_decoder.all_known_ids())
    frames = list(log)
    repaired = sum(1 for m in kona_frames if re.fullmatch(r"\d+E\d+", f"{m.arbitration_id:X}"))
    assert repaired == 481  # BMS_4E2, CCM_5E5 ... every one of their frames
    assert log.stats.repaired == {"repaired-id": repaired}
    assert [_key(m) for m in frames] == [_key(m) for m in kona_frames]
    assert log.stats.bad == {"bad-id": 1}
    assert "1.00E+03" in log.stats.examples[0].text


def test_a_mangled_id_matching_two_known_ids_is_a_bad_id() -> None:
    assert repair_mangled_id("3.00E+09", {0x3E9}) == (0x3E9, [0x3E9])
    assert repair_mangled_id("3.00E+09", {0x3E9, 0x30E8}) == (None, [0x3E9, 0x30E8])
    assert repair_mangled_id("1DB", {0x1DB}) == (None, [])


def test_an_unrecognisable_file_is_a_typed_error_naming_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.log"
    path.write_text("hello world\n")
    with pytest.raises(LogFormatError, match="hello world"):
        open_log(path)


def _decode(log: Path, dbc_dir: Path) -> Result:
    args = ["decode", str(log), "--model", "hyundai_kona_ev_2019", "--dbc-dir", str(dbc_dir)]
    return CliRunner().invoke(app, args)


def test_decode_of_a_0_frame_log_exits_non_zero_naming_format_and_line(
    tmp_path: Path, kona_dir: Path
) -> None:
    path = tmp_path / "broken.log"
    path.write_text("(1.000000) can0 123#0G\n(1.100000) can0 123#zz\n")
    result = _decode(path, kona_dir)
    assert result.exit_code != 0
    assert "read 0 frames assuming candump" in result.output
    assert "line 1" in result.output
    assert "123#0G" in result.output


def test_decode_of_frames_that_map_to_nothing_exits_non_zero(
    tmp_path: Path, kona_dir: Path
) -> None:
    path = tmp_path / "other.log"
    path.write_text("".join(f"({i / 10:.6f}) can0 7A1#0102\n" for i in range(20)))
    result = _decode(path, kona_dir)
    assert result.exit_code != 0
    assert "0 mapped signals" in result.output
    assert "0x7A1" in result.output


def test_decode_reports_format_time_unit_repairs_and_throughput(kona_dir: Path) -> None:
    log = kona_dir / "230112-7-2019-pcan-ccan-power-off-on-ready-off.csv"
    result = _decode(log, kona_dir)
    assert result.exit_code == 0, result.output
    assert "log: gvret-csv" in result.output
    assert "time unit us (inferred" in result.output
    assert "repaired: missing-bs" in result.output
    assert re.search(r"decoded and mapped them in [\d.]+ s \([\d,]+ frames/s\)", result.output)
    # piped output is not cut at 80 columns
    assert any(len(line) > 80 for line in result.output.splitlines())


def test_dbc_not_found_names_the_dbc_dir_flag(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("(1.000000) can0 123#01\n")
    result = _decode(log, tmp_path)
    assert result.exit_code != 0
    assert "--dbc-dir" in result.output


def test_run_on_a_log_that_maps_to_nothing_exits_non_zero(
    tmp_path: Path, kona_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "other.log"
    path.write_text("".join(f"({i / 10:.6f}) can0 7A1#0102\n" for i in range(20)))
    monkeypatch.setenv("DIMO_BRIDGE_DEVICE_KEY", "0x" + "11" * 32)
    args = ["run", "--log", str(path), "--dbc-dir", str(kona_dir), "--vehicle-id", "1"]
    args += ["--anchor-address", "0x5FbDB2315678afecb367f032d93F642f64180aa3"]
    args += ["--queue", str(tmp_path / "q.sqlite"), "--oracle-url", "http://127.0.0.1:9"]
    args += ["--drain", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "0 mapped signals" in result.output


def test_a_bad_line_in_python_can_csv_is_counted_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "pc.csv"
    path.write_text(
        "timestamp,arbitration_id,extended,remote,error,dlc,data\n"
        "1.5,0x123,1,0,0,3,AAID\nbroken line\n1.51,0x124,1,0,0,3,AQID\n"
    )
    log = open_log(path)
    assert [m.arbitration_id for m in log] == [0x123, 0x124]
    assert log.format is LogFormat.CSV
    assert [(e.line, e.text) for e in log.stats.examples] == [(3, "broken line")]


def test_semicolon_export_with_named_channels_and_flags_is_read_by_column_name(
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    rows = ["Timestamp;Channel;IDE;CAN ID;DLC;Data\n"]
    rows += [
        f"{i * 0.02:.3f};can1;{i % 2};{0x18DAF110 if i % 2 else 0x1DB:X};2;EE C0\n"
        for i in range(50)
    ]
    path.write_text("".join(rows))
    log = open_log(path)
    frames = list(log)
    assert log.format is LogFormat.TABLE
    assert log.time_unit is TimeUnit.S
    assert {m.channel for m in frames} == {"can1"}
    assert [(m.arbitration_id, m.is_extended_id) for m in frames[:2]] == [
        (0x1DB, False),
        (0x18DAF110, True),
    ]
    assert bytes(frames[0].data) == b"\xee\xc0"
    assert frames[-1].timestamp == pytest.approx(0.98)
