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

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, insert, select, update

import apps.energy
from apps.energy.params import PLUGGED, SESSION_SIGNALS, VERSION, EnergyParams
from apps.energy.region import REGION_PATTERN, region_signer, region_typed_data
from apps.energy.sessions import Session, flexibility_summary
from indexer import schema as s
from indexer.api.access import rights_for
from indexer.api.apps_energy_common import (
    FEATURE_COMMANDS,
    FEATURE_GRID,
    RESPONSES,
    Params,
    check_energy_window,
    energy_params,
    feature_enabled,
    json_response,
    region_vehicles,
    vehicle_sessions,
)
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
from indexer.api.problems import problem_responses
from indexer.apps.energy import grid_regions
from indexer.exceptions import (
    BadTelemetryQuery,
    GridResourceNotFound,
    PrivilegeMissing,
    RegionDeclarationInvalid,
    VehicleNotFound,
)
from indexer.queries import CHARGE_POWER, IS_CHARGING, SOC
from indexer.rights import clip, intersect
from protocol.crypto import SignatureError
from protocol.eip712 import dimo_domain

router = APIRouter(prefix="/apps/energy", tags=["apps: energy"])


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
        version=VERSION,
        method=apps.energy.__doc__ or "",
        defaults=EnergyParams().as_dict(),
        features={
            FEATURE_GRID: feature_enabled(conn, FEATURE_GRID),
            FEATURE_COMMANDS: feature_enabled(conn, FEATURE_COMMANDS),
        },
    )


# -------------------------------------------------------------------------------------------
# sessions and flexibility
# -------------------------------------------------------------------------------------------


@router.get(
    "/{vehicle_id}/sessions",
    summary="Charging sessions with plug-in/out, energy, SoC and flexibility",
    responses=RESPONSES,
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
    check_energy_window(start, end)
    p = energy_params(params)
    within, withheld = rights_for(coverage, [IS_CHARGING], [CHARGE_POWER, PLUGGED, SOC], start, end)
    found, refs = vehicle_sessions(conn, vehicle_id, start, end, within, p)
    return json_response(
        {
            "app": "energy",
            "vehicle_id": vehicle_id,
            "start": start,
            "end": end,
            "context": {"version": VERSION, "params": p.as_dict()},
            "covered": {k: [list(v) for v in spans] for k, spans in within.items()},
            "withheld": [w.model_dump() for w in withheld],
            "inputs": [list(r) for r in refs],
            "result": {
                "sessions": [vars(x) for x in found],
                "summary": flexibility_summary({vehicle_id: found}),
            },
        }
    )


def _check_region(region: str) -> None:
    if not REGION_PATTERN.match(region):
        raise BadTelemetryQuery("region", f"{region!r} does not match {REGION_PATTERN.pattern}")


@router.get(
    "/regions/{region}/flexibility",
    summary="Flexibility of the vehicles declared in a grid region that you may read",
    responses=RESPONSES,
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
    check_energy_window(start, end)
    p = energy_params(params)
    cache = get_rights_cache(request)
    now = int(clock() * 1000)
    per_vehicle: dict[int, list[Session]] = {}
    withheld = 0
    for vid in region_vehicles(conn, region):
        coverage = cache.coverage(conn, vid, caller, now)
        spans = clip(coverage.for_signal(IS_CHARGING), start, end)
        if not spans:
            withheld += 1
            continue
        within = {
            name: intersect(spans, coverage.for_signal(name))
            for name in SESSION_SIGNALS
            if intersect(spans, coverage.for_signal(name))
        }
        per_vehicle[vid], _ = vehicle_sessions(conn, vid, start, end, within, p)
    return json_response(
        {
            "region": region,
            "start": start,
            "end": end,
            "context": {"version": VERSION, "params": p.as_dict()},
            "withheld_vehicles": withheld,
            "summary": flexibility_summary(per_vehicle),
            "vehicles": {str(v): flexibility_summary({v: ss}) for v, ss in per_vehicle.items()},
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
        signer = region_signer(
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
        typed_data=region_typed_data(
            _region_domain(request, settings), vehicle_id, row["region"], row["issued_at"]
        ),
    )


@router.get(
    "/{vehicle_id}/region",
    response_model=RegionOut,
    summary="A vehicle's declared grid region",
    responses=RESPONSES,
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
