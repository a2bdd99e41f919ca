"""Smart insurance: events against the simulator's ground truth, the published formula, the
score served over real anchored readings, the audit and the offline export."""

# The fixtures come from the indexer tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from apps.audit import compare_results
from device_bridge.simulator import FleetOptions, simulate_fleet
from indexer.api.main import create_app
from indexer.apps import insurance
from indexer.apps.charts import PNG_MAGIC
from indexer.apps.cli import app as apps_cli
from indexer.apps.insurance import ScoreParams, score, verify_export
from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.exceptions import AppParameterInvalid, AuditMismatch, ExportInvalid
from protocol.blobstore import LocalCidStore
from protocol.bundle import SignedBundle, decode_signed_bundle, encode_signed_bundle
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain
from tests.apps.traces import IGNITION, SPEED, as_readings, braking_trace, drive_samples
from tests.conftest import FAR_FUTURE, TERMS_CID
from tests.indexer.test_api_basics import Served
from tests.indexer.test_api_telemetry import (
    DOMAIN,
    URI,
    Clock,
    World,
    advance,
    assert_problem,
    head_s,
)
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)
from tests.indexer.test_sync import fresh_db

DRIVING = 1 << 3
Fleet = tuple[list[tuple[int, Any]], int]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday


# -------------------------------------------------------------------------------------------
# pure: against ground truth
# -------------------------------------------------------------------------------------------


def test_every_simulated_harsh_braking_is_found_and_none_is_invented() -> None:
    traces = simulate_fleet(FleetOptions(vehicles=6, days=4, seed=7))
    truth_total = found_total = 0
    for trace in traces:
        samples = drive_samples(trace)
        start = int(trace.truth.start * 1000)
        end = int(trace.truth.end * 1000)
        result = score(
            trace.config.index,
            start,
            end,
            as_readings(samples[SPEED]),
            as_readings(samples[IGNITION], batch_id=2),
        )
        found = [e for t in result.trips for e in t.events if e.kind == "harsh_braking"]
        truth = trace.truth.harsh_events
        # One found event per true event, starting on the same sample (0.1 s apart at most).
        assert len(found) == len(truth)
        for event, true in zip(found, truth, strict=True):
            assert abs(event.start_ms - (true.time * 1000 - 100)) <= 100
            assert math.isclose(event.value, true.deceleration_mphps, rel_tol=0.02)
        assert len(result.trips) == len(trace.truth.trips)
        truth_total += len(truth)
        found_total += len(found)
    assert truth_total >= 5  # the seed gives real events to find


def test_a_braking_at_7_1_mph_per_s_is_harsh_and_one_at_6_9_is_not() -> None:
    for decel, expected in ((6.9, 0), (7.1, 1)):
        trace = as_readings(braking_trace(T0 + 3_600_000, decel))
        result = score(1, T0, T0 + 86_400_000, trace, [])
        brakes = [e for t in result.trips for e in t.events if e.kind == "harsh_braking"]
        assert len(brakes) == expected, decel
        if brakes:
            assert brakes[0].value == pytest.approx(7.1, abs=0.01)
            assert brakes[0].reading_count == len(brakes[0].readings) >= 2


def test_the_score_follows_the_published_formula() -> None:
    # 23:55 local (Europe/Berlin, UTC+1 in January) is 22:55 UTC; the drive runs into the night.
    start = T0 - 3_900_000
    trace = as_readings(braking_trace(start, 8.0, cruise_kmh=140.0))
    params = ScoreParams(timezone="Europe/Berlin")
    result = score(5, T0 - 86_400_000, T0 + 86_400_000, trace, [], params)
    (trip,) = result.trips
    assert trip.counts["harsh_braking"] == 1
    km = trip.distance_km
    per_100 = 100 / max(km, params.min_distance_km)
    share = 100 / trip.driving_s
    km_30d = km * 15
    want = {
        "braking": 5.0 * per_100,
        "acceleration": 0.0,
        "high_speed": 1.0 * trip.high_speed_s * share,
        "night": 0.5 * trip.night_s * share,
        "mileage": 2.0 * max(0.0, km_30d - 1250.0) / 1000,
    }
    assert result.penalties == pytest.approx(want, abs=1e-5)
    assert result.score == pytest.approx(max(0.0, 100 - sum(want.values())), abs=1e-3)
    assert trip.high_speed_s > 0
    # Local midnight falls inside the drive: only the part after it is night driving.
    assert 0 < trip.night_s < trip.driving_s
    assert result.inputs == [[1, i] for i in range(len(trace))]


