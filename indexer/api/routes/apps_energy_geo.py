"""`/apps/energy/...` geometric grid regions: publishing GeoJSON areas, placing vehicles in
them by their verified positions (LOCATION), and the flexibility of the vehicles placed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from apps.energy.geo import (
    PLACEMENT_VERSION,
    POSITION_SIGNALS,
    GeoArea,
    placement_record,
)
from apps.energy.params import SESSION_SIGNALS, VERSION
from apps.energy.region import REGION_PATTERN
from apps.energy.sessions import Session, flexibility_summary
from indexer.api.apps_energy_common import (
    FEATURE_GRID,
    RESPONSES,
    ObjectId,
    Params,
    check_energy_window,
    energy_params,
    geo_region,
    json_response,
    parse_area,
    place_one,
    place_vehicles,
    publish_area,
    require_feature,
    require_grid_licence,
    vehicle_sessions,
)
from indexer.api.deps import (
    Access,
    Caller,
    Clock,
    DbConn,
    VehicleId,
    WindowEnd,
    WindowStart,
    get_rights_cache,
)
from indexer.api.problems import problem_responses
from indexer.exceptions import PrivilegeMissing
from indexer.queries import IS_CHARGING
from indexer.rights import clip, intersect

router = APIRouter(prefix="/apps/energy", tags=["apps: energy"])


# -------------------------------------------------------------------------------------------
# geometric regions (placement by position: LOCATION)
# -------------------------------------------------------------------------------------------


class GeoRegionIn(BaseModel):
    """A geometric grid region to publish."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=REGION_PATTERN.pattern,
        description="Region name (owners' declarations of this name are the fallback)",
    )
    geometry: dict[str, Any] = Field(
        description="GeoJSON Polygon or MultiPolygon (or a Feature of one), WGS 84 lon/lat; "
        "split at the antimeridian"
    )


class GeoRegionOut(BaseModel):
    """A published geometric region."""

    id: int = Field(description="Region id")
    name: str = Field(description="Region name")
    owner: str = Field(description="The utility that published it")
    created_ms: int = Field(description="Publication time, unix ms")
    geometry: dict[str, Any] = Field(description="The area as GeoJSON")
    bbox: list[float] = Field(description="[west, south, east, north]")
    vertices: int = Field(description="Positions over all rings")


def _geo_out(row: Any) -> GeoRegionOut:
    area = GeoArea.from_geojson(json.loads(row.geometry))
    return GeoRegionOut(
        id=int(row.id),
        name=str(row.name),
        owner=str(row.owner),
        created_ms=int(row.created_ms),
        geometry=area.as_geojson(),
        bbox=area.bbox(),
        vertices=area.vertices(),
    )


