"""What the `/apps/energy` route modules share: query parameters, answers, the governance
flags and grid licence, reading sessions, grid regions and placing vehicles by position.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import Path, Query, Response
from sqlalchemy import Connection, insert, select, union

from apps.energy.geo import (
    LATITUDE,
    LONGITUDE,
    POSITION_SIGNALS,
    GeoArea,
    Placement,
    declared_placement,
    place_by_position,
    placement_instant,
)
from apps.energy.openadr import dumps
from apps.energy.params import PLUGGED, SESSION_SIGNALS, EnergyParams
from apps.energy.sessions import Session, sessions
from indexer import schema as s
from indexer.api.params import check_window, parse_json_params
from indexer.api.problems import problem_responses
from indexer.apps.energy import geo_regions, grid_regions
from indexer.exceptions import (
    BadTelemetryQuery,
    FeatureDisabled,
    GridLicenceMissing,
    GridResourceNotFound,
    LocationPrivilegeMissing,
    OpenAdrInvalid,
)
from indexer.queries import CHARGE_POWER, IS_CHARGING, SOC, raw_readings
from indexer.rights import Coverage, Intervals, RightsCache, clip
from protocol.crypto import keccak256
from protocol.privileges import Privilege

RESPONSES: Final = problem_responses(400, 401, 403, 404)
FEATURE_GRID: Final = "FEATURE_GRID_PROGRAMMES"
FEATURE_COMMANDS: Final = "FEATURE_COMMANDS_SCOPE"
#: Longest window of a flexibility view, ms (92 days).
MAX_WINDOW_MS: Final = 92 * 86_400_000

Params = Annotated[
    str | None,
    Query(
        max_length=4000,
        description="Parameters as a JSON object (names of GET /apps/energy/method's "
        "`defaults`); omitted ones keep their defaults",
        examples=['{"timezone": "Europe/Berlin", "price_dimo_per_kwh": 0.5}'],
    ),
]
ObjectId = Annotated[int, Path(ge=1, le=(1 << 31) - 1, description="OpenADR object id")]


def energy_params(text: str | None) -> EnergyParams:
    return EnergyParams.from_dict(parse_json_params(text))


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False),
        status_code=status,
        media_type="application/json",
    )


def check_energy_window(start: int, end: int) -> None:
    check_window(start, end)
    if end - start > MAX_WINDOW_MS:
        raise BadTelemetryQuery("start/end", f"a window spans at most {MAX_WINDOW_MS} ms")


# -------------------------------------------------------------------------------------------
# governance flags and the utility's licence
# -------------------------------------------------------------------------------------------


def feature_enabled(conn: Connection, name: str) -> bool:
    """Whether the `Parameters` flag `name` is on (as indexed)."""
    key = "0x" + keccak256(name.encode()).hex()
    row = conn.execute(
        select(s.parameters.c.value).where(s.parameters.c.key == key, s.parameters.c.kind == "flag")
    ).first()
    return row is not None and int(row.value) != 0


def require_feature(conn: Connection, name: str) -> None:
    """Raises `FeatureDisabled` (403) when the flag is off."""
    if not feature_enabled(conn, name):
        raise FeatureDisabled(name)


def require_grid_licence(conn: Connection, caller: str, now_s: int) -> None:
    """The caller must hold a live licence of a product with the CHARGING scope.

    Raises:
        GridLicenceMissing: it holds none (403).
    """
    rows = conn.execute(
        select(s.products.c.scopes)
        .join(s.licences, s.licences.c.product_id == s.products.c.id)
        .where(s.licences.c.buyer == caller.lower(), s.licences.c.expiry > now_s)
    )
    if not any(int(r.scopes) & Privilege.CHARGING.value for r in rows):
        raise GridLicenceMissing(caller)


def series(
    conn: Connection, vehicle_id: int, name: str, start: int, end: int, spans: Intervals
) -> list[Any]:
    out: list[Any] = []
    after: tuple[int, int, int] | None = None
    while True:
        page = raw_readings(conn, vehicle_id, name, start, end, within=spans, after=after)
        out += page
        if len(page) < 100_000:
            return out
        after = (page[-1].ts, page[-1].batch_id, page[-1].leaf_index)


def vehicle_sessions(
    conn: Connection,
    vehicle_id: int,
    start: int,
    end: int,
    within: dict[str, Intervals],
    params: EnergyParams,
) -> tuple[list[Session], list[tuple[int, int]]]:
    """A vehicle's sessions from the signals in `within`, and the inputs read."""
    got = {
        name: series(conn, vehicle_id, name, start, end, within[name]) if name in within else []
        for name in SESSION_SIGNALS
    }
    found = sessions(got[IS_CHARGING], got[CHARGE_POWER], got[SOC], got[PLUGGED], params)
    refs = sorted({(r.batch_id, r.leaf_index) for rs in got.values() for r in rs})
    return found, refs


def region_vehicles(conn: Connection, region: str) -> list[int]:
    """Vehicles whose current owner declared `region`."""
    rows = conn.execute(
        select(grid_regions.c.vehicle_id)
        .join(s.vehicles, s.vehicles.c.id == grid_regions.c.vehicle_id)
        .where(grid_regions.c.region == region, grid_regions.c.owner == s.vehicles.c.owner)
        .order_by(grid_regions.c.vehicle_id)
    )
    return [int(r.vehicle_id) for r in rows]


