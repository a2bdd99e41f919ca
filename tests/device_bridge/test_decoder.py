"""Tests of the decoder against the Kona recording, malformed input and cantools itself."""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

import can
import cantools
import pytest
from cantools.database.can import Database, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_bridge.dbc import load_dbc, resolve_dbc
from device_bridge.decoder import Decoder, Reading
from device_bridge.exceptions import MappingError
from device_bridge.logs import open_log
from device_bridge.mapping import load_databases, load_mapping, parse_mapping

BATTERY = "Vehicle.Powertrain.TractionBattery"
FLOAT_PATH = f"{BATTERY}.CurrentPower"  # float, used as a neutral sink in property tests


def _values(readings: list[Reading]) -> dict[str, list[Any]]:
    by_path: dict[str, list[Any]] = defaultdict(list)
    for reading in readings:
        by_path[reading.path].append(reading.value)
    return by_path


@pytest.fixture
def kona_values(kona_decoder: Decoder, kona_frames: list[can.Message]) -> dict[str, list[Any]]:
    return _values(kona_decoder.decode_many(kona_frames))


def test_kona_soc_is_36_5_percent(kona_values: dict[str, list[Any]]) -> None:
    assert set(kona_values[f"{BATTERY}.StateOfCharge.Current"]) == {36.5}


def test_kona_pack_voltage_stays_between_354_8_and_355_1(
    kona_values: dict[str, list[Any]],
) -> None:
    volts = kona_values[f"{BATTERY}.CurrentVoltage"]
    assert min(volts) == pytest.approx(354.8)
    assert max(volts) == pytest.approx(355.1)
    assert volts[0] == pytest.approx(355.1)
    assert volts[-1] == pytest.approx(355.1)


def test_kona_current_is_negated_to_vss_sign(kona_values: dict[str, list[Any]]) -> None:
    amps = kona_values[f"{BATTERY}.CurrentCurrent"]
    assert min(amps) == pytest.approx(-3.4)
    assert max(amps) == pytest.approx(0.0)


def test_kona_battery_temperatures_12v_and_range(kona_values: dict[str, list[Any]]) -> None:
    assert set(kona_values[f"{BATTERY}.Temperature.Min"]) == {22.0}
    assert set(kona_values[f"{BATTERY}.Temperature.Max"]) == {23.0}
    low_voltage = kona_values["Vehicle.LowVoltageBattery.CurrentVoltage"]
    assert low_voltage[0] == pytest.approx(12.1)
    assert max(low_voltage) == pytest.approx(13.4)
    assert max(kona_values["Vehicle.Powertrain.Range"]) == 204_000  # 204 km in VSS metres
    assert set(kona_values["Vehicle.Powertrain.ElectricMotor.Speed"]) <= {-1, 0, 1, 2}


def test_kona_steering_sentinel_is_dropped(
    kona_decoder: Decoder, kona_frames: list[can.Message]
) -> None:
    steering = [m for m in kona_frames if m.channel == 0 and m.arbitration_id == 688]
    assert kona_decoder.decode(steering[0]) == []
    assert kona_decoder.stats.events["invalid-value", "Vehicle.Chassis.SteeringWheel.Angle"] == 1
    angles = {r.value for r in kona_decoder.decode_many(steering)}
    assert angles == {40}  # 39.5 .. 40.2 degrees as VSS int16


def test_kona_short_frames_are_counted_per_message(
    kona_decoder: Decoder, kona_frames: list[can.Message]
) -> None:
    kona_decoder.decode_many(kona_frames)
    events = kona_decoder.stats.events
    assert events["short-frame", "ParkingBrake"] == 217
    assert events["short-frame", "FATC_5F5"] == 65
    assert events["short-frame", "MFC_4a7"] == 13


