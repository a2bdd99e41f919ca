"""Geometric grid regions: point in polygon (holes, multipolygons, edges), placement of a
vehicle by its verified position, and the API's LOCATION rule: placement by position only with
LOCATION, a 403 naming the scope without it, the owners' declarations as the fallback, and an
audit that recomputes a placement from the proofs of its readings.

The antimeridian is not handled by wrapping: RFC 7946 asks producers to split such an area
into a MultiPolygon at +-180, and the test below checks that a split area works as one.
"""

# The fixtures come from the indexer and insurance tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.audit import fetch_and_verify_inputs
from apps.energy.geo import (
    LATITUDE,
    LONGITUDE,
    GeoArea,
    latest_fix,
    place_by_position,
    placement_instant,
)
from apps.energy.params import EnergyParams
from indexer.apps import energy
from indexer.queries import Reading
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain
from tests.apps.test_energy import REGION_TYPES, charging_samples
from tests.apps.test_insurance import (  # fixtures shared with the insurance tests
    ServedWorld,
    served_world,  # noqa: F401
    token_of,
)
from tests.apps.traces import IS_CHARGING, evening_charging
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
HOUR = 3_600_000
CHARGING_BIT = 1 << 1
LOCATION_BIT = 1 << 4
PRICE = 10**18

#: Roughly Baden-Wuerttemberg, with a hole (a city served by another utility).
SQUARE = [[7.5, 47.5], [10.5, 47.5], [10.5, 49.8], [7.5, 49.8], [7.5, 47.5]]
HOLE = [[8.0, 48.0], [8.0, 48.5], [8.5, 48.5], [8.5, 48.0], [8.0, 48.0]]
REGION = {"type": "Polygon", "coordinates": [SQUARE, HOLE]}
STUTTGART = (9.18, 48.78)
BERLIN = (13.40, 52.52)


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


# -------------------------------------------------------------------------------------------
# pure: point in polygon
# -------------------------------------------------------------------------------------------


def test_a_point_in_a_hole_is_outside_the_region_and_one_on_the_hole_edge_is_inside() -> None:
    area = GeoArea.from_geojson(REGION)
    assert area.contains(*STUTTGART)
    assert not area.contains(8.25, 48.25)  # in the hole
    assert area.contains(8.0, 48.25)  # on the hole's ring: part of the region
    assert area.contains(8.5, 48.5)  # a vertex of the hole
    assert not area.contains(*BERLIN)


def test_points_on_the_outer_ring_count_as_inside_and_just_beyond_it_as_outside() -> None:
    area = GeoArea.from_geojson({"type": "Polygon", "coordinates": [SQUARE]})
    assert area.contains(7.5, 48.0)  # west edge
    assert area.contains(10.5, 49.8)  # a corner
    assert area.contains(9.0, 47.5)  # south edge, horizontal
    assert not area.contains(10.500000001, 48.0)
    assert not area.contains(9.0, 47.49999999)
    # A ray through a vertex must not count the crossing twice.
    diamond = GeoArea.from_geojson(
        {"type": "Polygon", "coordinates": [[[0, -1], [1, 0], [0, 1], [-1, 0], [0, -1]]]}
    )
    assert diamond.contains(-0.5, 0.0)
    assert not diamond.contains(-1.5, 0.0)
    assert not diamond.contains(1.5, 0.0)


def test_a_multipolygon_holds_the_points_of_each_of_its_parts_and_none_between() -> None:
    area = GeoArea.from_geojson(
        {
            "type": "MultiPolygon",
            "coordinates": [[square(0, 0, 1, 1)], [square(2, 0, 3, 1), square(2.4, 0.4, 2.6, 0.6)]],
        }
    )
    assert area.contains(0.5, 0.5)
    assert area.contains(2.2, 0.5)
    assert not area.contains(1.5, 0.5)
    assert not area.contains(2.5, 0.5)  # the second part's hole
    assert area.as_geojson()["type"] == "MultiPolygon"
    assert area.bbox() == [0.0, 0.0, 3.0, 1.0]