def test_bad_parameters_are_refused_with_a_typed_error() -> None:
    with pytest.raises(AppParameterInvalid) as err:
        ScoreParams(harsh_braking_mphps=0)
    assert err.value.parameter == "harsh_braking_mphps"
    with pytest.raises(AppParameterInvalid):
        ScoreParams(timezone="Mars/Olympus")
    with pytest.raises(AppParameterInvalid):
        ScoreParams(night_start_hour=5, night_end_hour=4)
    with pytest.raises(AppParameterInvalid):
        ScoreParams.from_dict({"harsh_braking": 7})


# -------------------------------------------------------------------------------------------
# served over anchored readings: rights, audit, export
# -------------------------------------------------------------------------------------------


class ServedWorld(World):
    """A `World` whose API knows the deployment, and can be stopped (the server gone)."""

    served: Served

    def stop(self) -> None:
        self.served.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", "postgresql"])
def served_world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store: LocalCidStore,
    rpc_url: str,
    deployment_record: Path,
) -> Iterator[ServedWorld]:
    """A fresh index synced from the chain and the API serving it, with the deployment."""
    url, drop = fresh_db(str(request.param), tmp_path)
    engine = make_engine(url)
    clock = Clock(head_s())
    settings = IndexerSettings(
        siwe_domain=DOMAIN,
        siwe_uri=URI,
        siwe_chain_id=31337,
        jwt_secret="t" * 32,
        jwt_ttl_s=10**8,
        session_max_s=10**8,
        rate_limit_per_minute=0,
        deployment=deployment_record,
    )
    served = Served(create_app(settings, engine, clock=clock))
    try:
        with served:
            world = ServedWorld(url, engine, served.url, clock, store, rpc_url, deployment_record)
            world.served = served
            yield world
    finally:
        engine.dispose()
        drop()


def token_of(client: httpx.Client) -> str:
    return str(client.headers["Authorization"]).split(" ", 1)[1]


def drive_with_a_harsh_brake(t0: int) -> dict[str, list[tuple[int, Any]]]:
    """A 7-minute drive at 10 Hz with one braking at 8 mph/s, ignition ON every 10 s."""
    speed = braking_trace(t0, 8.0)
    end = speed[-1][0]
    ignition = [(t, "ON") for t in range(t0, end, 10_000)] + [(end + 500, "OFF")]
    return {SPEED: speed, IGNITION: ignition}


