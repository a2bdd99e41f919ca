"""`/apps/energy/...`: charging flexibility, owners' grid regions, demand response (OpenADR 3).

- Sessions and flexibility of a vehicle need CHARGING (state of charge: BATTERY).
- A vehicle's grid region is declared by its owner with an EIP-712 signature
  (`GridRegion(uint256 vehicleId,string region,uint64 issuedAt)`, DIMO domain of `VehicleId`)
  posted to `/{id}/region-declarations`; anyone may relay it. No position is read.
- A utility publishes OpenADR 3 programs and events (region, window, requested reduction) and
  settles them. It needs `FEATURE_GRID_PROGRAMMES` on in `Parameters` (governance) and a live
  licence of a product with the CHARGING scope; a settlement counts only the vehicles of the
  region whose CHARGING data its rights cover over the event and the baseline days.
- A settlement is paid in DIMO through the data market (`DataMarket.paySettlement`, e.g. with
  `dimo apps energy --report N --pay`); a report shows its settlement id and, once the payment
  is indexed, its transaction and whether the vehicles were credited the report's amounts.
- A utility may also publish a region as a GeoJSON Polygon/MultiPolygon (`POST /geo-regions`)
  and target an event at it (its name as the `GRID_REGION`, or the geometry inline as a
  `SERVICE_AREA` target). Vehicles are then placed by their verified positions, which needs
  LOCATION: a caller holding the LOCATION scope on no vehicle gets 403 `privilege-missing`
  (`missing_scopes: ["LOCATION"]`); a vehicle whose position the caller may not read falls back
  to its owner's declaration of the region's name, or is withheld with the reason. Answers name
  each vehicle's placement method and the readings behind it, never a coordinate.
- Charging control needs `FEATURE_COMMANDS_SCOPE`; while governance keeps it off, the API
  says so (403 `feature-disabled`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, insert, select, union, update

from indexer import schema as s
from indexer.api.access import rights_for
from indexer.api.deps import (
    Access,
    Caller,
    Clock,
    DbConn,
    Settings,
    VehicleId,
    WindowEnd,
    WindowStart,
    deployment_of,
    get_rights_cache,
)
from indexer.api.params import check_window, parse_json_params
from indexer.api.problems import problem_response, problem_responses
from indexer.apps import energy, settlement_pay
from indexer.apps.energy import (
    LATITUDE,
    LONGITUDE,
    PLUGGED,
    REGION_PATTERN,
    EnergyParams,
    GeoArea,
    Placement,
    geo_regions,
    grid_regions,
    oadr_events,
    oadr_programs,
    oadr_reports,
)
from indexer.exceptions import (
    BadTelemetryQuery,
    FeatureDisabled,
    GridLicenceMissing,
    GridResourceNotFound,
    LocationPrivilegeMissing,
    OpenAdrInvalid,
    PrivilegeMissing,
    RegionDeclarationInvalid,
    VehicleNotFound,
)
from indexer.queries import CHARGE_POWER, IS_CHARGING, SOC, raw_readings
from indexer.rights import Coverage, Intervals, RightsCache, clip, contains, intersect, length
from protocol.crypto import SignatureError, keccak256
from protocol.eip712 import dimo_domain
from protocol.privileges import Privilege
from protocol.problems import PROBLEM_BASE

router = APIRouter(prefix="/apps/energy", tags=["apps: energy"])

_RESPONSES: Final = problem_responses(400, 401, 403, 404)
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


def _params(text: str | None) -> EnergyParams:
    return EnergyParams.from_dict(parse_json_params(text))


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False),
        status_code=status,
        media_type="application/json",
    )


def _window(start: int, end: int) -> None:
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


class MethodOut(BaseModel):
    """The published method: version, rules and default parameters."""

    version: str = Field(description="Method version; results carry it")
    method: str = Field(description="Sessions, flexibility, baseline and settlement rules")
    defaults: dict[str, Any] = Field(description="Default parameters")
    features: dict[str, bool] = Field(description="Governance flags as indexed now")


@router.get("/method", response_model=MethodOut, summary="Rules, parameters and feature flags")
def get_method(conn: DbConn) -> MethodOut:
    """How sessions, flexibility, baselines and settlements are computed, and the flags."""
    return MethodOut(
        version=energy.VERSION,
        method=energy.__doc__ or "",
        defaults=EnergyParams().as_dict(),
        features={
            FEATURE_GRID: feature_enabled(conn, FEATURE_GRID),
            FEATURE_COMMANDS: feature_enabled(conn, FEATURE_COMMANDS),
        },
    )


# -------------------------------------------------------------------------------------------
# sessions and flexibility
# -------------------------------------------------------------------------------------------


def _series(
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
) -> tuple[list[energy.Session], list[tuple[int, int]]]:
    """A vehicle's sessions from the signals in `within`, and the inputs read."""
    got = {
        name: _series(conn, vehicle_id, name, start, end, within[name]) if name in within else []
        for name in energy.SESSION_SIGNALS
    }
    found = energy.sessions(got[IS_CHARGING], got[CHARGE_POWER], got[SOC], got[PLUGGED], params)
    refs = sorted({(r.batch_id, r.leaf_index) for rs in got.values() for r in rs})
    return found, refs