def test_kona_frame_counts_per_bus_match_cantools_facts(
    kona_databases: dict[str, Database], kona_frames: list[can.Message]
) -> None:
    mapping = load_mapping("hyundai_kona_ev_2019")
    for channel, decoded, known, unknown in ((0, 23_980, 100, 1), (1, 14_773, 45, 7)):
        decoder = Decoder(mapping, kona_databases)
        decoder.decode_many(m for m in kona_frames if m.channel == channel)
        assert decoder.stats.decoded == decoded
        assert len(decoder.stats.unknown_ids) == unknown
        seen = {m.arbitration_id for m in kona_frames if m.channel == channel}
        assert len(seen & decoder.known_ids(channel)) == known


def test_candump_channels_decode_like_bus_numbers(
    kona_decoder: Decoder, kona_candump: Path
) -> None:
    values = _values(kona_decoder.decode_many(open_log(kona_candump)))
    assert set(values[f"{BATTERY}.StateOfCharge.Current"]) == {36.5}
    assert set(values["Vehicle.Speed"]) == {0.0}


def _frame(
    arbitration_id: int,
    data: bytes,
    *,
    timestamp: float = 0.0,
    is_fd: bool = False,
    check: bool = False,
) -> can.Message:
    return can.Message(
        timestamp=timestamp,
        arbitration_id=arbitration_id,
        is_extended_id=False,
        data=data,
        channel=0,
        is_fd=is_fd,
        check=check,
    )


SOC = bytes([73, 0, 0, 0, 0, 0, 0, 0])  # BMS_542.SocDisp raw 73 = 36.5 %


def test_unknown_ids_are_counted_and_skipped(kona_decoder: Decoder) -> None:
    assert kona_decoder.decode(_frame(0x7FE, SOC)) == []
    assert kona_decoder.stats.unknown_ids == {(0, 0x7FE): 1}


def test_unknown_channel_is_counted(kona_decoder: Decoder) -> None:
    message = can.Message(arbitration_id=0x542, is_extended_id=False, data=SOC, channel="can9")
    assert kona_decoder.decode(message) == []
    assert kona_decoder.stats.events == {("unknown-channel", "can9"): 1}


def test_remote_and_error_frames_are_counted(kona_decoder: Decoder) -> None:
    remote = can.Message(
        arbitration_id=0x542, is_extended_id=False, is_remote_frame=True, dlc=8, channel=0
    )
    error = can.Message(is_error_frame=True, channel=0)
    assert kona_decoder.decode_many([remote, error]) == []
    assert kona_decoder.stats.by_reason() == {"remote-frame": 1, "error-frame": 1}


def test_classic_frame_longer_than_8_bytes_is_malformed(kona_decoder: Decoder) -> None:
    message = _frame(0x542, SOC + b"\0", check=False)
    assert kona_decoder.decode(message) == []
    assert kona_decoder.stats.events == {("classic-frame-too-long", "BMS_542"): 1}


def test_short_frame_decodes_the_signals_that_fit(kona_decoder: Decoder) -> None:
    readings = kona_decoder.decode(_frame(0x542, bytes([73])))
    assert [(r.path, r.value) for r in readings] == [
        (f"{BATTERY}.StateOfCharge.Current", 36.5),
        (f"{BATTERY}.StateOfCharge.Displayed", 36.5),
    ]
    assert kona_decoder.stats.events == {("short-frame", "BMS_542"): 1}
    assert kona_decoder.stats.decoded == 0


def test_signal_beyond_a_short_frame_is_counted_truncated(kona_decoder: Decoder) -> None:
    kona_decoder.decode(_frame(0x595, bytes(4)))  # Batt_HV_Status: IBatt/VBatt need 8 bytes
    events = kona_decoder.stats.events
    assert events["signal-truncated", f"{BATTERY}.CurrentVoltage"] == 1
    assert events["signal-truncated", f"{BATTERY}.CurrentCurrent"] == 1


def test_all_ones_voltage_is_dropped(kona_decoder: Decoder) -> None:
    data = bytes([0, 0, 0, 0, 0, 0, 0xFF, 0xFF])  # VBatt = 6553.5 V
    readings = kona_decoder.decode(_frame(0x595, data))
    assert f"{BATTERY}.CurrentVoltage" not in {r.path for r in readings}
    assert kona_decoder.stats.events["invalid-value", f"{BATTERY}.CurrentVoltage"] == 1