def test_an_area_across_the_antimeridian_works_when_split_into_two_polygons_at_180() -> None:
    fiji = GeoArea.from_geojson(
        {
            "type": "MultiPolygon",
            "coordinates": [
                [square(177.0, -19.0, 180.0, -16.0)],
                [square(-180.0, -19.0, -179.0, -16.0)],
            ],
        }
    )
    assert fiji.contains(178.4, -18.1)
    assert fiji.contains(-179.5, -17.0)
    assert fiji.contains(180.0, -17.0)
    assert fiji.contains(-180.0, -17.0)
    assert not fiji.contains(0.0, -17.0)  # no ring spans the globe the long way round


@given(
    x=st.floats(min_value=-180, max_value=180, allow_nan=False),
    y=st.floats(min_value=-90, max_value=90, allow_nan=False),
)
def test_a_rectangle_contains_exactly_the_points_within_its_bounds(x: float, y: float) -> None:
    area = GeoArea.from_geojson({"type": "Polygon", "coordinates": [square(-10, -5, 20, 30)]})
    assert area.contains(x, y) == (-10 <= x <= 20 and -5 <= y <= 30)


@pytest.mark.parametrize(
    ("geometry", "complaint"),
    [
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "not closed"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
        ({"type": "Polygon", "coordinates": [square(0, 0, 1, 91)]}, "latitude"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [0, 0], [1, 1], [0, 0]]]}, "distinct"),
        ({"type": "Polygon", "coordinates": [[[0, 0], ["1", 0], [1, 1], [0, 0]]]}, "number"),
        ({"type": "MultiPolygon", "coordinates": []}, "at least one polygon"),
    ],
)
def test_malformed_areas_are_refused_with_the_reason(geometry: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        GeoArea.from_geojson(geometry)


def test_a_feature_is_read_as_its_geometry_and_written_back_as_the_same_area() -> None:
    area = GeoArea.from_geojson({"type": "Feature", "properties": {}, "geometry": REGION})
    assert area.as_geojson() == {
        "type": "Polygon",
        "coordinates": [[[float(x), float(y)] for x, y in ring] for ring in (SQUARE, HOLE)],
    }
    assert GeoArea.from_geojson(area.as_geojson()) == area
    assert area.vertices() == 10


# -------------------------------------------------------------------------------------------
# pure: placement by position
# -------------------------------------------------------------------------------------------


def fixes(points: list[tuple[int, tuple[float, float]]], batch: int) -> tuple[list[Reading], ...]:
    lat = [Reading(ts, p[1], batch, i) for i, (ts, p) in enumerate(points)]
    lon = [Reading(ts, p[0], batch, i) for i, (ts, p) in enumerate(points)]
    return lat, lon


def test_a_vehicle_is_placed_where_it_charges_in_the_window() -> None:
    area = GeoArea.from_geojson(REGION)
    start, end = 18 * HOUR, 20 * HOUR
    # In Berlin at 12:00, then it drives to Stuttgart and plugs in there at 18:30.
    lat, lon = fixes([(12 * HOUR, BERLIN), (18 * HOUR + 25 * 60_000, STUTTGART)], batch=3)
    charging = [Reading(18 * HOUR + 30 * 60_000, 1.0, 4, 0), Reading(19 * HOUR, 1.0, 4, 1)]
    assert placement_instant(charging, start, end) == 18 * HOUR + 30 * 60_000
    placed = place_by_position(7, area, lat, lon, charging, start, end, EnergyParams())
    assert placed is not None
    assert (placed.method, placed.inside, placed.fix_ms) == (
        "position",
        True,
        18 * HOUR + 1_500_000,
    )
    # The fix's bundle and the charging reading that set the instant.
    assert placed.inputs == [[3, 1], [4, 0]]
    # Not charging in the window: placed where it was at the start, in Berlin.
    idle = place_by_position(7, area, lat, lon, [], start, end, EnergyParams())
    assert idle is not None
    assert (idle.inside, idle.fix_ms, idle.at_ms) == (False, 12 * HOUR, start)


def test_a_fix_older_than_the_maximum_age_places_no_vehicle() -> None:
    area = GeoArea.from_geojson(REGION)
    lat, lon = fixes([(10 * HOUR, STUTTGART)], batch=1)
    fresh = EnergyParams(position_max_age_s=8 * 3600)
    stale = EnergyParams(position_max_age_s=8 * 3600 - 1)
    assert place_by_position(1, area, lat, lon, [], 18 * HOUR, 19 * HOUR, fresh) is not None
    assert place_by_position(1, area, lat, lon, [], 18 * HOUR, 19 * HOUR, stale) is None


def test_a_latitude_without_a_longitude_at_the_same_time_is_no_fix() -> None:
    lat = [Reading(100, 48.7, 1, 0), Reading(200, 48.8, 1, 1)]
    lon = [Reading(100, 9.1, 1, 0)]
    fix = latest_fix(lat, lon, 1000, 10_000)
    assert fix is not None
    assert (fix[0].ts, fix[0].value, fix[1].value) == (100, 48.7, 9.1)
    assert latest_fix(lat[1:], lon, 1000, 10_000) is None


# -------------------------------------------------------------------------------------------
# served: rights, fallback, settlement, audit
# -------------------------------------------------------------------------------------------


def declare(client: Any, car: int, owner: Any, vehicle_id: Any, sign: Any, region: str) -> Any:
    at = head_s()
    message = {"vehicleId": car, "region": region, "issuedAt": at}
    signature = sign(private_key(owner), vehicle_id, "GridRegion", REGION_TYPES, message)
    return client.post(
        f"/apps/energy/{car}/region-declarations",
        json={"region": region, "issued_at": at, "signature": "0x" + signature.hex()},
    )


def parked_at(point: tuple[float, float], ts: int) -> dict[str, list[tuple[int, Any]]]:
    """One position fix (latitude and longitude at the same time)."""
    return {LATITUDE: [(ts, point[1])], LONGITUDE: [(ts, point[0])]}


def geo_event(program_id: str, start: int, geometry: Any) -> dict[str, Any]:
    return {
        "programID": program_id,
        "eventName": "cold evening",
        "targets": [
            {"type": "GRID_REGION", "values": ["BW-GEO"]},
            {"type": "SERVICE_AREA", "values": [geometry]},
        ],
        "intervalPeriod": {"start": energy.iso(start), "duration": "PT2H"},
        "intervals": [
            {"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-5]}]}
        ],
    }


def test_vehicles_are_placed_by_position_only_with_location_and_the_audit_recomputes_it(
    served_world: ServedWorld,
    fleet: tuple[list[tuple[int, Any]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    buyer: Any,
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
    day = next(
        d for d in range((t0 // DAY + 2) * DAY, t0 + 12 * DAY, DAY) if (d // DAY + 3) % 7 < 5
    )
    start, end = day + 18 * HOUR, day + 20 * HOUR

    charging_only = int(
        data_market.listProduct(
            CHARGING_BIT, PRICE, 30 * 86_400, TERMS_CID, sender=curator
        ).return_value
    )
    located = int(
        data_market.listProduct(
            CHARGING_BIT | LOCATION_BIT, PRICE, 30 * 86_400, TERMS_CID, sender=curator
        ).return_value
    )
    data_market.optIn(car_a, charging_only, sender=owner)
    data_market.optIn(car_b, charging_only, sender=owner)
    data_market.optIn(car_a, located, sender=owner)
    token.mint(buyer, 2 * PRICE, sender=admin)
    token.approve(data_market, 2 * PRICE, sender=buyer)
    data_market.buy(charging_only, 1, sender=buyer)
    # Both cars park at 17:30 and charge in the evening: one in Stuttgart, one in Berlin.
    samples_a = {
        **charging_samples(evening_charging(day, 1, 7.4, seed=1)),
        **parked_at(STUTTGART, day + 17 * HOUR + 30 * 60_000),
    }
    samples_b = {
        **charging_samples(evening_charging(day, 1, 3.7, seed=2)),
        **parked_at(BERLIN, day + 17 * HOUR + 30 * 60_000),
    }
    anchor_bundles(
        windowed_bundles(key_a, car_a, samples_a, domain, window_ms=600_000)
        + windowed_bundles(key_b, car_b, samples_b, domain, window_ms=600_000)
    )
    advance((day + DAY) // 1000 - head_s() + 600)
    grid_flag = parameters.FEATURE_GRID_PROGRAMMES()
    parameters.setFlag(grid_flag, True, sender=admin)
    try:
        world.sync()
        world.at(head_s() * 1000)
        with world.client(buyer) as utility, world.client(owner) as mine:
            placement = _check_regions(
                world, utility, mine, locals(), data_market, vehicle_id, sign
            )
            # The placement of car A, recomputed from the proofs of its readings alone.
            p = EnergyParams()
            first = start - int(p.position_max_age_s * 1000)
            inputs = fetch_and_verify_inputs(
                world.base_url,
                token_of(utility),
                car_a,
                placement["inputs"],
                rpc_url,
                deployment.contract("AttestationAnchor").address,
                signal_names=[LATITUDE, LONGITUDE, IS_CHARGING],
                start_ms=first,
                end_ms=end,
                covered={name: [(first, end)] for name in (LATITUDE, LONGITUDE, IS_CHARGING)},
            )
    finally:
        parameters.setFlag(grid_flag, False, sender=admin)
    area = GeoArea.from_geojson(REGION)
    again = place_by_position(
        car_a,
        area,
        inputs.get(LATITUDE),
        inputs.get(LONGITUDE),
        inputs.get(IS_CHARGING),
        start,
        end,
        p,
    )
    assert again is not None
    assert asdict(again) == placement
    # A recomputation in the wrong area disagrees: the check can fail.
    elsewhere = GeoArea.from_geojson({"type": "Polygon", "coordinates": [square(13, 52, 14, 53)]})
    moved = place_by_position(
        car_a, elsewhere, inputs.get(LATITUDE), inputs.get(LONGITUDE), [], start, end, p
    )
    assert moved is not None
    assert not moved.inside


def _check_regions(
    world: ServedWorld,
    utility: Any,
    mine: Any,
    ctx: dict[str, Any],
    data_market: Any,
    vehicle_id: Any,
    sign: Callable[..., bytes],
) -> dict[str, Any]:
    car_a, car_b, day, start, end = ctx["car_a"], ctx["car_b"], ctx["day"], ctx["start"], ctx["end"]
    window = {"start": start, "end": end}
    r = utility.post("/apps/energy/geo-regions", json={"name": "BW-GEO", "geometry": REGION})
    assert r.status_code == 201, r.text
    region = r.json()
    assert (region["bbox"], region["vertices"]) == ([7.5, 47.5, 10.5, 49.8], 10)
    again = utility.post("/apps/energy/geo-regions", json={"name": "BW-GEO", "geometry": REGION})
    assert again.json()["id"] == region["id"]
    other = {"type": "Polygon", "coordinates": [SQUARE]}
    changed = utility.post("/apps/energy/geo-regions", json={"name": "BW-GEO", "geometry": other})
    assert "new name" in assert_problem(changed, 400, "invalid-openadr-object")["detail"]
    ident = region["id"]
    assert utility.get(f"/apps/energy/geo-regions/{ident}").json() == region
    unknown = utility.get(f"/apps/energy/geo-regions/{ident + 1000}")
    assert_problem(unknown, 404, "openadr-object-not-found")

    # The utility holds CHARGING but no LOCATION: told so, and shown no position.
    flex = utility.get(f"/apps/energy/geo-regions/{ident}/flexibility", params=window)
    body = assert_problem(flex, 403, "privilege-missing")
    assert body["missing_scopes"] == ["LOCATION"]
    one = utility.get(f"/apps/energy/{car_a}/geo-regions/{ident}/placement", params=window)
    assert assert_problem(one, 403, "privilege-missing")["missing_scopes"] == ["LOCATION"]
    program = utility.post("/apps/energy/programs", json={"programName": "evening-peak"})
    assert program.status_code == 201, program.text
    event = geo_event(program.json()["id"], start, REGION)
    point = {"type": "Point", "coordinates": [9.0, 48.0]}
    bad = utility.post("/apps/energy/events", json=geo_event(program.json()["id"], start, point))
    assert "SERVICE_AREA" in assert_problem(bad, 400, "invalid-openadr-object")["detail"]
    refused = utility.post("/apps/energy/events", json=event)
    assert assert_problem(refused, 403, "privilege-missing")["missing_scopes"] == ["LOCATION"]
    for answer in (flex, one, refused):
        assert "48.78" not in answer.text
        assert "9.18" not in answer.text

    # The owner reads both positions: A in the region, B (in Berlin) not.
    a = mine.get(f"/apps/energy/{car_a}/geo-regions/{ident}/placement", params=window).json()
    b = mine.get(f"/apps/energy/{car_b}/geo-regions/{ident}/placement", params=window).json()
    assert (a["result"]["placement"]["inside"], b["result"]["placement"]["inside"]) == (True, False)
    assert a["result"]["placement"]["at_ms"] > start  # where it charges in the window
    stale = mine.get(
        f"/apps/energy/{car_a}/geo-regions/{ident}/placement",
        params={**window, "params": '{"position_max_age_s": 60}'},
    ).json()
    assert stale["result"] == {"placement": None, "reason": "no-position"}

    # The utility buys LOCATION over car A only; car B's owner declares the region's name.
    data_market.buy(ctx["located"], 1, sender=ctx["buyer"])
    assert declare(mine, car_b, ctx["owner"], vehicle_id, sign, "BW-GEO").status_code == 200
    world.sync()
    flex = utility.get(f"/apps/energy/geo-regions/{ident}/flexibility", params=window)
    assert flex.status_code == 200, flex.text
    placed = {v["vehicle_id"]: v for v in flex.json()["placement"]["vehicles"]}
    assert placed[car_a]["method"] == "position"
    assert placed[car_a]["inside"]
    assert placed[car_b] == {
        "vehicle_id": car_b,
        "method": "declared",
        "inside": True,
        "at_ms": None,
        "fix_ms": None,
        "inputs": [],
    }
    assert flex.json()["summary"]["vehicles"] == 2
    assert "48.78" not in flex.text
    assert "52.52" not in flex.text
    # Before the opt-in, LOCATION covers no position of A: withheld, with the reason.
    early = {"start": day - 10 * DAY, "end": day - 9 * DAY}
    before = utility.get(f"/apps/energy/geo-regions/{ident}/flexibility", params=early).json()
    assert {"vehicle_id": car_a, "reason": "location-not-covered"} in before["withheld"]

    # An event over the area (inline, as OpenADR's SERVICE_AREA) is settled with the placements.
    r = utility.post("/apps/energy/events", json=event)
    assert r.status_code == 201, r.text
    assert r.json()["x-dimo"]["geo_region_id"] == ident
    settled = utility.post(f"/apps/energy/events/{r.json()['id']}/settle")
    assert settled.status_code == 201, settled.text
    settlement = settled.json()["settlement"]
    placement = {v["vehicle_id"]: v for v in settlement["placement"]["vehicles"]}
    assert placement[car_a] == placed[car_a]
    assert placement[car_b]["method"] == "declared"
    assert {v["vehicle_id"] for v in settlement["vehicles"]} == {car_a, car_b}
    assert settlement["placement"]["geometry"] == GeoArea.from_geojson(REGION).as_geojson()
    served: dict[str, Any] = placement[car_a]
    return served
