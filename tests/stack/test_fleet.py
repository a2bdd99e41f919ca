"""The stack's parts that need no chain: the simulated clock, day-by-day vehicles, the ledger,
and the plan of child processes with their settings pointing into one data folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from device_bridge.simulator.encoding import FrameEncoder
from device_bridge.simulator.fleet import FleetOptions, fleet_configs
from oracle.certifier.attestation_api import SaltBook
from protocol.bundle import Bundle, sign_bundle
from protocol.eip712 import dimo_domain
from protocol.vin import check_digit_ok
from stack.config import DEFAULT_DBC_DIR, StackSettings
from stack.exceptions import StackError
from stack.fleet import Ledger, SimClock, VehicleDays, ecu_vin
from stack.platform import Platform
from stack.seed import MODEL_IDENTITY, FleetVehicle, device_key, fleet_vin

ROOT = Path(__file__).resolve().parents[2]


class FakeWall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_clock_runs_faster_until_it_reaches_the_present_then_keeps_to_it() -> None:
    wall = FakeWall(1_000_000.0)
    clock = SimClock(start_ms=(1_000_000 - 1_000) * 1000, factor=100.0, wall=wall)
    wall.now += 5
    assert clock.read() == ((1_000_000 - 1_000 + 500) * 1000, False)
    wall.now += 6
    assert clock.read() == (int(wall.now * 1000), True)
    wall.now += 60
    assert clock.read() == (int(wall.now * 1000), True)


@pytest.mark.skipif(not (DEFAULT_DBC_DIR / "pcan.dbc").exists(), reason="no Kona DBC")
def test_each_day_starts_where_the_last_ended_and_frames_run_forward_across_days() -> None:
    base = fleet_configs(FleetOptions(vehicles=1, seed=3, models=("nissan_leaf_2018",)))[0]
    day0 = dt.date(2026, 3, 2)
    days = VehicleDays(base, day0)
    first = days._simulate(0)
    second = days._simulate(1)
    assert days.starts[1] == (first.truth.odometer_end_km, first.truth.soc_end)
    assert second.config.odometer_km == pytest.approx(first.truth.odometer_end_km)
    assert first.truth.odometer_end_km > base.odometer_km, "the car drove on day 0"

    midnight = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()) * 1000
    encoder = FrameEncoder("nissan_leaf_2018", dbc_dir=DEFAULT_DBC_DIR)
    stream = VehicleDays(base, day0).frames(encoder, 0.05, midnight + 6 * 3_600_000)
    times = []
    for frame in stream:
        times.append(frame.t_us)
        if frame.t_us > (midnight + 2 * 86_400_000) * 1000:
            break
    assert times[0] >= (midnight + 6 * 3_600_000) * 1000
    assert times == sorted(times)
    assert any(t > (midnight + 86_400_000) * 1000 for t in times), "day 1 follows day 0"


def test_the_ledger_keeps_each_sealed_bundle_with_one_of_its_readings(tmp_path: Path) -> None:
    key = device_key(0, 0)
    domain = dimo_domain(31337, "0x" + "11" * 20)
    bundle = Bundle(
        device=key.address,
        vehicle_id=7,
        sequence=1,
        window_start=10_000,
        window_end=20_000,
        readings={"Vehicle.TraveledDistance": [(11_000, 100.0)], "Vehicle.Speed": [(10_500, 42.0)]},
    )
    signed = sign_bundle(bundle, bytes(key.key), domain)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.record(signed)
    assert ledger.rows() == [], "noted, not yet written"
    ledger.flush()
    (row,) = ledger.rows()
    ledger.close()
    assert (row.device, row.sequence, row.vehicle_id) == (key.address, 1, 7)
    assert (row.signal, row.ts) == ("Vehicle.Speed", 10_500)
    assert len(row.leaf_hash) == 32


def test_every_service_is_planned_with_its_state_in_the_data_folder(tmp_path: Path) -> None:
    settings = StackSettings(data_dir=tmp_path, oracle_port=9100, indexer_port=9200)
    platform = Platform(settings, ROOT)
    names = [s.name for s in platform.plan()]
    assert names == [
        "oracle signer 1",
        "oracle signer 2",
        "oracle signer 3",
        "oracle",
        "oracle batcher",
        "indexer",
        "triggers",
        "attestations",
    ]
    triggers = platform.plan()[6].env
    assert triggers["DIMO_TRIGGERS_JOURNAL_URL"] == f"sqlite:///{tmp_path / 'oracle.db'}"
    assert triggers["DIMO_TRIGGERS_INDEXER_URL"] == "http://127.0.0.1:9200"
    assert triggers["DIMO_TRIGGERS_JWT_SECRET"] == platform.plan()[5].env["DIMO_INDEXER_JWT_SECRET"]
    oracle = platform.plan()[3].env
    assert platform.plan()[4].env == oracle  # the batcher: same journal, keys and chain
    assert "--no-batcher" in platform.plan()[3].argv
    assert "--no-api" in platform.plan()[4].argv
    assert oracle["DIMO_ORACLE_DATABASE_URL"] == f"sqlite:///{tmp_path / 'oracle.db'}"
    assert oracle["DIMO_ORACLE_BLOB_DIR"] == str(tmp_path / "blobs")
    assert json.loads(oracle["DIMO_ORACLE_SIGNER_URLS"]) == [
        "http://127.0.0.1:8610",
        "http://127.0.0.1:8611",
        "http://127.0.0.1:8612",
    ]
    indexer = platform.plan()[5].env
    assert indexer["DIMO_INDEXER_DATABASE_URL"] == f"sqlite:///{tmp_path / 'indexer.db'}"
    assert indexer["DIMO_INDEXER_BLOB_DIR"] == oracle["DIMO_ORACLE_BLOB_DIR"]
    assert indexer["DIMO_INDEXER_SIWE_URI"] == "http://127.0.0.1:9200"
    attest = platform.plan()[7].env
    assert attest["DIMO_ATTEST_API_URL"] == "http://127.0.0.1:9200"
    assert attest["DIMO_ATTEST_TELEMETRY_URL"] == "http://127.0.0.1:9200/telemetry"
    assert attest["DIMO_ATTEST_JWT_SECRET"] == indexer["DIMO_INDEXER_JWT_SECRET"]
    assert attest["DIMO_ATTEST_VEHICLE_JWT_ISSUER"] == indexer["DIMO_INDEXER_SIWE_URI"]
    assert attest["DIMO_ATTEST_BLOB_DIR"] == oracle["DIMO_ORACLE_BLOB_DIR"]
    assert attest["DIMO_ATTEST_RELAYER_KEY"] != oracle["DIMO_ORACLE_SUBMITTER_KEY"]


def test_real_services_replace_the_embedded_defaults(tmp_path: Path) -> None:
    settings = StackSettings(
        data_dir=tmp_path,
        oracle_database_url="postgresql+psycopg://u@db/oracle",
        indexer_database_url="postgresql+psycopg://u@db/index",
        kubo_url="http://127.0.0.1:5001",
    )
    plan = {service.name: service.env for service in Platform(settings, ROOT).plan()}
    for oracle in (plan["oracle"], plan["oracle batcher"]):
        assert oracle["DIMO_ORACLE_DATABASE_URL"] == "postgresql+psycopg://u@db/oracle"
        assert oracle["DIMO_ORACLE_KUBO_URL"] == plan["indexer"]["DIMO_INDEXER_KUBO_URL"]
    assert plan["indexer"]["DIMO_INDEXER_DATABASE_URL"] == "postgresql+psycopg://u@db/index"


def test_a_live_network_needs_the_quorum_keys_from_the_environment(tmp_path: Path) -> None:
    settings = StackSettings(data_dir=tmp_path, rpc_url="https://rpc.example", chain_id=80002)
    with pytest.raises(StackError, match="DIMO_STACK_ORACLE_KEYS"):
        Platform(settings, ROOT).plan()
    assert settings.deployment_path == tmp_path / "deployments" / "80002.json"


def test_each_fleet_vehicle_has_its_own_vin_with_a_valid_check_digit() -> None:
    vins = [fleet_vin(model, 0, i) for i in range(50) for model in MODEL_IDENTITY]
    assert len(set(vins)) == len(vins)
    assert all(len(v) == 17 and check_digit_ok(v) for v in vins)
    assert fleet_vin("tesla_model3", 0, 3).startswith("5YJ3E1EA")
    assert fleet_vin("tesla_model3", 0, 3)[9] == "M"  # model year 2021
    assert fleet_vin("tesla_model3", 1, 3) != fleet_vin("tesla_model3", 0, 3)


def test_the_device_reads_the_vin_from_the_ecu_over_obd_mode_09() -> None:
    vin = fleet_vin("nissan_leaf_2018", 0, 7)
    assert ecu_vin(vin, "test-fleet-vin-mode-09") == vin


def test_the_owners_vin_salts_are_revealed_once_to_the_attestation_host(tmp_path: Path) -> None:
    platform = Platform(StackSettings(data_dir=tmp_path), ROOT)
    salt = bytes(range(32))
    vin = fleet_vin("tesla_model3", 0, 0)
    platform.fleet = [
        FleetVehicle(0, "tesla_model3", 1, "0x" + "11" * 20, "0x" + "22" * 20, 0, vin, salt.hex()),
        FleetVehicle(1, "tesla_model3", 2, "0x" + "33" * 20, "0x" + "22" * 20, 0),  # no VIN
    ]
    assert platform.reveal_vin_salts() == 1
    assert platform.reveal_vin_salts() == 0
    attest = next(s.env for s in platform.plan() if s.name == "attestations")
    book = SaltBook(Path(attest["DIMO_ATTEST_BLOB_DIR"]).parent / "attestation-salts.json")
    assert book.get(1) == salt
    assert book.get(2) is None