def test_an_insurer_with_a_driving_grant_reads_a_score_that_the_audit_recomputes(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    other_owner: Any,
    vehicle_rights: Any,
    rpc_url: str,
    deployment: Deployment,
) -> None:
    world = served_world
    (car, key), t0 = fleet[0][0], fleet[1]
    samples = drive_with_a_harsh_brake(t0)
    anchor_bundles(windowed_bundles(key, car, samples, domain))
    vehicle_rights.grant(car, stranger, DRIVING, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(900)
    world.sync()
    world.at(head_s() * 1000)
    end = t0 + 900_000
    window = {"start": t0, "end": end}
    anchor = deployment.contract("AttestationAnchor").address
    with world.client(stranger) as insurer, world.client(other_owner) as nobody:
        r = insurer.get(f"/apps/insurance/{car}/score", params=window)
        assert r.status_code == 200, r.text
        body = r.json()
        denied = nobody.get(f"/apps/insurance/{car}/score", params=window)
        served, outcome = insurance.audit(
            world.base_url, token_of(insurer), car, t0, end, rpc_url, anchor
        )
        chart = insurer.get(f"/apps/insurance/{car}/chart.png", params=window)
        bad = insurer.get(
            f"/apps/insurance/{car}/score", params={**window, "params": '{"braking": 1}'}
        )
    result = body["result"]
    assert body["app"] == "insurance"
    assert (result["exposure"]["trips"], result["exposure"]["harsh_braking"]) == (1, 1)
    (event,) = [e for e in result["trips"][0]["events"] if e["kind"] == "harsh_braking"]
    assert event["value"] == pytest.approx(8.0, abs=0.01)
    # The event's readings are served readings, each naming its bundle.
    assert all(len(reading) == 4 for reading in event["readings"])
    assert body["inputs"] == result["inputs"]
    assert len(body["inputs"]) >= 7
    assert list(body["covered"]) == [SPEED, IGNITION]
    # Audit recomputation from proofs equals the served score.
    assert served["result"] == result
    assert outcome.result == result
    assert outcome.bundles == len(body["inputs"])
    assert outcome.readings == len(samples[SPEED]) + len(samples[IGNITION])
    # The batch path (a fleet licence's job over whole windows) gives the same score.
    with world.engine.connect() as conn:
        assert insurance.fleet_scores(conn, [car], t0, end)[car].to_dict() == result
    tampered = copy.deepcopy(result)
    tampered["score"] -= 1
    with pytest.raises(AuditMismatch):
        compare_results("insurance", tampered, outcome.result)
    assert assert_problem(denied, 403, "privilege-missing")["missing_scopes"] == ["DRIVING"]
    assert chart.status_code == 200
    assert chart.content.startswith(PNG_MAGIC)
    assert assert_problem(bad, 400, "invalid-app-parameter")["parameter"] == "braking"


def _tamper_reading(doc: dict[str, Any]) -> dict[str, Any]:
    """The export with one speed reading of its first bundle changed (signature kept)."""
    out = copy.deepcopy(doc)
    entry = out["bundles"][0]
    signed = decode_signed_bundle(bytes.fromhex(entry["wire"][2:]))
    readings = dict(signed.bundle.readings)
    (ts, value), *rest = readings[SPEED]
    readings[SPEED] = [(ts, float(value) + 1.0), *rest]
    changed = type(signed.bundle)(
        signed.bundle.device,
        signed.bundle.vehicle_id,
        signed.bundle.sequence,
        signed.bundle.window_start,
        signed.bundle.window_end,
        readings,
    )
    entry["wire"] = "0x" + encode_signed_bundle(SignedBundle(changed, signed.signature)).hex()
    return out


def test_the_exported_file_verifies_offline_after_the_server_is_gone_and_not_if_altered(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    rpc_url: str,
    deployment: Deployment,
    tmp_path: Path,
) -> None:
    world = served_world
    (car, key), t0 = fleet[0][0], fleet[1]
    anchor_bundles(windowed_bundles(key, car, drive_with_a_harsh_brake(t0), domain))
    advance(900)
    world.sync()
    world.at(head_s() * 1000)
    anchor = deployment.contract("AttestationAnchor").address
    exported = tmp_path / "claim" / "export.json"
    with world.client(owner) as mine:
        scored = mine.get(f"/apps/insurance/{car}/score", params={"start": t0, "end": t0 + 900_000})
        run = CliRunner().invoke(
            apps_cli,
            [
                "insurance",
                "--vehicle",
                str(car),
                "--start",
                str(t0),
                "--end",
                str(t0 + 900_000),
                "--api-url",
                world.base_url,
                "--token",
                token_of(mine),
                "--audit",
                "--rpc-url",
                rpc_url,
                "--anchor",
                anchor,
                "--export",
                str(exported),
                "--out",
                str(tmp_path / "out"),
            ],
        )
    assert run.exit_code == 0, run.output
    assert "audit passed" in run.output
    assert (tmp_path / "out" / f"insurance-{car}-trips.png").read_bytes().startswith(PNG_MAGIC)
    doc = json.loads(exported.read_text())
    world.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(world.base_url + "/healthz", timeout=2)

    offline = CliRunner().invoke(apps_cli, ["insurance", "--verify", str(exported)])
    assert offline.exit_code == 0, offline.output
    assert "export verified" in offline.output
    checked = verify_export(doc)
    assert checked.result.to_dict() == doc["result"] == scored.json()["result"]
    assert checked.bundles == len(doc["bundles"]) >= 7
    assert checked.devices == [key.address]
    assert verify_export(doc, rpc_url=rpc_url, anchor=anchor).roots_checked_on_chain
    assert doc["chain_id"] == deployment.chain_id
    assert doc["anchor"] == anchor
    assert all(b["tx_hash"].startswith("0x") for b in doc["batches"])

    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(_tamper_reading(doc)))
    rejected = CliRunner().invoke(apps_cli, ["insurance", "--verify", str(altered)])
    assert rejected.exit_code == 1
    assert "signature" in rejected.output
    with pytest.raises(ExportInvalid, match="signature"):
        verify_export(_tamper_reading(doc))
    changed = copy.deepcopy(doc)
    changed["result"]["exposure"]["harsh_braking"] = 0
    with pytest.raises(ExportInvalid, match="recomputed"):
        verify_export(changed)
    rerooted = copy.deepcopy(doc)
    rerooted["batches"][0]["root"] = "0x" + "11" * 32
    with pytest.raises(ExportInvalid, match="Merkle"):
        verify_export(rerooted)
    dropped = copy.deepcopy(doc)
    del dropped["bundles"][-1]
    with pytest.raises(ExportInvalid, match="recomputed"):
        verify_export(dropped)
    with pytest.raises(ExportInvalid, match="anchor"):
        verify_export(doc, anchor="0x" + "22" * 20)
