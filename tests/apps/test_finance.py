"""Vehicle finance against the simulator's ground truth: an odometer rollback is flagged, a clean
vehicle raises no flag, the value model shows every factor, and the served answer is audited
from proofs alone; without ODOMETER there is no finance answer."""

# The fixtures come from the indexer tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from apps import finance
from apps.audit import AppInputs, audit_served
from apps.finance import FinanceParams, finance_report, odometer_history, value_adjustment
from indexer.apps.charts import PNG_MAGIC
from indexer.exceptions import AppParameterInvalid
from indexer.queries import ODOMETER, Reading
from protocol.eip712 import Eip712Domain
from tests.apps.sim import direct_inputs, shift_for, sign_windows, simulated
from tests.conftest import FAR_FUTURE, TERMS_CID
from tests.indexer.test_api_telemetry import (  # fixtures shared with the telemetry tests
    World,
    assert_problem,
    world,  # noqa: F401
)
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
)

DAY = 86_400_000
DEVICE_A = "0x000000000000000000000000000000000000000A"
DEVICE_B = "0x000000000000000000000000000000000000000b"
BATTERY_BIT, DRIVING_BIT, ODOMETER_BIT = 1 << 0, 1 << 3, 1 << 2
Fleet = tuple[list[tuple[int, Any]], int]


def _report(days: int, seed: int, rollback: bool) -> tuple[dict[str, Any], Any]:
    windows, truth = simulated(days, 92.0, seed, rollback)
    start, end = windows[0].start, windows[-1].end
    report = finance_report(
        direct_inputs(windows), FinanceParams(), age_years=6.0, life_start_ms=start - DAY,
        end_ms=end,
    )  # fmt: skip
    return report, truth


def test_a_simulated_odometer_rollback_is_flagged_at_its_time() -> None:
    report, truth = _report(4, 21, rollback=True)
    odo = report["odometer"]
    assert truth.rollback is not None
    assert odo["tampered"]
    decreases = [s for s in odo["signals"] if s["kind"] == "decrease"]
    assert len(decreases) == 1
    (flag,) = decreases
    assert abs(flag["to_ts"] / 1000 - truth.rollback.time) < 60
    assert flag["from_km"] == pytest.approx(truth.rollback.from_km, abs=0.2)
    assert flag["to_km"] == pytest.approx(truth.rollback.to_km, abs=0.2)
    assert report["value"]["factors"][3] == {
        "name": "odometer-integrity",
        "value": 0.8,
        "formula": "tamper_factor if the odometer decreased or jumped implausibly, else 1",
        "inputs": {"tampered": True, "tamper_factor": 0.8},
    }


def test_a_clean_vehicle_raises_no_flag_and_its_usage_matches_the_truth() -> None:
    report, truth = _report(10, 3, rollback=False)
    odo = report["odometer"]
    assert truth.rollback is None
    assert odo["flags"] == []
    assert not odo["tampered"]
    driven = sum(t.distance_km for t in truth.trips)
    assert odo["signed_km"] == pytest.approx(driven, abs=1.0)
    assert report["usage"]["trips"] == len(truth.trips)


def _odo(points: list[tuple[int, float, str]]) -> tuple[list[Reading], dict[tuple[int, int], str]]:
    readings = [Reading(t, km, 1, i) for i, (t, km, _) in enumerate(points)]
    return readings, {(1, i): d for i, (_, _, d) in enumerate(points)}


def test_jumps_gaps_and_device_swaps_are_each_flagged() -> None:
    t0 = 1_700_000_000_000
    readings, devices = _odo(
        [
            (t0, 1000.0, DEVICE_A),
            (t0 + 3_600_000, 1050.0, DEVICE_A),
            (t0 + 3_660_000, 1900.0, DEVICE_A),  # 850 km in a minute
            (t0 + 20 * DAY, 2000.0, DEVICE_A),  # 20 days without a reading
            (t0 + 20 * DAY + 60_000, 2001.0, DEVICE_B),  # another device signs
        ]
    )
    odo = odometer_history(readings, devices, FinanceParams(), t0 - DAY, t0 + 21 * DAY)
    assert [s["kind"] for s in odo["signals"]] == ["implausible-jump", "gap", "device-swap"]
    assert odo["signals"][2]["from_device"] == DEVICE_A
    assert odo["signals"][2]["inputs"] == [[1, 3], [1, 4]]
    assert odo["signed_km"] == pytest.approx(51.0)
    assert odo["tampered"]


