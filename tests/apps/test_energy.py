"""Grid integration: sessions against the simulator's ground truth, the "10 of 10" baseline,
demand-response settlement with a known delivered load, and the API over anchored readings."""

# The fixtures come from the indexer and insurance tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pytest

from apps.audit import fetch_and_verify_inputs
from apps.energy.openadr import parse_duration_ms
from apps.energy.params import EnergyParams
from apps.energy.sessions import energy_kwh, sessions
from apps.energy.settlement import comparable_windows, deliver, settle
from device_bridge.simulator import FleetOptions, simulate_fleet
from indexer.apps import energy
from indexer.apps.charts import PNG_MAGIC
from indexer.exceptions import AppParameterInvalid
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain
from tests.apps.test_insurance import (  # fixtures shared with the insurance tests
    ServedWorld,
    served_world,  # noqa: F401
    token_of,
)
from tests.apps.traces import (
    IS_CHARGING,
    PLUGGED,
    POWER,
    SOC,
    as_readings,
    charge_samples,
    evening_charging,
)
from tests.conftest import TERMS_CID, private_key
from tests.indexer.test_api_telemetry import advance, assert_problem, head_s
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

DAY = 86_400_000
#: 2026-01-07T00:00:00Z, a Wednesday.
EVENT_DAY = 1_767_744_000_000
HOUR = 3_600_000


# -------------------------------------------------------------------------------------------
# pure
# -------------------------------------------------------------------------------------------


def test_sessions_match_the_simulated_charging_energy_and_state_of_charge() -> None:
    traces = simulate_fleet(FleetOptions(vehicles=3, days=3, seed=7))
    checked = 0
    for trace in traces:
        samples = charge_samples(trace)
        found = sessions(
            as_readings(samples[IS_CHARGING]),
            as_readings(samples[POWER], 2),
            as_readings(samples[SOC], 3),
            as_readings(samples[PLUGGED], 4),
        )
        truth = trace.truth.charging_sessions
        assert len(found) == len(truth)
        for got, true in zip(found, truth, strict=True):
            assert got.energy_kwh == pytest.approx(true.energy_battery_kwh, rel=0.02)
            assert got.soc_start == pytest.approx(true.soc_start, abs=0.5)
            assert got.soc_end == pytest.approx(true.soc_end, abs=0.5)
            assert got.peak_kw == pytest.approx(true.max_power_kw, rel=0.01)
            # The simulator unplugs as soon as it is full: no slack beyond ramps at the ends.
            assert got.plugged_h >= got.needed_h - 1e-9
            checked += 1
    assert checked >= 3


def test_flexibility_is_the_plugged_time_the_energy_does_not_need() -> None:
    t0 = EVENT_DAY + 20 * HOUR
    plugged = [(t0 + i * 60_000, 1.0) for i in range(0, 8 * 60 + 1)]  # 8 h plugged in
    charging = [(t0 + i * 60_000, 1.0 if i <= 120 else 0.0) for i in range(0, 8 * 60 + 1, 5)]
    power = [(t0 + i * 60_000, 7.0 if i < 120 else 0.0) for i in range(0, 8 * 60 + 1)]
    (s,) = sessions(as_readings(charging), as_readings(power, 2), [], as_readings(plugged, 3))
    assert s.energy_kwh == pytest.approx(14.0, rel=1e-3)  # 2 h at 7 kW
    assert s.plugged_h == pytest.approx(8.0)
    assert s.needed_h == pytest.approx(2.0, rel=1e-3)
    assert s.slack_h == pytest.approx(6.0, rel=1e-3)
    assert s.shiftable_kwh == pytest.approx(14.0, rel=1e-3)
    assert s.sheddable_kw == pytest.approx(7.0, rel=1e-2)


def test_energy_holds_each_reading_until_the_next_or_the_hold_limit() -> None:
    power = as_readings([(0, 6.0), (60_000, 3.0), (600_000, 12.0)])
    kwh, used = energy_kwh(power, 0, 900_000, max_hold_s=120)
    # 6 kW for 60 s, 3 kW for 120 s (then nothing until 600 s), 12 kW for 120 s.
    assert kwh == pytest.approx((6 * 60 + 3 * 120 + 12 * 120) / 3600)
    assert [r.ts for r in used] == [0, 60_000, 600_000]


