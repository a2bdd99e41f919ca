"""Tests of the fleet simulator: determinism, decoding against the truth, physical invariants."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import can
import pytest
from cantools.database.can import Database
from typer.testing import CliRunner

from device_bridge.decoder import Decoder
from device_bridge.logs import open_log
from device_bridge.mapping import load_databases, load_mapping
from device_bridge.simulator import (
    FleetOptions,
    GroundTruth,
    SimulationError,
    VehicleTrace,
    fleet_frames,
    simulate_fleet,
    vehicle_frames,
    write_fleet,
)
from device_bridge.simulator.cli import app
from device_bridge.simulator.models import get_model
from device_bridge.simulator.physics import HARSH_BRAKING_MPS2, dc_power_limit_kw
from protocol.readings import segments

KONA = "hyundai_kona_ev_2019"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
VOLTAGE = "Vehicle.Powertrain.TractionBattery.CurrentVoltage"
CURRENT = "Vehicle.Powertrain.TractionBattery.CurrentCurrent"
ODOMETER = "Vehicle.TraveledDistance"
SPEED = "Vehicle.Speed"
GEAR = "Vehicle.Powertrain.Transmission.SelectedGear"
IS_CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"

Series = dict[str, list[tuple[float, object]]]


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _decode(log: Path, decoder: Decoder) -> Series:
    opened = open_log(log)
    series: Series = defaultdict(list)
    for reading in decoder.decode_many(opened):
        series[reading.path].append((reading.timestamp, reading.value))
    assert opened.stats.bad_total == 0
    return series


# a Kona that starts nearly empty: a DC session before the first trip, then the day's driving


@pytest.fixture(scope="module")
def kona_options(kona_dir: Path) -> FleetOptions:
    return FleetOptions(
        vehicles=1,
        days=1,
        seed=7,
        models=(KONA,),
        initial_soc=8.0,
        rate_scale=0.05,
        dbc_dir=kona_dir,
    )


@pytest.fixture(scope="module")
def kona_trace(kona_options: FleetOptions) -> VehicleTrace:
    return simulate_fleet(kona_options)[0]


@pytest.fixture(scope="module")
def kona_run(
    kona_options: FleetOptions,
    kona_databases: dict[str, Database],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Series, Decoder, GroundTruth]:
    out = tmp_path_factory.mktemp("kona")
    result = write_fleet(kona_options, out)
    decoder = Decoder(load_mapping(KONA), kona_databases)
    series = _decode(result.logs[0], decoder)
    return series, decoder, GroundTruth.read(out / "vehicle-0000.truth.json")


def test_a_simulated_kona_log_decodes_without_a_single_problem(
    kona_run: tuple[Series, Decoder, GroundTruth],
) -> None:
    series, decoder, _ = kona_run
    assert decoder.stats.frames > 10_000
    assert decoder.stats.decoded == decoder.stats.frames
    assert not decoder.stats.events
    assert not decoder.stats.unknown_ids
    assert {SOC, VOLTAGE, CURRENT, ODOMETER, SPEED, GEAR} <= set(series)


def test_the_written_truth_is_the_simulated_truth(
    kona_run: tuple[Series, Decoder, GroundTruth], kona_trace: VehicleTrace
) -> None:
    _, _, truth = kona_run
    expected = kona_trace.truth.to_dict() | {"log": truth.log, "rate_scale": 0.05}
    assert truth.to_dict() == expected


def test_decoded_soc_follows_the_true_trajectory_within_the_dbc_resolution(
    kona_run: tuple[Series, Decoder, GroundTruth], kona_trace: VehicleTrace
) -> None:
    series, _, _ = kona_run
    for t, value in series[SOC]:
        state = kona_trace.state_at(_us(t))
        assert state is not None
        assert abs(float(value) - float(state["soc"])) <= 0.25 + 1e-9  # SocDisp steps 0.5 %
    socs = [float(v) for _, v in series[SOC]]
    assert min(socs) < 10.0 < 75.0 < max(socs)


def test_decoded_odometer_grows_by_the_trips_distance(
    kona_run: tuple[Series, Decoder, GroundTruth],
) -> None:
    series, _, truth = kona_run
    readings = [float(v) for _, v in series[ODOMETER]]
    assert readings == sorted(readings)
    travelled = sum(trip.distance_km for trip in truth.trips)
    assert len(truth.trips) >= 2
    assert truth.odometer_end_km - truth.odometer_start_km == pytest.approx(travelled, abs=1e-5)
    assert readings[0] == pytest.approx(truth.odometer_start_km, abs=0.1)
    assert readings[-1] - readings[0] == pytest.approx(travelled, abs=0.2)


def test_decoded_top_speed_is_the_trips_top_speed(
    kona_run: tuple[Series, Decoder, GroundTruth],
) -> None:
    series, _, truth = kona_run
    top = max(float(v) for _, v in series[SPEED])
    assert top == pytest.approx(max(trip.max_speed_kmh for trip in truth.trips), abs=1.0)


def test_charging_energy_over_soc_gain_gives_the_configured_capacity(
    kona_run: tuple[Series, Decoder, GroundTruth],
) -> None:
    series, _, truth = kona_run
    assert any(s.kind == "DC" for s in truth.charging_sessions)
    voltage = dict(series[VOLTAGE])
    power = sorted((t, voltage[t] * float(i)) for t, i in series[CURRENT] if t in voltage)
    for session in truth.charging_sessions:
        inside = [(t, p) for t, p in power if session.start - 1 <= t <= session.end + 1]
        # cumulative energy (kWh) at each BMS frame, then SoC against it by least squares
        cumulative, energy = [], 0.0
        for (t, p), (t_next, _) in itertools.pairwise(inside):
            cumulative.append((t, energy))
            energy += p * (t_next - t) / 3.6e6
        assert energy == pytest.approx(session.energy_battery_kwh, rel=0.01)
        socs = [(t, float(v)) for t, v in series[SOC] if session.start <= t <= session.end]
        xs, ys = [], []
        for t, soc in socs:
            before = [e for tc, e in cumulative if tc <= t]
            if before:
                xs.append(before[-1])
                ys.append(soc)
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        assert 100.0 / slope == pytest.approx(truth.usable_capacity_kwh, rel=0.01)
        gain = (session.soc_end - session.soc_start) / 100.0 * truth.usable_capacity_kwh
        assert session.energy_battery_kwh == pytest.approx(gain, rel=1e-3)
        assert session.energy_battery_kwh / session.energy_grid_kwh < 1.0


def test_the_kona_reports_charging_exactly_while_its_ac_charger_feeds_the_pack(
    kona_run: tuple[Series, Decoder, GroundTruth],
) -> None:
    series, _, truth = kona_run
    marks = [(round(t * 1000), bool(v)) for t, v in series[IS_CHARGING]]
    assert any(not v for _, v in marks), "driving and DC fast charging read as not charging"
    runs = segments(marks, 300_000, 60_000)
    ac = [s for s in truth.charging_sessions if s.kind == "AC"]
    assert len(runs) == len(ac) >= 1
    for (start, end), session in zip(runs, ac, strict=True):
        # frames come every 3 s at rate scale 0.05
        assert start / 1000 == pytest.approx(session.start, abs=5.0)
        assert end / 1000 == pytest.approx(session.end, abs=5.0)


def test_a_kona_without_a_charger_never_reads_as_charging(
    kona_frames: list[can.Message], kona_decoder: Decoder
) -> None:
    readings = [r for r in kona_decoder.decode_many(kona_frames) if r.path == IS_CHARGING]
    assert readings, "the recording's BMS status frames say whether it charges"
    assert not any(r.value for r in readings)


# other models: their mappings carry driving signals only


@pytest.mark.parametrize(
    ("model", "resolution"),
    [("tesla_model3", 0.08), ("nissan_leaf_2018", 0.005), ("hyundai_canfd", 0.03125)],
)
def test_other_models_decode_to_the_true_speed_and_gear(
    model: str, resolution: float, tmp_path: Path
) -> None:
    options = FleetOptions(vehicles=1, days=1, seed=3, models=(model,), rate_scale=0.02)
    result = write_fleet(options, tmp_path)
    trace = simulate_fleet(options)[0]
    mapping = load_mapping(model)
    decoder = Decoder(mapping, {n: db for n, (db, _) in load_databases(mapping).items()})
    series = _decode(result.logs[0], decoder)
    assert not decoder.stats.events
    assert not decoder.stats.unknown_ids
    assert len(series[SPEED]) > 1000
    for t, value in series[SPEED]:
        state = trace.state_at(_us(t))
        assert state is not None
        assert abs(float(value) - float(state["speed_kmh"])) <= resolution / 2 + 1e-6
    gears = {value for _, value in series[GEAR]}
    assert gears == {126, 127}  # park and drive


# physics


@pytest.fixture(scope="module")
def fleet() -> list[VehicleTrace]:
    return simulate_fleet(
        FleetOptions(vehicles=4, days=3, seed=11, rollback_vehicles=frozenset({1}))
    )


def test_soc_stays_within_0_and_100(fleet: list[VehicleTrace]) -> None:
    for trace in fleet:
        for seg in trace.segments:
            assert all(0.0 <= s <= 100.0 for s in seg.soc)


def test_the_odometer_never_teleports_and_only_goes_back_at_the_rollback(
    fleet: list[VehicleTrace],
) -> None:
    for trace in fleet:
        drops = []
        previous: float | None = None
        for seg in trace.segments:
            dt = seg.dt_us / 1e6
            if previous is not None and seg.odometer_km[0] != previous:
                drops.append((seg.t0 / 1e6, previous, seg.odometer_km[0]))
            for k in range(seg.n - 1):
                step = seg.odometer_km[k + 1] - seg.odometer_km[k]
                assert step == pytest.approx(seg.speed_kmh[k] / 3.6 * dt / 1000.0, abs=1e-9)
            previous = seg.odometer_km[-1] + seg.speed_kmh[-1] / 3.6 * dt / 1000.0
        rollback = trace.truth.rollback
        if trace.config.index == 1:
            assert rollback is not None
            assert len(drops) == 1
            when, before, after = drops[0]
            assert when == pytest.approx(rollback.time)
            assert (before, after) == pytest.approx((rollback.from_km, rollback.to_km), abs=1e-5)
            assert after < before
        else:
            assert rollback is None
            assert drops == []


def test_speeds_and_accelerations_stay_physical(fleet: list[VehicleTrace]) -> None:
    for trace in fleet:
        for seg in trace.segments:
            assert max(seg.speed_kmh) <= 140.0
            assert min(seg.accel) >= -5.3
            assert max(seg.accel) <= 2.5
        for trip in trace.truth.trips:
            assert 80.0 <= trip.wh_per_km <= 260.0
            assert trip.end > trip.start


def test_harsh_events_are_the_decelerations_of_7_mph_per_second_and_more(
    fleet: list[VehicleTrace],
) -> None:
    events = [e for trace in fleet for e in trace.truth.harsh_events]
    assert events
    for trace in fleet:
        times = {round(e.time, 1) for e in trace.truth.harsh_events}
        for seg in trace.segments:
            for k in range(seg.n):
                starts = -seg.accel[k] >= HARSH_BRAKING_MPS2 and (
                    k == 0 or -seg.accel[k - 1] < HARSH_BRAKING_MPS2
                )
                assert (
                    starts == (round((seg.t0 + k * seg.dt_us) / 1e6, 1) in times)
                    or seg.kind != "drive"
                )
    assert all(e.deceleration_mphps >= 7.0 for e in events)


def test_charging_power_respects_chargers_and_tapers_above_80_percent(
    fleet: list[VehicleTrace],
) -> None:
    sessions = 0
    for trace in fleet:
        spec = get_model(trace.config.model)
        for session in trace.truth.charging_sessions:
            sessions += 1
            limit = spec.ac_kw if session.kind == "AC" else min(150.0, spec.dc_kw)
            assert session.max_power_kw <= limit + 1e-9
            assert 0.0 <= session.soc_start < session.soc_end <= 100.0
    assert sessions
    spec = get_model(KONA)
    curve = [dc_power_limit_kw(spec, soc) for soc in range(80, 101)]
    assert curve == sorted(curve, reverse=True)
    assert dc_power_limit_kw(spec, 95.0) < 0.3 * dc_power_limit_kw(spec, 40.0)


# determinism, streams, CLI


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> dict[str, bytes]:
        options = FleetOptions(
            vehicles=2,
            days=1,
            seed=seed,
            models=("nissan_leaf_2018", "tesla_model3"),
            rate_scale=0.02,
        )
        write_fleet(options, tmp_path / name)
        return {p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())}

    first, again, other = run(5, "a"), run(5, "b"), run(6, "c")
    assert first == again
    assert len(first) == 5
    assert first.keys() == other.keys()
    assert first != other


def test_fleet_frames_merge_every_vehicle_in_time_order() -> None:
    options = FleetOptions(
        vehicles=2, days=1, seed=2, models=("nissan_leaf_2018", "hyundai_canfd"), rate_scale=0.01
    )
    traces = simulate_fleet(options)
    merged = list(fleet_frames(traces, 0.01))
    times = [m.timestamp for _, m in merged]
    assert times == sorted(times)
    for trace in traces:
        own = [m for i, m in merged if i == trace.config.index]
        alone = list(vehicle_frames(trace, 0.01))
        assert [(m.timestamp, m.arbitration_id, bytes(m.data)) for m in own] == [
            (m.timestamp, m.arbitration_id, bytes(m.data)) for m in alone
        ]
        assert all(isinstance(m, can.Message) and m.is_fd == (len(m.data) > 8) for m in own)


def test_the_cli_writes_logs_and_truth_with_the_options_given(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            str(out),
            "--vehicles",
            "2",
            "--days",
            "1",
            "--seed",
            "4",
            "--models",
            "nissan_leaf_2018,hyundai_canfd",
            "--soh",
            "90",
            "--rollback-vehicle",
            "1",
            "--rate-scale",
            "0.01",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "fleet.json").read_text())
    assert [v["model"] for v in summary["vehicles"]] == ["nissan_leaf_2018", "hyundai_canfd"]
    for entry in summary["vehicles"]:
        truth = GroundTruth.read(out / entry["truth"])
        assert truth.soh_percent == 90.0
        assert truth.usable_capacity_kwh == pytest.approx(get_model(truth.model).nominal_kwh * 0.9)
        assert (truth.rollback is not None) == (truth.vehicle == 1)
        log = open_log(out / entry["log"])
        assert sum(1 for _ in log) == entry["frames"] > 0
        assert log.stats.bad_total == 0


def test_the_cli_rejects_an_unknown_model_with_the_choices(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--models", "trabant"])
    assert result.exit_code == 1
    assert "trabant" in result.output
    assert "hyundai_kona_ev_2019" in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "options",
    [
        FleetOptions(soh_percent=120.0),
        FleetOptions(rate_scale=0.0),
        FleetOptions(vehicles=2, rollback_vehicles=frozenset({2})),
        FleetOptions(days=0),
        FleetOptions(models=("hyundai_kona_ev_2019", "vw_id3")),
    ],
)
def test_impossible_options_raise_a_simulation_error(options: FleetOptions) -> None:
    with pytest.raises(SimulationError):
        simulate_fleet(options)