@router.get(
    "/{vehicle_id}/sessions",
    summary="Charging sessions with plug-in/out, energy, SoC and flexibility",
    responses=_RESPONSES,
)
def get_sessions(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: WindowStart,
    end: WindowEnd,
    params: Params = None,
) -> Response:
    """Sessions in `[start, end)` your CHARGING rights cover; SoC needs BATTERY."""
    _window(start, end)
    p = _params(params)
    within, withheld = rights_for(coverage, [IS_CHARGING], [CHARGE_POWER, PLUGGED, SOC], start, end)
    found, refs = vehicle_sessions(conn, vehicle_id, start, end, within, p)
    return _json(
        {
            "app": "energy",
            "vehicle_id": vehicle_id,
            "start": start,
            "end": end,
            "context": {"version": energy.VERSION, "params": p.as_dict()},
            "covered": {k: [list(v) for v in spans] for k, spans in within.items()},
            "withheld": [w.model_dump() for w in withheld],
            "inputs": [list(r) for r in refs],
            "result": {
                "sessions": [vars(x) for x in found],
                "summary": energy.flexibility_summary({vehicle_id: found}),
            },
        }
    )


def _region_vehicles(conn: Connection, region: str) -> list[int]:
    """Vehicles whose current owner declared `region`."""
    rows = conn.execute(
        select(grid_regions.c.vehicle_id)
        .join(s.vehicles, s.vehicles.c.id == grid_regions.c.vehicle_id)
        .where(grid_regions.c.region == region, grid_regions.c.owner == s.vehicles.c.owner)
        .order_by(grid_regions.c.vehicle_id)
    )
    return [int(r.vehicle_id) for r in rows]


def _check_region(region: str) -> None:
    if not REGION_PATTERN.match(region):
        raise BadTelemetryQuery("region", f"{region!r} does not match {REGION_PATTERN.pattern}")


@router.get(
    "/regions/{region}/flexibility",
    summary="Flexibility of the vehicles declared in a grid region that you may read",
    responses=_RESPONSES,
)
def get_region_flexibility(
    region: str,
    request: Request,
    caller: Caller,
    conn: DbConn,
    clock: Clock,
    start: WindowStart,
    end: WindowEnd,
    params: Params = None,
) -> Response:
    """Totals over the region's vehicles whose CHARGING data your rights cover in the window
    (the others are only counted). Regions are the owners' declarations: no position is used.
    """
    _check_region(region)
    _window(start, end)
    p = _params(params)
    cache = get_rights_cache(request)
    now = int(clock() * 1000)
    per_vehicle: dict[int, list[energy.Session]] = {}
    withheld = 0
    for vid in _region_vehicles(conn, region):
        coverage = cache.coverage(conn, vid, caller, now)
        spans = clip(coverage.for_signal(IS_CHARGING), start, end)
        if not spans:
            withheld += 1
            continue
        within = {
            name: intersect(spans, coverage.for_signal(name))
            for name in energy.SESSION_SIGNALS
            if intersect(spans, coverage.for_signal(name))
        }
        per_vehicle[vid], _ = vehicle_sessions(conn, vid, start, end, within, p)
    return _json(
        {
            "region": region,
            "start": start,
            "end": end,
            "context": {"version": energy.VERSION, "params": p.as_dict()},
            "withheld_vehicles": withheld,
            "summary": energy.flexibility_summary(per_vehicle),
            "vehicles": {
                str(v): energy.flexibility_summary({v: ss}) for v, ss in per_vehicle.items()
            },
        }
    )


# -------------------------------------------------------------------------------------------
# grid region declarations
# -------------------------------------------------------------------------------------------


class RegionIn(BaseModel):
    """An owner's signed declaration of a vehicle's grid region."""

    region: str = Field(min_length=1, max_length=64, description="Region code, e.g. DE-BW")
    issued_at: int = Field(ge=0, le=(1 << 63) - 1, description="Signing time, unix seconds")
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$", description="EIP-712 signature of GridRegion, 65 bytes"
    )