def test_the_value_is_the_reference_times_every_factor_shown() -> None:
    params = FinanceParams(reference_value=35_000.0)
    out = value_adjustment(params, age_years=5.0, odometer_km=60_000.0, soh_percent=92.0,
                           tampered=False)  # fmt: skip
    names = [f["name"] for f in out["factors"]]
    assert names == ["age", "mileage", "battery", "odometer-integrity"]
    assert out["value"] == pytest.approx(35_000.0 * math.prod(f["value"] for f in out["factors"]))
    assert out["factors"][0]["value"] == pytest.approx(0.85**5)
    assert out["factors"][1]["value"] == pytest.approx(1 - 0.004 * (60_000 - 75_000) / 1000)
    assert out["factors"][2]["value"] == pytest.approx(1 + 0.01 * (92.0 - (100 - 5 * 2.05)))
    assert out["adjustment"] == pytest.approx(out["value"] - 35_000.0)
    cheaper = value_adjustment(
        FinanceParams(reference_value=35_000.0, annual_depreciation=0.2), 5.0, 60_000.0, 92.0,
        False,
    )  # fmt: skip
    assert cheaper["value"] < out["value"]
    with pytest.raises(AppParameterInvalid):
        FinanceParams(tamper_factor=1.5)


def test_a_finance_report_without_odometer_readings_is_empty_not_an_error() -> None:
    report = finance_report(AppInputs(), FinanceParams(), age_years=1.0, life_start_ms=0,
                            end_ms=DAY)  # fmt: skip
    assert report["odometer"]["readings"] == 0
    assert report["odometer"]["flags"] == []
    assert report["usage"]["trips"] == 0
    assert ODOMETER in finance.SIGNALS


# -------------------------------------------------------------------------------------------
# served over the API, audited from proofs alone
# -------------------------------------------------------------------------------------------


def _load_sim(
    world: World,
    anchor_bundles: Callable[..., Anchored],
    domain: Eip712Domain,
    fleet: Fleet,
    days: int,
    seed: int,
    rollback: bool,
) -> tuple[int, int, int]:
    (car, key), _ = fleet[0]
    windows, _ = simulated(days, 92.0, seed, rollback)
    shift = shift_for(fleet[1])
    anchor_bundles(sign_windows(windows, key, car, domain, shift))
    world.sync()
    start, end = windows[0].start + shift, windows[-1].end + shift
    world.at(end + 60_000)
    return car, start, end


def test_a_served_rollback_is_flagged_and_the_audit_recomputes_the_same_answer(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    rpc_url: str,
    platform: Any,
) -> None:
    car, start, end = _load_sim(world, anchor_bundles, domain, fleet, 4, 21, True)
    with world.client(owner) as mine:
        r = mine.get(f"/apps/finance/{car}", params={"start": start, "end": end})
        assert r.status_code == 200, r.text
        answer = r.json()
        token = str(mine.headers["Authorization"]).removeprefix("Bearer ")
        outcome = audit_served(
            answer,
            finance.compute,
            world.base_url,
            token,
            rpc_url,
            platform["AttestationAnchor"].address,
            client=mine,
        )
    result = answer["result"]
    assert result["odometer"]["tampered"]
    assert "decrease" in result["odometer"]["flags"]
    assert result["battery"]["soh"] is not None
    assert result["usage"] is not None
    assert outcome.result == result
    assert answer["context"]["vehicle"] == {"make": "Hyundai", "model": "Kona Electric",
                                            "year": 2019}  # fmt: skip


def test_without_odometer_scope_there_is_no_finance_answer_and_usage_needs_driving(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> None:
    (car, _), _ = fleet[0]
    vehicle_rights.grant(car, stranger, BATTERY_BIT | DRIVING_BIT, FAR_FUTURE, TERMS_CID,
                         sender=owner)  # fmt: skip
    car, start, end = _load_sim(world, anchor_bundles, domain, fleet, 2, 5, False)
    span = {"start": start, "end": end}
    with world.client(stranger) as grantee:
        denied = grantee.get(f"/apps/finance/{car}", params=span)
        chart_denied = grantee.get(f"/apps/finance/{car}/chart.png", params=span)
        vehicle_rights.grant(car, stranger, ODOMETER_BIT, FAR_FUTURE, TERMS_CID, sender=owner)
        world.sync()
        granted = grantee.get(f"/apps/finance/{car}", params=span)
        chart = grantee.get(f"/apps/finance/{car}/chart.png", params=span)
        bad = grantee.get(f"/apps/finance/{car}", params={**span, "params": '{"gap_days": -1}'})
        bad_chart = grantee.get(
            f"/apps/finance/{car}/chart.png", params={**span, "params": '{"gap_days": -1}'}
        )
    for refused in (denied, chart_denied):
        assert assert_problem(refused, 403, "privilege-missing")["missing_scopes"] == ["ODOMETER"]
    assert chart.status_code == 200, chart.text
    assert chart.content.startswith(PNG_MAGIC)
    assert assert_problem(bad_chart, 400, "invalid-app-parameter")["parameter"] == "gap_days"
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["result"]["usage"] is None
    assert body["result"]["battery"] is None
    assert not body["result"]["odometer"]["tampered"]
    assert {w["missing_scope"] for w in body["withheld"]} == {"DRIVING", "BATTERY"}
    assert assert_problem(bad, 400, "invalid-app-parameter")["parameter"] == "gap_days"