def test_the_baseline_days_are_the_comparable_days_before_skipping_event_days() -> None:
    params = EnergyParams()
    start = EVENT_DAY + 18 * HOUR
    windows = comparable_windows(start, start + 2 * HOUR, params, excluded_days=["2026-01-05"])
    first = [(a - start) // DAY for a, _ in windows[:10]]
    # Wednesday: Tue, (Mon skipped: an event day), Fri, Thu, Wed, Tue, Mon, Fri, ...
    assert first == [-1, -5, -6, -7, -8, -9, -12, -13, -14, -15]
    assert all(b - a == 2 * HOUR for a, b in windows)
    # Across a DST change the local clock time is kept.
    berlin = EnergyParams(timezone="Europe/Berlin")
    summer = 1_774_864_800_000  # 2026-03-30T10:00:00Z, Monday, 12:00 in Berlin (CEST)
    before = comparable_windows(summer, summer + HOUR, berlin)[0]
    assert before[0] == summer - 3 * DAY + HOUR  # Friday 27 March, 12:00 CET = 11:00 UTC


def test_a_simulated_demand_response_event_is_settled_within_5_percent() -> None:
    """Twenty cars charge every weekday evening; on the event day each cuts its load by a
    known amount from 18:00 to 20:00; the settlement must find the known delivered energy."""
    params = EnergyParams()
    day0 = EVENT_DAY - 14 * DAY
    event_index = 14
    start, end = EVENT_DAY + 18 * HOUR, EVENT_DAY + 20 * HOUR
    windows = comparable_windows(start, end, params)
    deliveries = []
    truth = 0.0
    for v in range(20):
        kw = 3.6 + 0.4 * v
        cut = kw * (0.2 + 0.03 * v)
        truth += (kw - cut) * 2
        series = evening_charging(
            day0,
            15,
            kw,
            curtailed={event_index: (18 * HOUR, 20 * HOUR, cut)},
            weekend_kw=1.0,
            seed=v,
        )
        power = as_readings(series)
        delivery = deliver(v, start, end, windows, power, [], params)
        assert delivery.status == "settled"
        assert len(delivery.baseline_windows) == 10
        assert delivery.delivered_kwh == pytest.approx((kw - cut) * 2, rel=0.05)
        deliveries.append(delivery)
    event = {
        "id": 1,
        "program_id": 1,
        "region": "DE-BW",
        "start_ms": start,
        "end_ms": end,
        "requested_kw": 100.0,
    }
    result = settle(event, deliveries, EnergyParams(price_dimo_per_kwh=2.0))
    assert result["totals"]["delivered_kwh"] == pytest.approx(truth, rel=0.05)
    assert result["totals"]["delivered_kw"] == pytest.approx(truth / 2, rel=0.05)
    paid = sum(int(a["wei"]) for a in result["payment"]["amounts"])
    assert int(result["payment"]["total_wei"]) == paid
    assert paid == pytest.approx(truth * 2 * 10**18, rel=0.05)


def test_a_silent_vehicle_delivers_nothing_and_too_little_history_is_not_settled() -> None:
    params = EnergyParams()
    start, end = EVENT_DAY + 18 * HOUR, EVENT_DAY + 20 * HOUR
    windows = comparable_windows(start, end, params)
    history = as_readings(evening_charging(EVENT_DAY - 14 * DAY, 14, 7.0))
    silent = deliver(1, start, end, windows, history, [], params)
    assert (silent.status, silent.paid_kwh) == ("no-data", 0.0)
    assert silent.delivered_kwh > 0  # the baseline alone would have paid it
    short = as_readings(evening_charging(EVENT_DAY - 3 * DAY, 4, 7.0))
    few = deliver(2, start, end, windows[:3], short, [], params)
    assert few.status == "too-few-baseline-days"


def test_bad_energy_parameters_and_durations_are_refused() -> None:
    with pytest.raises(AppParameterInvalid):
        EnergyParams(min_baseline_days=11)
    with pytest.raises(AppParameterInvalid):
        EnergyParams(timezone="Nowhere/Land")
    assert parse_duration_ms("PT2H") == 2 * HOUR
    assert parse_duration_ms("P1DT30M") == DAY + HOUR // 2
    for bad in ("2h", "PT", "PT0S"):
        with pytest.raises(ValueError, match=r"duration|empty"):
            parse_duration_ms(bad)


# -------------------------------------------------------------------------------------------
# served: regions, OpenADR objects, settlement with proofs, feature flags
# -------------------------------------------------------------------------------------------

CHARGING_BIT = 1 << 1
PRICE = 10**18
REGION_TYPES = [
    {"name": "vehicleId", "type": "uint256"},
    {"name": "region", "type": "string"},
    {"name": "issuedAt", "type": "uint64"},
]
Fleet = tuple[list[tuple[int, Any]], int]


def charging_samples(power: list[tuple[int, float]]) -> dict[str, list[tuple[int, Any]]]:
    """Power readings with the charging state every 5 minutes and false after each evening."""
    state: list[tuple[int, Any]] = []
    for i, (ts, _) in enumerate(power):
        last = i + 1 == len(power) or power[i + 1][0] - ts > 60_000
        if i % 10 == 0 or last:
            state.append((ts, 1.0))
        if last:
            state.append((ts + 15_000, 0.0))
    return {POWER: power, IS_CHARGING: state}


def declare(
    client: Any, car: int, signer: Any, vehicle_id: Any, sign: Callable[..., bytes], at: int
) -> Any:
    message = {"vehicleId": car, "region": "DE-BW", "issuedAt": at}
    signature = sign(private_key(signer), vehicle_id, "GridRegion", REGION_TYPES, message)
    return client.post(
        f"/apps/energy/{car}/region-declarations",
        json={"region": "DE-BW", "issued_at": at, "signature": "0x" + signature.hex()},
    )


def test_a_utility_settles_a_demand_response_event_with_proofs_behind_each_delivery(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    buyer: Any,
    stranger: Any,
    curator: Any,
    admin: Any,
    data_market: Any,
    token: Any,
    parameters: Any,
    vehicle_id: Any,
    sign: Callable[..., bytes],
    rpc_url: str,
    deployment: Deployment,
) -> None:
    world = served_world
    (car_a, key_a), (car_b, key_b) = fleet[0]
    t0 = fleet[1]
    day0 = (t0 // DAY + 2) * DAY
    event_index = next(i for i in range(14, 21) if ((day0 + i * DAY) // DAY + 3) % 7 < 5)
    days = event_index + 1
    event_day = day0 + event_index * DAY
    start, end = event_day + 18 * HOUR, event_day + 20 * HOUR

    product = int(
        data_market.listProduct(
            CHARGING_BIT, PRICE, 30 * 86_400, TERMS_CID, sender=curator
        ).return_value
    )
    data_market.optIn(car_a, product, sender=owner)
    data_market.optIn(car_b, product, sender=owner)
    token.mint(buyer, PRICE, sender=admin)
    token.approve(data_market, PRICE, sender=buyer)
    data_market.buy(product, 1, sender=buyer)
    cut = {event_index: (18 * HOUR, 20 * HOUR, 2.4)}
    curtailing = charging_samples(evening_charging(day0, days, 7.4, curtailed=cut, seed=1))
    steady = charging_samples(evening_charging(day0, days, 3.7, seed=2))
    anchor_bundles(
        windowed_bundles(key_a, car_a, curtailing, domain, window_ms=600_000)
        + windowed_bundles(key_b, car_b, steady, domain, window_ms=600_000)
    )
    advance((day0 + days * DAY) // 1000 - head_s() + 600)
    world.sync()
    world.at(head_s() * 1000)
    grid_flag = parameters.FEATURE_GRID_PROGRAMMES()
    program = {"programName": "evening-peak", "programType": "DEMAND_RESPONSE"}
    with world.client(buyer) as utility, world.client(owner) as mine:
        # Governance has not enabled grid programmes (nor commands) yet.
        off = utility.post("/apps/energy/programs", json=program)
        assert assert_problem(off, 403, "feature-disabled")["feature"] == "FEATURE_GRID_PROGRAMMES"
        control = mine.post(f"/apps/energy/{car_a}/charging-control", json={"action": "pause"})
        assert assert_problem(control, 403, "feature-disabled")["feature"] == (
            "FEATURE_COMMANDS_SCOPE"
        )
        parameters.setFlag(grid_flag, True, sender=admin)
        try:
            world.sync()
            settlement = _settle_and_check(
                world, utility, mine, stranger, locals(), vehicle_id, sign
            )
        finally:
            parameters.setFlag(grid_flag, False, sender=admin)
        # The curtailing car's delivery, recomputed from the proofs of its inputs alone.
        delivery = next(v for v in settlement["vehicles"] if v["vehicle_id"] == car_a)
        p = EnergyParams.from_dict(settlement["params"])
        windows = [(int(a), int(b)) for a, b in delivery["baseline_windows"]]
        first = min(a for a, _ in windows) - int(p.max_hold_s * 1000)
        inputs = fetch_and_verify_inputs(
            world.base_url,
            token_of(utility),
            car_a,
            delivery["inputs"],
            rpc_url,
            deployment.contract("AttestationAnchor").address,
            signal_names=[POWER, IS_CHARGING],
            start_ms=first,
            end_ms=end,
            covered={POWER: [(first, end)], IS_CHARGING: [(first, end)]},
        )
    again = deliver(car_a, start, end, windows, inputs.get(POWER), inputs.get(IS_CHARGING), p)
    assert asdict(again) == delivery


def _settle_and_check(
    world: ServedWorld,
    utility: Any,
    mine: Any,
    stranger: Any,
    ctx: dict[str, Any],
    vehicle_id: Any,
    sign: Callable[..., bytes],
) -> dict[str, Any]:
    car_a, car_b, start = ctx["car_a"], ctx["car_b"], ctx["start"]
    now_s = head_s()
    assert declare(utility, car_a, ctx["owner"], vehicle_id, sign, now_s).status_code == 200
    assert declare(utility, car_b, ctx["owner"], vehicle_id, sign, now_s).status_code == 200
    forged = declare(utility, car_a, stranger, vehicle_id, sign, now_s + 1)
    assert "signed by" in assert_problem(forged, 400, "invalid-region-declaration")["detail"]
    region = mine.get(f"/apps/energy/{car_a}/region").json()
    assert (region["region"], region["owner"]) == ("DE-BW", ctx["owner"].address.lower())

    with world.client(stranger) as unlicensed:
        r = unlicensed.post("/apps/energy/programs", json=ctx["program"])
        assert_problem(r, 403, "grid-licence-missing")
    r = utility.post("/apps/energy/programs", json=ctx["program"])
    assert r.status_code == 201, r.text
    program_id = r.json()["id"]
    event = {
        "programID": program_id,
        "eventName": "cold evening",
        "targets": [{"type": "GRID_REGION", "values": ["DE-BW"]}],
        "intervalPeriod": {"start": energy.iso(start), "duration": "PT2H"},
        "intervals": [
            {
                "id": 0,
                "payloads": [
                    {"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-10.0]},
                    {"type": "PRICE", "values": [2.0]},
                ],
            }
        ],
    }
    r = utility.post("/apps/energy/events", json=event)
    assert r.status_code == 201, r.text
    event_id = r.json()["id"]
    bad = utility.post("/apps/energy/events", json={**event, "targets": []})
    assert_problem(bad, 400, "invalid-openadr-object")

    r = utility.post(f"/apps/energy/events/{event_id}/settle")
    assert r.status_code == 201, r.text
    report, settlement = r.json()["report"], r.json()["settlement"]
    by_car = {v["vehicle_id"]: v for v in settlement["vehicles"]}
    a, b = by_car[car_a], by_car[car_b]
    assert (a["status"], b["status"]) == ("settled", "settled")
    assert len(a["baseline_windows"]) == 10
    known = (7.4 - 2.4) * 2
    assert a["delivered_kwh"] == pytest.approx(known, rel=0.05)
    assert abs(b["delivered_kwh"]) < 0.05 * 3.7 * 2
    total = settlement["totals"]["delivered_kwh"]
    assert total == pytest.approx(a["paid_kwh"] + b["paid_kwh"], rel=1e-6)
    assert settlement["payment"]["total_wei"] == str(
        sum(int(x["wei"]) for x in settlement["payment"]["amounts"])
    )
    assert int(settlement["payment"]["total_wei"]) == pytest.approx(total * 2 * 10**18, rel=1e-6)
    assert report["objectType"] == "REPORT"
    assert {res["resourceName"] for res in report["resources"]} == {
        f"vehicle:{car_a}",
        f"vehicle:{car_b}",
    }
    chart = utility.get(f"/apps/energy/reports/{report['id']}/chart.png")
    assert chart.status_code == 200
    assert chart.content.startswith(PNG_MAGIC)
    flex = utility.get(
        "/apps/energy/regions/DE-BW/flexibility",
        params={"start": ctx["day0"], "end": ctx["day0"] + ctx["days"] * DAY},
    )
    assert flex.status_code == 200, flex.text
    assert flex.json()["summary"]["vehicles"] == 2
    sessions_r = mine.get(
        f"/apps/energy/{car_a}/sessions",
        params={"start": ctx["day0"], "end": ctx["day0"] + ctx["days"] * DAY},
    )
    assert sessions_r.status_code == 200, sessions_r.text
    charging_days = len({ts // DAY for ts, _ in ctx["curtailing"][POWER]})
    assert len(sessions_r.json()["result"]["sessions"]) == charging_days
    return settlement