def parse_area(geometry: Any, member: str) -> GeoArea:
    try:
        return GeoArea.from_geojson(geometry)
    except ValueError as exc:
        raise OpenAdrInvalid(member, str(exc)) from None


def geo_region(conn: Connection, ident: int) -> tuple[Any, GeoArea]:
    row = conn.execute(select(geo_regions).where(geo_regions.c.id == ident)).first()
    if row is None:
        raise GridResourceNotFound(f"geometric region {ident}")
    return row, GeoArea.from_geojson(json.loads(row.geometry))


def publish_area(conn: Connection, caller: str, name: str, area: GeoArea, now: int) -> int:
    """The id of the caller's region `name` with `area`, published now if new.

    Raises:
        OpenAdrInvalid: the caller published another area under that name (regions are
            immutable, so that settlements keep meaning what they meant).
    """
    who = caller.lower()
    row = conn.execute(
        select(geo_regions).where(geo_regions.c.owner == who, geo_regions.c.name == name)
    ).first()
    geometry = dumps(area.as_geojson())
    if row is not None:
        if str(row.geometry) != geometry:
            raise OpenAdrInvalid(
                "geometry",
                f"you published another area named {name!r} (region {row.id}); a region never "
                "changes: publish the new area under a new name",
            )
        return int(row.id)
    new_id = conn.execute(
        insert(geo_regions).values(owner=who, name=name, geometry=geometry, created_ms=now)
    ).inserted_primary_key
    assert new_id is not None
    return int(new_id[0])


def location_candidates(conn: Connection, caller: str, now_s: int) -> list[int]:
    """Vehicles the caller may hold LOCATION on now: owned, granted with the scope, or opted in
    to a product with the scope that it holds a live licence of. The exact times come from
    each vehicle's coverage."""
    who = caller.lower()
    bit = int(Privilege.LOCATION)
    v, g, o, lic, pr = s.vehicles, s.grants, s.opt_ins, s.licences, s.products
    owned = select(v.c.id.label("vehicle_id")).where(v.c.owner == who)
    granted = (
        select(g.c.vehicle_id)
        .join(v, v.c.id == g.c.vehicle_id)
        .where(
            g.c.grantee == who,
            g.c.expiry > now_s,
            g.c.epoch == v.c.epoch,
            g.c.scopes.op("&")(bit) != 0,
        )
    )
    licensed = (
        select(o.c.vehicle_id)
        .join(lic, lic.c.product_id == o.c.product_id)
        .join(pr, pr.c.id == o.c.product_id)
        .where(lic.c.buyer == who, lic.c.expiry > now_s, pr.c.scopes.op("&")(bit) != 0)
    )
    return sorted({int(r[0]) for r in conn.execute(union(owned, granted, licensed))})


def require_location(conn: Connection, caller: str, now_s: int, region: str) -> list[int]:
    found = location_candidates(conn, caller, now_s)
    if not found:
        raise LocationPrivilegeMissing(region, POSITION_SIGNALS)
    return found


def place_one(
    conn: Connection,
    vehicle_id: int,
    coverage: Coverage,
    area: GeoArea,
    start: int,
    end: int,
    p: EnergyParams,
) -> tuple[Placement | None, str, Intervals]:
    """A vehicle's placement by position, or None and why; and the LOCATION times read."""
    charging_spans = clip(coverage.for_signal(IS_CHARGING), start, end)
    charging = (
        series(conn, vehicle_id, IS_CHARGING, start, end, charging_spans) if charging_spans else []
    )
    at = placement_instant(charging, start, end)
    first = max(0, at - int(p.position_max_age_s * 1000))
    spans = clip(coverage.of(Privilege.LOCATION), first, at + 1)
    if not spans:
        return None, "location-not-covered", ()
    lat = series(conn, vehicle_id, LATITUDE, first, at + 1, spans)
    lon = series(conn, vehicle_id, LONGITUDE, first, at + 1, spans)
    placed = place_by_position(vehicle_id, area, lat, lon, charging, start, end, p)
    return placed, "no-position", spans


def place_vehicles(
    conn: Connection,
    cache: RightsCache,
    caller: str,
    now: int,
    name: str,
    area: GeoArea,
    start: int,
    end: int,
    p: EnergyParams,
) -> tuple[list[Placement], list[dict[str, Any]]]:
    """Every vehicle the caller may place in the region for `[start, end)`, and those left out.

    Candidates are the vehicles it may hold LOCATION on and those whose owner declared the
    region's name. Each is placed by its position when the caller's LOCATION rights cover a
    recent enough fix; otherwise by its declaration, or withheld with the reason.

    Raises:
        LocationPrivilegeMissing: the caller holds LOCATION on no vehicle (403).
    """
    located = require_location(conn, caller, now // 1000, name)
    declared = set(region_vehicles(conn, name))
    placements: list[Placement] = []
    withheld: list[dict[str, Any]] = []
    for vid in sorted(set(located) | declared):
        coverage = cache.coverage(conn, vid, caller, now)
        placed, reason, _ = place_one(conn, vid, coverage, area, start, end, p)
        if placed is None and vid in declared:
            placed = declared_placement(vid)
        if placed is None:
            withheld.append({"vehicle_id": vid, "reason": reason})
        else:
            placements.append(placed)
    return placements, withheld


def oadr_object(conn: Connection, table: Any, ident: int) -> Any:
    row = conn.execute(select(table).where(table.c.id == ident)).first()
    if row is None:
        raise GridResourceNotFound(f"{table.name.removeprefix('app_oadr_')[:-1]} {ident}")
    return row