def test_unmapped_enumeration_value_is_counted(kona_decoder: Decoder) -> None:
    data = bytes([0, 1 << 3, 0, 0, 0, 0, 0, 0])  # VCU_200.CURRENT_GEAR = 1 (not in the DBC)
    readings = kona_decoder.decode(_frame(0x200, data))
    assert "Vehicle.Powertrain.Transmission.SelectedGear" not in {r.path for r in readings}
    key = ("unmapped-value", "Vehicle.Powertrain.Transmission.SelectedGear")
    assert kona_decoder.stats.events[key] == 1


def test_implausible_value_is_dropped(kona_decoder: Decoder) -> None:
    readings = kona_decoder.decode(_frame(0x542, bytes([250, 0, 0, 0, 0, 0, 0, 0])))  # 125 %
    assert readings == []
    assert kona_decoder.stats.by_reason() == {"implausible": 2}


def test_cache_returns_the_same_readings_with_new_timestamps(kona_decoder: Decoder) -> None:
    first = kona_decoder.decode(_frame(0x542, SOC, timestamp=1.0))
    second = kona_decoder.decode(_frame(0x542, SOC, timestamp=2.0))
    assert [(r.path, r.value) for r in first] == [(r.path, r.value) for r in second]
    assert {r.timestamp for r in second} == {2.0}


def test_mapping_signed_override_reads_twos_complement() -> None:
    dbc, _ = load_dbc(resolve_dbc("opendbc:tesla_model3_party.dbc"))
    document = {
        "model": "test",
        "buses": {
            "party": {
                "dbc": "x",
                "signals": [
                    {
                        "message": "DI_systemStatus",
                        "signal": "DI_accelPedalPos",
                        "vss": FLOAT_PATH,
                        "signed": True,
                    }
                ],
            }
        },
    }
    decoder = Decoder(parse_mapping(document), {"party": dbc})
    data = bytearray(8)
    data[4] = 0xFE  # raw 254 unsigned, -2 as two's complement; scale 0.4
    (reading,) = decoder.decode(_frame(280, bytes(data)))
    assert reading.value == pytest.approx(-0.8)


def test_mapping_naming_a_missing_signal_is_rejected(kona_databases: dict[str, Database]) -> None:
    document = {
        "model": "x",
        "buses": {"pcan": {"dbc": "pcan.dbc", "signals": [
            {"message": "BMS_542", "signal": "Nope", "vss": "Vehicle.Speed"}
        ]}},
    }  # fmt: skip
    with pytest.raises(MappingError, match=r"BMS_542\.Nope"):
        Decoder(parse_mapping(document), kona_databases)


def test_tesla_multiplexed_signal_decodes_only_under_its_mux_value() -> None:
    mapping = load_mapping("tesla_model3")
    decoder = Decoder(mapping, {n: db for n, (db, _) in load_databases(mapping).items()})
    message = decoder_db_message(mapping, "vehicle", "VCLEFT_switchStatus")
    names = {s.name for s in message.signals}
    mux = next(s.name for s in message.signals if s.is_multiplexer)
    base = dict.fromkeys(names, 0)
    m0 = message.encode({**base, mux: 0, "VCLEFT_brakePressed": 1}, strict=False)
    m1 = message.encode({**base, mux: 1}, strict=False)
    readings = decoder.decode_many(
        [
            can.Message(
                arbitration_id=message.frame_id, is_extended_id=False, data=d, channel="can1"
            )
            for d in (m0, m1)
        ]
    )
    assert [(r.path, r.value) for r in readings] == [("Vehicle.Chassis.Brake.IsPedalPressed", True)]


def decoder_db_message(mapping: object, bus: str, name: str) -> Message:
    loaded = load_databases(mapping)  # type: ignore[arg-type]
    return loaded[bus][0].get_message_by_name(name)