class RegionOut(BaseModel):
    """A vehicle's declared grid region, with what checks it."""

    vehicle_id: int = Field(description="The vehicle")
    region: str = Field(description="The declared region")
    owner: str = Field(description="The owner who signed it")
    issued_at: int = Field(description="Signing time, unix seconds")
    signature: str = Field(description="The EIP-712 signature, 0x hex")
    typed_data: dict[str, Any] = Field(description="What was signed (eth_signTypedData_v4)")


def _owner_of(conn: Connection, vehicle_id: int) -> str:
    row = conn.execute(select(s.vehicles.c.owner).where(s.vehicles.c.id == vehicle_id)).first()
    if row is None:
        raise VehicleNotFound(vehicle_id)
    return str(row.owner).lower()


@router.post(
    "/{vehicle_id}/region-declarations",
    response_model=RegionOut,
    summary="Declare a vehicle's grid region (signed by its owner; anyone may relay)",
    responses=problem_responses(400, 401, 404),
)
def post_region(
    vehicle_id: VehicleId,
    body: RegionIn,
    request: Request,
    settings: Settings,
    caller: Caller,
    conn: DbConn,
    clock: Clock,
) -> RegionOut:
    """Stores the declaration if the vehicle's current owner signed it and it is newer than
    the stored one (and not from the future)."""
    del caller  # any signed-in caller may relay the owner's signature
    if not REGION_PATTERN.match(body.region):
        raise RegionDeclarationInvalid(vehicle_id, f"region {body.region!r} is malformed")
    if body.issued_at > clock() + 300:
        raise RegionDeclarationInvalid(vehicle_id, "issued_at is in the future")
    owner = _owner_of(conn, vehicle_id)
    domain = _region_domain(request, settings)
    try:
        signer = energy.region_signer(
            domain, vehicle_id, body.region, body.issued_at, bytes.fromhex(body.signature[2:])
        )
    except (SignatureError, ValueError) as exc:
        raise RegionDeclarationInvalid(vehicle_id, f"bad signature: {exc}") from None
    if signer.lower() != owner:
        raise RegionDeclarationInvalid(vehicle_id, f"signed by {signer}, but the owner is {owner}")
    row = conn.execute(select(grid_regions).where(grid_regions.c.vehicle_id == vehicle_id)).first()
    values = {
        "region": body.region,
        "owner": owner,
        "issued_at": body.issued_at,
        "signature": bytes.fromhex(body.signature[2:]),
    }
    if row is None:
        conn.execute(insert(grid_regions).values(vehicle_id=vehicle_id, **values))
    elif str(row.owner) == owner and int(row.issued_at) >= body.issued_at:
        raise RegionDeclarationInvalid(vehicle_id, "a declaration at least as new is stored")
    else:
        conn.execute(
            update(grid_regions).where(grid_regions.c.vehicle_id == vehicle_id).values(**values)
        )
    conn.commit()
    return _region_out(request, settings, vehicle_id, values)


def _region_domain(request: Request, settings: Settings) -> Any:
    deployment = deployment_of(request, settings)
    return dimo_domain(deployment.chain_id, deployment.contract("VehicleId").address)


def _region_out(
    request: Request, settings: Settings, vehicle_id: int, row: dict[str, Any]
) -> RegionOut:
    return RegionOut(
        vehicle_id=vehicle_id,
        region=row["region"],
        owner=row["owner"],
        issued_at=row["issued_at"],
        signature="0x" + bytes(row["signature"]).hex(),
        typed_data=energy.region_typed_data(
            _region_domain(request, settings), vehicle_id, row["region"], row["issued_at"]
        ),
    )


@router.get(
    "/{vehicle_id}/region",
    response_model=RegionOut,
    summary="A vehicle's declared grid region",
    responses=_RESPONSES,
)
def get_region(
    vehicle_id: VehicleId, coverage: Access, request: Request, settings: Settings, conn: DbConn
) -> RegionOut:
    """The current owner's declaration; for callers with any right on the vehicle."""
    if not coverage.any():
        raise PrivilegeMissing(vehicle_id, {"CHARGING": [IS_CHARGING]})
    row = conn.execute(select(grid_regions).where(grid_regions.c.vehicle_id == vehicle_id)).first()
    if row is None or str(row.owner) != _owner_of(conn, vehicle_id):
        raise GridResourceNotFound(f"region of vehicle {vehicle_id}")
    return _region_out(request, settings, vehicle_id, dict(row._mapping))


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


def _area(geometry: Any, member: str) -> GeoArea:
    try:
        return GeoArea.from_geojson(geometry)
    except ValueError as exc:
        raise OpenAdrInvalid(member, str(exc)) from None


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


def _geo_region(conn: Connection, ident: int) -> tuple[Any, GeoArea]:
    row = conn.execute(select(geo_regions).where(geo_regions.c.id == ident)).first()
    if row is None:
        raise GridResourceNotFound(f"geometric region {ident}")
    return row, GeoArea.from_geojson(json.loads(row.geometry))


