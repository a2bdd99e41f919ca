"""Tests of `valid_when`, per-signal implausible counts, undeclared sentinels and --suggest."""

from __future__ import annotations

from pathlib import Path

import can
import cantools
import pytest
import yaml
from cantools.database.can import Database
from typer.testing import CliRunner

from device_bridge.cli import app
from device_bridge.dbc import load_dbc_string
from device_bridge.decoder import Decoder
from device_bridge.exceptions import MappingError
from device_bridge.logs import open_log
from device_bridge.mapping import load_mapping, parse_mapping
from device_bridge.queue import BundleQueue
from device_bridge.suggest import suggest_mapping

YAW = "Vehicle.AngularVelocity.Yaw"
LONG = "Vehicle.Acceleration.Longitudinal"
LAT = "Vehicle.Acceleration.Lateral"

# A small DBC of a pack: 11-bit current (0.5 A), 10-bit voltage (0.5 V), a validity frame.
PACK_DBC = """VERSION ""

NS_ :

BS_:

BU_: BMS

BO_ 256 PACK: 8 BMS
 SG_ CURRENT : 0|11@1+ (0.5,0) [0|1023.5] "A" Vector__XXX
 SG_ VOLTAGE : 16|10@1+ (0.5,0) [0|511.5] "V" Vector__XXX
 SG_ CURRENT_OK : 32|1@1+ (1,0) [0|1] "" Vector__XXX

BO_ 257 PACK_STATUS: 8 BMS
 SG_ MEASURING : 0|2@1+ (1,0) [0|3] "" Vector__XXX
"""
CURRENT = "Vehicle.Powertrain.TractionBattery.CurrentCurrent"
VOLTAGE = "Vehicle.Powertrain.TractionBattery.CurrentVoltage"


@pytest.fixture(scope="module")
def pack_db() -> Database:
    return load_dbc_string(PACK_DBC)[0]


def _pack_decoder(db: Database, **current: object) -> Decoder:
    document = {
        "model": "pack",
        "buses": {
            "bus": {
                "dbc": "pack.dbc",
                "signals": [
                    {"message": "PACK", "signal": "CURRENT", "vss": CURRENT, **current},
                    {"message": "PACK", "signal": "VOLTAGE", "vss": VOLTAGE},
                ],
            }
        },
    }
    return Decoder(parse_mapping(document), {"bus": db})


def _pack(db: Database, timestamp: float = 0.0, **values: float) -> can.Message:
    message = db.get_message_by_name("PACK")
    full = {"CURRENT": 10.0, "VOLTAGE": 380.0, "CURRENT_OK": 1, **values}
    return can.Message(
        timestamp=timestamp,
        arbitration_id=message.frame_id,
        is_extended_id=False,
        data=message.encode(full),
        channel=0,
    )


def _status(db: Database, measuring: int, timestamp: float) -> can.Message:
    message = db.get_message_by_name("PACK_STATUS")
    return can.Message(
        timestamp=timestamp,
        arbitration_id=message.frame_id,
        is_extended_id=False,
        data=message.encode({"MEASURING": measuring}),
        channel=0,
    )


def test_kona_stability_control_values_are_kept_only_while_their_status_bits_are_0(
    kona_decoder: Decoder, kona_frames: list[can.Message], kona_dir: Path
) -> None:
    readings = kona_decoder.decode_many(kona_frames)
    db = cantools.database.load_file(kona_dir / "pcan.cantools.dbc")
    expected: dict[str, list[float]] = {YAW: [], LONG: [], LAT: []}
    for frame in kona_frames:
        if frame.channel != 0 or frame.arbitration_id != 0x220:
            continue
        v = db.decode_message(0x220, frame.data, decode_choices=False)
        for path, signal in ((YAW, "YAW_RATE"), (LONG, "LONG_ACCEL"), (LAT, "LAT_ACCEL")):
            if v[f"{signal}_STAT"] == 0:
                expected[path].append(v[signal])
    for path, values in expected.items():
        got = [r.value for r in readings if r.path == path]
        assert got == pytest.approx(values)
        assert len(got) == 509  # of 679 frames: 18 all-ones + 152 raw 0 with the status bit set
    assert -40.95 not in {r.value for r in readings if r.path == YAW}
    assert kona_decoder.stats.events["not-valid", YAW] == 170


def test_valid_when_on_another_frame_needs_a_recent_frame_that_holds(pack_db: Database) -> None:
    decoder = _pack_decoder(
        pack_db, valid_when={"message": "PACK_STATUS", "signal": "MEASURING", "equals": 2}
    )
    frames = [
        _pack(pack_db, 0.0),  # no status yet
        _status(pack_db, 1, 0.1),
        _pack(pack_db, 0.2),  # status says not measuring
        _status(pack_db, 2, 0.3),
        _pack(pack_db, 0.4, CURRENT=12.0),  # kept
        _pack(pack_db, 1.5),  # status 1.2 s old: stale (within_ms 1000)
    ]
    readings = [(r.timestamp, r.value) for r in decoder.decode_many(frames) if r.path == CURRENT]
    assert readings == [(0.4, 12.0)]
    assert decoder.stats.events["not-valid", CURRENT] == 3