@router.post(
    "/geo-regions",
    status_code=201,
    response_model=GeoRegionOut,
    summary="Publish a geometric grid region (GeoJSON; utility with a grid licence)",
    responses=problem_responses(400, 401, 403),
)
def post_geo_region(body: GeoRegionIn, caller: Caller, conn: DbConn, clock: Clock) -> GeoRegionOut:
    """Stores the area under the name; needs the grid feature and a grid licence. Regions are
    immutable: the same name and area again answer the stored region, another area is refused.
    Publishing reads no position; placing vehicles in it needs LOCATION."""
    now = int(clock() * 1000)
    require_feature(conn, FEATURE_GRID)
    require_grid_licence(conn, caller, now // 1000)
    ident = publish_area(conn, caller, body.name, parse_area(body.geometry, "geometry"), now)
    conn.commit()
    return _geo_out(geo_region(conn, ident)[0])


@router.get(
    "/geo-regions/{ident}",
    response_model=GeoRegionOut,
    summary="A published geometric grid region",
    responses=RESPONSES,
)
def get_geo_region(ident: ObjectId, caller: Caller, conn: DbConn) -> GeoRegionOut:
    """The area as published (public: it holds no vehicle's data)."""
    del caller
    return _geo_out(geo_region(conn, ident)[0])


@router.get(
    "/{vehicle_id}/geo-regions/{ident}/placement",
    summary="Whether a vehicle is in a geometric region, from its verified position (LOCATION)",
    responses=RESPONSES,
)
def get_placement(
    vehicle_id: VehicleId,
    ident: ObjectId,
    coverage: Access,
    conn: DbConn,
    start: WindowStart,
    end: WindowEnd,
    params: Params = None,
) -> Response:
    """The vehicle's placement for `[start, end)`: its latest position fix at or before its
    first charging reading in the window that your CHARGING rights cover (else the window
    start), no older than
    `position_max_age_s`; inside or not, with the readings behind it and no coordinate.
    403 `privilege-missing` (LOCATION) when your rights cover no position over that time."""
    check_energy_window(start, end)
    p = energy_params(params)
    row, area = geo_region(conn, ident)
    placed, reason, spans = place_one(conn, vehicle_id, coverage, area, start, end, p)
    if not spans:
        raise PrivilegeMissing(vehicle_id, {"LOCATION": list(POSITION_SIGNALS)})
    return json_response(
        {
            "app": "energy",
            "vehicle_id": vehicle_id,
            "start": start,
            "end": end,
            "context": {
                "version": PLACEMENT_VERSION,
                "params": p.as_dict(),
                "region_id": int(row.id),
                "region": str(row.name),
            },
            "covered": {name: [list(x) for x in spans] for name in POSITION_SIGNALS},
            "result": {
                "placement": None if placed is None else asdict(placed),
                "reason": None if placed is not None else reason,
            },
        }
    )


@router.get(
    "/geo-regions/{ident}/flexibility",
    summary="Flexibility of the vehicles placed in a geometric region (LOCATION and CHARGING)",
    responses=RESPONSES,
)
def get_geo_flexibility(
    ident: ObjectId,
    request: Request,
    caller: Caller,
    conn: DbConn,
    clock: Clock,
    start: WindowStart,
    end: WindowEnd,
    params: Params = None,
) -> Response:
    """Totals over the vehicles placed in the region for the window (by position where your
    LOCATION rights allow, else by their owners' declarations of its name) whose CHARGING data
    your rights cover; `placement` lists how each was placed and the readings behind it."""
    check_energy_window(start, end)
    p = energy_params(params)
    row, area = geo_region(conn, ident)
    cache = get_rights_cache(request)
    now = int(clock() * 1000)
    placements, withheld = place_vehicles(
        conn, cache, caller, now, str(row.name), area, start, end, p
    )
    per_vehicle: dict[int, list[Session]] = {}
    not_covered = []
    for placed in placements:
        if not placed.inside:
            continue
        coverage = cache.coverage(conn, placed.vehicle_id, caller, now)
        spans = clip(coverage.for_signal(IS_CHARGING), start, end)
        if not spans:
            not_covered.append({"vehicle_id": placed.vehicle_id, "reason": "not-covered"})
            continue
        within = {
            name: intersect(spans, coverage.for_signal(name))
            for name in SESSION_SIGNALS
            if intersect(spans, coverage.for_signal(name))
        }
        per_vehicle[placed.vehicle_id], _ = vehicle_sessions(
            conn, placed.vehicle_id, start, end, within, p
        )
    return json_response(
        {
            "region": str(row.name),
            "region_id": int(row.id),
            "start": start,
            "end": end,
            "context": {"version": VERSION, "params": p.as_dict()},
            "placement": placement_record(int(row.id), str(row.name), area, placements, withheld),
            "withheld": withheld + not_covered,
            "withheld_vehicles": len(withheld) + len(not_covered),
            "summary": flexibility_summary(per_vehicle),
            "vehicles": {str(v): flexibility_summary({v: ss}) for v, ss in per_vehicle.items()},
        }
    )