def test_canfd_frames_of_32_bytes_decode() -> None:
    mapping = load_mapping("hyundai_canfd")
    db = load_databases(mapping)["ecan"][0]
    decoder = Decoder(mapping, {"ecan": db})
    message = db.get_message_by_name("ACCELERATOR")
    values = dict.fromkeys((s.name for s in message.signals), 0)
    data = message.encode({**values, "ACCELERATOR_PEDAL": 255, "GEAR": 5}, strict=False)
    frame = _frame(message.frame_id, data, is_fd=True)
    readings = {r.path: r.value for r in decoder.decode(frame)}
    assert len(data) == 32
    assert readings["Vehicle.Chassis.Accelerator.PedalPosition"] == 100
    assert readings["Vehicle.Powertrain.Transmission.SelectedGear"] == 127


# --- property tests: our plans against cantools ---------------------------------------------


def _identity_decoder(db: Database, message: Message) -> tuple[Decoder, list[str]]:
    names = [s.name for s in message.signals if not s.is_float and s.length <= 64]
    document = {
        "model": "identity",
        "buses": {
            "bus": {
                "dbc": "x",
                "signals": [
                    {"message": message.name, "signal": n, "vss": FLOAT_PATH} for n in names
                ],
            }
        },
    }
    return Decoder(parse_mapping(document), {"bus": db}, drop_implausible=False), names


@functools.cache
def _dbc(name: str) -> Database:
    return load_dbc(resolve_dbc(name))[0]


PROPERTY_DBCS = [
    "opendbc:tesla_model3_party.dbc",
    "opendbc:hyundai_canfd.dbc",
    "opendbc:vw_mqb.dbc",
    "opendbc:toyota_nodsu_pt.dbc",
]


@pytest.mark.parametrize("dbc_name", PROPERTY_DBCS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoding_random_payloads_equals_cantools(dbc_name: str, data: st.DataObject) -> None:
    db = _dbc(dbc_name)
    message = data.draw(st.sampled_from([m for m in db.messages if m.signals]))
    payload = data.draw(st.binary(min_size=message.length, max_size=message.length))
    try:
        expected = message.decode_simple(payload, decode_choices=False, scaling=True)
    except cantools.database.DecodeError:
        return  # a multiplexer value the DBC does not define
    decoder, names = _identity_decoder(db, message)
    frame = can.Message(
        arbitration_id=message.frame_id,
        is_extended_id=message.is_extended_frame,
        data=payload,
        is_fd=message.length > 8,
    )
    got = [r.value for r in decoder.decode(frame)]
    want = [float(cast(float, expected[n])) for n in names if n in expected]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_encoding_with_cantools_then_decoding_gives_the_values_back(
    data: st.DataObject, kona_databases: dict[str, Database]
) -> None:
    db = kona_databases["pcan"]
    message = data.draw(
        st.sampled_from([m for m in db.messages if m.signals and not m.is_multiplexed()])
    )
    values: dict[str, float] = {}
    for signal in message.signals:
        low = -(1 << (signal.length - 1)) if signal.is_signed else 0
        high = (1 << (signal.length - 1)) - 1 if signal.is_signed else (1 << signal.length) - 1
        raw = data.draw(st.integers(low, high))
        values[signal.name] = raw * signal.scale + signal.offset
    payload = message.encode(values, scaling=True, strict=False)
    decoder, names = _identity_decoder(db, message)
    # A message longer than 8 bytes (FATC_5F5 declares 64) travels as a CAN-FD frame.
    frame = _frame(message.frame_id, payload, is_fd=len(payload) > 8)
    got = [r.value for r in decoder.decode(frame)]
    expected = message.decode_simple(payload, decode_choices=False)
    for name, value in zip(names, got, strict=True):
        signal = message.get_signal_by_name(name)
        want = float(cast(float, expected[name]))
        assert value == pytest.approx(want, abs=abs(signal.scale) / 2)