def test_valid_when_in_the_same_frame_accepts_a_range(pack_db: Database) -> None:
    decoder = _pack_decoder(pack_db, valid_when={"signal": "CURRENT_OK", "min": 1, "max": 1})
    readings = decoder.decode_many([_pack(pack_db, CURRENT_OK=0), _pack(pack_db, CURRENT=3.0)])
    assert [r.value for r in readings if r.path == CURRENT] == [3.0]


@pytest.mark.parametrize(
    "valid_when",
    [
        {"signal": "NOPE", "equals": 1},
        {"signal": "CURRENT_OK"},
        {"signal": "CURRENT_OK", "equal": 1},
        {"message": "NOPE", "signal": "X", "equals": 1},
    ],
)
def test_malformed_valid_when_is_a_mapping_error(pack_db: Database, valid_when: object) -> None:
    with pytest.raises(MappingError, match=r"valid_when|NOPE"):
        _pack_decoder(pack_db, valid_when=valid_when)


def test_undeclared_all_ones_sentinels_do_not_pass_as_1023_5_a_or_511_5_v(
    pack_db: Database,
) -> None:
    decoder = _pack_decoder(pack_db)
    readings = decoder.decode(_pack(pack_db, CURRENT=1023.5, VOLTAGE=511.5))
    assert readings == []
    assert decoder.stats.implausible() == {
        (CURRENT, "PACK.CURRENT"): 1,
        (VOLTAGE, "PACK.VOLTAGE"): 1,
    }


def test_all_ones_is_kept_when_the_mapping_says_invalid_all_ones_false(
    pack_db: Database,
) -> None:
    decoder = _pack_decoder(pack_db, invalid_all_ones=False)
    readings = decoder.decode(_pack(pack_db, CURRENT=1023.5))
    assert [r.value for r in readings if r.path == CURRENT] == [1023.5]


def test_implausible_values_are_counted_by_vss_and_dbc_signal(kona_decoder: Decoder) -> None:
    soc = can.Message(arbitration_id=0x542, is_extended_id=False, data=bytes([250] + [0] * 7))
    soc.channel = 0
    kona_decoder.decode(soc)  # 125 %
    assert kona_decoder.stats.implausible() == {
        ("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", "BMS_542.SocDisp"): 1,
        ("Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed", "BMS_542.SocDisp"): 1,
    }


def test_status_shows_implausible_counts_by_signal(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    with BundleQueue(path) as queue:
        queue.add_decode_counts({"implausible Vehicle.Speed <- CLU11.CF_Clu_Vanz": 4})
        queue.add_decode_counts({"implausible Vehicle.Speed <- CLU11.CF_Clu_Vanz": 3})
        assert queue.counters()["sealed"] == 0
    result = CliRunner().invoke(app, ["status", "--queue", str(path)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "CLU11.CF_Clu_Vanz" in line)
    assert "Vehicle.Speed" in line
    assert "7" in line


def test_suggested_mapping_for_the_kona_decodes_its_battery(
    kona_dir: Path, kona_candump: Path, tmp_path: Path
) -> None:
    text = suggest_mapping(kona_candump, kona_dir / "pcan.dbc")
    path = tmp_path / "kona.yaml"
    path.write_text(text)
    mapping = load_mapping(path)
    assert mapping.buses[0].channels == ("can0",)
    result = CliRunner().invoke(app, ["decode", str(kona_candump), "--model", str(path)])
    assert result.exit_code == 0, result.output
    decoder = Decoder.from_settings(mapping=path)
    readings = decoder.decode_many(open_log(kona_candump))
    values = {r.path: r.value for r in readings}
    battery = "Vehicle.Powertrain.TractionBattery"
    assert values[f"{battery}.StateOfCharge.Displayed"] == 36.5
    assert values[f"{battery}.MaxChargePower"] == 170.0
    assert values[f"{battery}.MaxDischargePower"] == pytest.approx(160.76)
    assert 354.8 <= values[f"{battery}.CurrentVoltage"] <= 355.1
    notes = {e["signal"]: e["note"] for e in yaml.safe_load(text)["buses"]["bus"]["signals"]}
    assert "WARNING: outside the VSS range" in notes["Angle"]  # the 3276.7 sentinel
    assert "YAW_RATE_STAT in the same frame" in notes["YAW_RATE"]


def test_suggest_without_a_dbc_fails_with_the_flag(kona_candump: Path) -> None:
    result = CliRunner().invoke(app, ["decode", str(kona_candump), "--suggest"])
    assert result.exit_code != 0
    assert "--dbc" in result.output