def _publish_area(conn: Connection, caller: str, name: str, area: GeoArea, now: int) -> int:
    """The id of the caller's region `name` with `area`, published now if new.

    Raises:
        OpenAdrInvalid: the caller published another area under that name (regions are
            immutable, so that settlements keep meaning what they meant).
    """
    who = caller.lower()
    row = conn.execute(
        select(geo_regions).where(geo_regions.c.owner == who, geo_regions.c.name == name)
    ).first()
    geometry = energy.dumps(area.as_geojson())
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


def _require_location(conn: Connection, caller: str, now_s: int, region: str) -> list[int]:
    found = location_candidates(conn, caller, now_s)
    if not found:
        raise LocationPrivilegeMissing(region, energy.POSITION_SIGNALS)
    return found


def _place_one(
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
        _series(conn, vehicle_id, IS_CHARGING, start, end, charging_spans) if charging_spans else []
    )
    at = energy.placement_instant(charging, start, end)
    first = max(0, at - int(p.position_max_age_s * 1000))
    spans = clip(coverage.of(Privilege.LOCATION), first, at + 1)
    if not spans:
        return None, "location-not-covered", ()
    lat = _series(conn, vehicle_id, LATITUDE, first, at + 1, spans)
    lon = _series(conn, vehicle_id, LONGITUDE, first, at + 1, spans)
    placed = energy.place_by_position(vehicle_id, area, lat, lon, charging, start, end, p)
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
    located = _require_location(conn, caller, now // 1000, name)
    declared = set(_region_vehicles(conn, name))
    placements: list[Placement] = []
    withheld: list[dict[str, Any]] = []
    for vid in sorted(set(located) | declared):
        coverage = cache.coverage(conn, vid, caller, now)
        placed, reason, _ = _place_one(conn, vid, coverage, area, start, end, p)
        if placed is None and vid in declared:
            placed = energy.declared_placement(vid)
        if placed is None:
            withheld.append({"vehicle_id": vid, "reason": reason})
        else:
            placements.append(placed)
    return placements, withheld


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
    ident = _publish_area(conn, caller, body.name, _area(body.geometry, "geometry"), now)
    conn.commit()
    return _geo_out(_geo_region(conn, ident)[0])


@router.get(
    "/geo-regions/{ident}",
    response_model=GeoRegionOut,
    summary="A published geometric grid region",
    responses=_RESPONSES,
)
def get_geo_region(ident: ObjectId, caller: Caller, conn: DbConn) -> GeoRegionOut:
    """The area as published (public: it holds no vehicle's data)."""
    del caller
    return _geo_out(_geo_region(conn, ident)[0])


@router.get(
    "/{vehicle_id}/geo-regions/{ident}/placement",
    summary="Whether a vehicle is in a geometric region, from its verified position (LOCATION)",
    responses=_RESPONSES,
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
    _window(start, end)
    p = _params(params)
    row, area = _geo_region(conn, ident)
    placed, reason, spans = _place_one(conn, vehicle_id, coverage, area, start, end, p)
    if not spans:
        raise PrivilegeMissing(vehicle_id, {"LOCATION": list(energy.POSITION_SIGNALS)})
    return _json(
        {
            "app": "energy",
            "vehicle_id": vehicle_id,
            "start": start,
            "end": end,
            "context": {
                "version": energy.PLACEMENT_VERSION,
                "params": p.as_dict(),
                "region_id": int(row.id),
                "region": str(row.name),
            },
            "covered": {name: [list(x) for x in spans] for name in energy.POSITION_SIGNALS},
            "result": {
                "placement": None if placed is None else asdict(placed),
                "reason": None if placed is not None else reason,
            },
        }
    )


@router.get(
    "/geo-regions/{ident}/flexibility",
    summary="Flexibility of the vehicles placed in a geometric region (LOCATION and CHARGING)",
    responses=_RESPONSES,
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
    _window(start, end)
    p = _params(params)
    row, area = _geo_region(conn, ident)
    cache = get_rights_cache(request)
    now = int(clock() * 1000)
    placements, withheld = place_vehicles(
        conn, cache, caller, now, str(row.name), area, start, end, p
    )
    per_vehicle: dict[int, list[energy.Session]] = {}
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
            for name in energy.SESSION_SIGNALS
            if intersect(spans, coverage.for_signal(name))
        }
        per_vehicle[placed.vehicle_id], _ = vehicle_sessions(
            conn, placed.vehicle_id, start, end, within, p
        )
    return _json(
        {
            "region": str(row.name),
            "region_id": int(row.id),
            "start": start,
            "end": end,
            "context": {"version": energy.VERSION, "params": p.as_dict()},
            "placement": energy.placement_record(
                int(row.id), str(row.name), area, placements, withheld
            ),
            "withheld": withheld + not_covered,
            "withheld_vehicles": len(withheld) + len(not_covered),
            "summary": energy.flexibility_summary(per_vehicle),
            "vehicles": {
                str(v): energy.flexibility_summary({v: ss}) for v, ss in per_vehicle.items()
            },
        }
    )


# -------------------------------------------------------------------------------------------
# OpenADR 3: programs, events, reports
# -------------------------------------------------------------------------------------------


def _iso_ms(text: Any, member: str) -> int:
    if not isinstance(text, str):
        raise OpenAdrInvalid(member, "must be an RFC 3339 date-time")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OpenAdrInvalid(member, f"{text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise OpenAdrInvalid(member, f"{text!r} has no UTC offset")
    return int(moment.timestamp() * 1000)


def _object(conn: Connection, table: Any, ident: int) -> Any:
    row = conn.execute(select(table).where(table.c.id == ident)).first()
    if row is None:
        raise GridResourceNotFound(f"{table.name.removeprefix('app_oadr_')[:-1]} {ident}")
    return row


@router.post(
    "/programs",
    status_code=201,
    summary="Publish an OpenADR 3 program (utility with a grid licence)",
    responses=problem_responses(400, 401, 403),
)
def post_program(body: dict[str, Any], caller: Caller, conn: DbConn, clock: Clock) -> Response:
    """Stores the PROGRAM; `programName` is required. Needs the grid feature and a licence."""
    now = int(clock() * 1000)
    require_feature(conn, FEATURE_GRID)
    require_grid_licence(conn, caller, now // 1000)
    if not isinstance(body.get("programName"), str) or not body["programName"]:
        raise OpenAdrInvalid("programName", "a non-empty string is required")
    new_id = conn.execute(
        insert(oadr_programs).values(owner=caller.lower(), created_ms=now, body="{}")
    ).inserted_primary_key
    assert new_id is not None
    program = {
        **body,
        "id": str(new_id[0]),
        "objectType": "PROGRAM",
        "createdDateTime": energy.iso(now),
        "modificationDateTime": energy.iso(now),
    }
    conn.execute(
        update(oadr_programs)
        .where(oadr_programs.c.id == new_id[0])
        .values(body=energy.dumps(program))
    )
    conn.commit()
    return _json(program, 201)


@router.get("/programs/{ident}", summary="An OpenADR 3 program", responses=_RESPONSES)
def get_program(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The PROGRAM as published."""
    del caller
    return _json(json.loads(_object(conn, oadr_programs, ident).body))


def _event_fields(body: dict[str, Any]) -> tuple[int, str, int, int, float, float]:
    """(program id, region, start, end, requested kW, price) of an EVENT body."""
    try:
        program_id = int(body["programID"])
    except (KeyError, TypeError, ValueError):
        raise OpenAdrInvalid("programID", "the id of a program is required") from None
    regions = [
        v
        for t in body.get("targets") or []
        if isinstance(t, dict) and t.get("type") == "GRID_REGION"
        for v in t.get("values") or []
    ]
    if len(regions) != 1 or not isinstance(regions[0], str) or not REGION_PATTERN.match(regions[0]):
        raise OpenAdrInvalid("targets", "exactly one GRID_REGION target value is required")
    period = body.get("intervalPeriod")
    if not isinstance(period, dict):
        raise OpenAdrInvalid("intervalPeriod", "an object with start and duration is required")
    start = _iso_ms(period.get("start"), "intervalPeriod.start")
    try:
        duration = energy.parse_duration_ms(str(period.get("duration")))
    except ValueError as exc:
        raise OpenAdrInvalid("intervalPeriod.duration", str(exc)) from None
    payloads = [
        p
        for i in body.get("intervals") or []
        if isinstance(i, dict)
        for p in i.get("payloads") or []
        if isinstance(p, dict)
    ]
    shed = [p for p in payloads if p.get("type") == "DISPATCH_SETPOINT_RELATIVE"]
    try:
        requested = -float(shed[0]["values"][0])
    except (IndexError, KeyError, TypeError, ValueError):
        raise OpenAdrInvalid(
            "intervals", "a DISPATCH_SETPOINT_RELATIVE payload (kW, negative to shed) is required"
        ) from None
    if not requested > 0:
        raise OpenAdrInvalid("intervals", "the requested change must shed load (a value < 0)")
    price = 0.0
    priced = [p for p in payloads if p.get("type") == "PRICE"]
    if priced:
        try:
            price = float(priced[0]["values"][0])
        except (IndexError, KeyError, TypeError, ValueError):
            raise OpenAdrInvalid("intervals", "PRICE needs a number (DIMO per kWh)") from None
        if price < 0:
            raise OpenAdrInvalid("intervals", "PRICE must be >= 0")
    return program_id, regions[0], start, start + duration, requested, price


def _service_area(body: dict[str, Any]) -> GeoArea | None:
    """The event's `SERVICE_AREA` target (one GeoJSON Polygon/MultiPolygon), if it has one."""
    areas = [
        t.get("values")
        for t in body.get("targets") or []
        if isinstance(t, dict) and t.get("type") == "SERVICE_AREA"
    ]
    if not areas:
        return None
    if len(areas) != 1 or not isinstance(areas[0], list) or len(areas[0]) != 1:
        raise OpenAdrInvalid("targets", "a SERVICE_AREA target holds exactly one GeoJSON area")
    return _area(areas[0][0], "targets.SERVICE_AREA")


def _event_area(
    conn: Connection, caller: str, region: str, body: dict[str, Any], now: int
) -> tuple[int, GeoArea] | None:
    """The geometric region an event targets: its inline `SERVICE_AREA` (published under the
    `GRID_REGION` name), or the caller's published region of that name; None for a region of
    owners' declarations only.

    Raises:
        LocationPrivilegeMissing: it is geometric and the caller holds LOCATION on no vehicle.
    """
    area = _service_area(body)
    if area is None:
        row = conn.execute(
            select(geo_regions).where(
                geo_regions.c.owner == caller.lower(), geo_regions.c.name == region
            )
        ).first()
        if row is None:
            return None
        area = GeoArea.from_geojson(json.loads(row.geometry))
    _require_location(conn, caller, now // 1000, region)
    return _publish_area(conn, caller, region, area, now), area


@router.post(
    "/events",
    status_code=201,
    summary="Publish a demand-response event (OpenADR 3 EVENT)",
    responses=problem_responses(400, 401, 403, 404),
)
def post_event(body: dict[str, Any], caller: Caller, conn: DbConn, clock: Clock) -> Response:
    """Stores the EVENT: one `GRID_REGION` target, `intervalPeriod` (start, ISO 8601
    duration), a `DISPATCH_SETPOINT_RELATIVE` payload (kW, negative to shed) and optionally a
    `PRICE` payload (DIMO per delivered kWh). Only the program's publisher may add events.

    The region is geometric when the event has a `SERVICE_AREA` target (one GeoJSON area,
    published under the `GRID_REGION` name) or you published a geometric region of that name;
    then its vehicles are placed by position, which needs LOCATION (403 without it)."""
    now = int(clock() * 1000)
    require_feature(conn, FEATURE_GRID)
    require_grid_licence(conn, caller, now // 1000)
    program_id, region, start, end, requested, price = _event_fields(body)
    program = _object(conn, oadr_programs, program_id)
    if str(program.owner) != caller.lower():
        raise OpenAdrInvalid("programID", f"program {program_id} was published by another party")
    geo = _event_area(conn, caller, region, body, now)
    extra: dict[str, Any] = {}
    if geo is not None:
        targets = [
            t
            for t in body.get("targets") or []
            if not (isinstance(t, dict) and t.get("type") == "SERVICE_AREA")
        ]
        extra = {
            "targets": [*targets, {"type": "SERVICE_AREA", "values": [geo[1].as_geojson()]}],
        }
    new_id = conn.execute(
        insert(oadr_events).values(
            program_id=program_id,
            owner=caller.lower(),
            region=region,
            start_ms=start,
            end_ms=end,
            requested_kw=requested,
            created_ms=now,
            body="{}",
        )
    ).inserted_primary_key
    assert new_id is not None
    dimo: dict[str, Any] = {"requested_kw": requested, "price_dimo_per_kwh": price}
    if geo is not None:
        dimo["geo_region_id"] = geo[0]
    event = {
        **body,
        **extra,
        "id": str(new_id[0]),
        "objectType": "EVENT",
        "programID": str(program_id),
        "createdDateTime": energy.iso(now),
        "modificationDateTime": energy.iso(now),
        "x-dimo": dimo,
    }
    conn.execute(
        update(oadr_events).where(oadr_events.c.id == new_id[0]).values(body=energy.dumps(event))
    )
    conn.commit()
    return _json(event, 201)


@router.get("/events/{ident}", summary="A demand-response event", responses=_RESPONSES)
def get_event(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The EVENT as published."""
    del caller
    return _json(json.loads(_object(conn, oadr_events, ident).body))


def _covers(spans: Intervals, a: int, b: int) -> bool:
    return length(clip(spans, a, b)) == b - a


@router.post(
    "/events/{ident}/settle",
    status_code=201,
    summary="Settle an event: each vehicle's delivered kWh against its 10-of-10 baseline",
    responses=problem_responses(400, 401, 403, 404),
)
def post_settlement(
    ident: ObjectId,
    request: Request,
    caller: Caller,
    conn: DbConn,
    clock: Clock,
    params: Params = None,
) -> Response:
    """Measures every vehicle of the event's region whose CHARGING data your rights cover over
    the event window, against the same window on its comparable days, and stores the REPORT.

    The answer holds the OpenADR `report` and the full `settlement`: per vehicle the baseline
    windows and energies, the actual and delivered kWh, the inputs (batch, leaf) whose proofs
    `POST /apps/proofs` serves, and the payment in DIMO at the event's PRICE. For a geometric
    region, `settlement.placement` says how each vehicle was placed (by position where your
    LOCATION rights cover a fix, else by its owner's declaration) and on which readings.
    """
    now = int(clock() * 1000)
    require_feature(conn, FEATURE_GRID)
    require_grid_licence(conn, caller, now // 1000)
    event_row = _object(conn, oadr_events, ident)
    if str(event_row.owner) != caller.lower():
        raise OpenAdrInvalid("event", f"event {ident} was published by another party")
    if int(event_row.end_ms) > now:
        raise OpenAdrInvalid("event", f"event {ident} has not ended yet")
    stored = json.loads(event_row.body)
    overrides = parse_json_params(params)
    overrides.setdefault("price_dimo_per_kwh", stored["x-dimo"]["price_dimo_per_kwh"])
    p = EnergyParams.from_dict(overrides)
    start, end = int(event_row.start_ms), int(event_row.end_ms)
    others = conn.execute(
        select(oadr_events.c.start_ms).where(
            oadr_events.c.program_id == event_row.program_id,
            oadr_events.c.region == event_row.region,
            oadr_events.c.id != ident,
            oadr_events.c.start_ms < start,
        )
    )
    excluded = sorted({energy.local_date(int(r.start_ms), p.timezone) for r in others})
    candidates = energy.comparable_windows(start, end, p, excluded_days=excluded)
    cache = get_rights_cache(request)
    deliveries = []
    withheld: list[dict[str, Any]] = []
    placement: dict[str, Any] | None = None
    geo_id = stored["x-dimo"].get("geo_region_id")
    if geo_id is None:
        members = _region_vehicles(conn, str(event_row.region))
    else:
        geo_row, area = _geo_region(conn, int(geo_id))
        placements, withheld = place_vehicles(
            conn, cache, caller, now, str(geo_row.name), area, start, end, p
        )
        placement = energy.placement_record(
            int(geo_row.id), str(geo_row.name), area, placements, withheld
        )
        members = [x.vehicle_id for x in placements if x.inside]
    profile_actual = [0.0] * -(-(end - start) // 300_000)
    profile_base = [0.0] * len(profile_actual)
    for vid in members:
        coverage = cache.coverage(conn, vid, caller, now)
        spans = intersect(coverage.for_signal(CHARGE_POWER), coverage.for_signal(IS_CHARGING))
        if not _covers(spans, start, end):
            withheld.append({"vehicle_id": vid, "reason": "not-covered"})
            continue
        windows = [(a, b) for a, b in candidates if _covers(spans, a, b)]
        first = min([a for a, _ in windows[: p.baseline_days]] + [start])
        lead = int(p.max_hold_s * 1000)
        power = _series(conn, vid, CHARGE_POWER, first - lead, end, spans)
        charging = _series(conn, vid, IS_CHARGING, start, end, spans)
        delivery = energy.deliver(vid, start, end, windows, power, charging, p)
        deliveries.append(delivery)
        if delivery.status == "settled":
            actual, base = energy.load_profile(power, start, end, windows, p)
            profile_actual = [x + y for x, y in zip(profile_actual, actual, strict=True)]
            profile_base = [x + y for x, y in zip(profile_base, base, strict=True)]
    event = {
        "id": ident,
        "program_id": int(event_row.program_id),
        "region": str(event_row.region),
        "start_ms": start,
        "end_ms": end,
        "requested_kw": float(event_row.requested_kw),
    }
    settlement = energy.settle(event, deliveries, p, withheld=withheld, placement=placement)
    settlement["profile"] = {
        "step_ms": 300_000,
        "actual_kw": [round(x, 6) for x in profile_actual],
        "baseline_kw": [round(x, 6) for x in profile_base],
    }
    new_id = conn.execute(
        insert(oadr_reports).values(
            event_id=ident, owner=caller.lower(), created_ms=now, body="{}", settlement="{}"
        )
    ).inserted_primary_key
    assert new_id is not None
    report = energy.openadr_report(int(new_id[0]), event, settlement, caller, now)
    conn.execute(
        update(oadr_reports)
        .where(oadr_reports.c.id == new_id[0])
        .values(body=energy.dumps(report), settlement=energy.dumps(settlement))
    )
    conn.commit()
    payment = payment_status(conn, caller, settlement)
    return _json({"report": report, "settlement": settlement, "payment": payment}, 201)


def payment_status(conn: Connection, payer: str, settlement: dict[str, Any]) -> dict[str, Any]:
    """Whether `payer` paid the settlement through the DataMarket (`paySettlement`), as
    indexed: the settlement id it is paid under, and when paid the transaction, the total and
    fee, and whether the vehicles were credited exactly the report's amounts."""
    sid = "0x" + settlement_pay.settlement_id(settlement).hex()
    out: dict[str, Any] = {"settlement_id": sid, "paid": False}
    sp, sc = s.settlement_payments, s.settlement_credits
    row = conn.execute(
        select(sp).where(sp.c.payer == payer.lower(), sp.c.settlement_id == sid)
    ).first()
    if row is None:
        return out
    credits = conn.execute(
        select(sc.c.vehicle_id, sc.c.amount)
        .where(sc.c.settlement_id == sid, sc.c.tx_hash == row.tx_hash)
        .order_by(sc.c.log_index)
    ).all()
    owed = [(int(a["vehicle_id"]), int(a["wei"])) for a in settlement["payment"]["amounts"]]
    return {
        **out,
        "paid": True,
        "tx_hash": row.tx_hash,
        "block_number": int(row.block_number),
        "paid_at": int(row.paid_at),
        "product_id": int(row.product_id),
        "total_wei": str(row.total),
        "fee_wei": str(row.fee),
        "credited": [{"vehicle_id": int(c.vehicle_id), "wei": str(c.amount)} for c in credits],
        "matches_report": sorted(owed) == sorted((int(c.vehicle_id), c.amount) for c in credits),
    }


@router.get("/reports/{ident}", summary="A settlement report", responses=_RESPONSES)
def get_report(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The REPORT, its settlement, and its payment in DIMO through the data market: the
    settlement id to pay it under (`DataMarket.paySettlement`), and once paid, the transaction
    and whether each vehicle was credited the report's amount."""
    row = _object(conn, oadr_reports, ident)
    if str(row.owner) != caller.lower():
        raise GridResourceNotFound(f"report {ident}")
    settlement = json.loads(row.settlement)
    return _json(
        {
            "report": json.loads(row.body),
            "settlement": settlement,
            "payment": payment_status(conn, caller, settlement),
        }
    )


@router.get(
    "/reports/{ident}/chart.png",
    summary="Delivered load against the baseline, as PNG",
    responses={**_RESPONSES, 200: {"content": {"image/png": {}}}},
    response_class=Response,
)
def get_report_chart(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The region's measured load and its baseline over the event window."""
    row = _object(conn, oadr_reports, ident)
    if str(row.owner) != caller.lower():
        raise GridResourceNotFound(f"report {ident}")
    return Response(energy.delivery_chart(json.loads(row.settlement)), media_type="image/png")


# -------------------------------------------------------------------------------------------
# charging control (COMMANDS)
# -------------------------------------------------------------------------------------------


class ChargingControlIn(BaseModel):
    """A request to pause or limit a vehicle's charging."""

    action: str = Field(pattern="^(pause|resume|limit)$", description="pause, resume or limit")
    limit_kw: float | None = Field(None, ge=0, description="For `limit`: the most power, kW")


@router.post(
    "/{vehicle_id}/charging-control",
    summary="Charging control (COMMANDS): behind the governance feature flag",
    responses=problem_responses(400, 401, 403, 404, 501),
)
def post_charging_control(
    vehicle_id: VehicleId, body: ChargingControlIn, coverage: Access, conn: DbConn
) -> Response:
    """403 `feature-disabled` while `FEATURE_COMMANDS_SCOPE` is off. With it on, a caller
    without the COMMANDS privilege gets 403; with it, 501: no command channel reaches the
    devices yet (the bridge only sends data)."""
    del body
    require_feature(conn, FEATURE_COMMANDS)
    if not contains(coverage.of(Privilege.COMMANDS), coverage.now_ms - 1):
        raise PrivilegeMissing(vehicle_id, {"COMMANDS": ["charging-control"]})
    return problem_response(
        {
            "type": PROBLEM_BASE + "command-channel-unavailable",
            "title": "No command channel",
            "status": 501,
            "detail": "devices receive no commands yet: the bridge only uploads data",
        }
    )
