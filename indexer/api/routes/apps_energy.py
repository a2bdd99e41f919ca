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
- Charging control needs `FEATURE_COMMANDS_SCOPE`; while governance keeps it off, the API
  says so (403 `feature-disabled`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, insert, select, update

from indexer import schema as s
from indexer.api.deps import Caller, Clock, DbConn, Settings
from indexer.api.problems import problem_response, problem_responses
from indexer.api.routes.apps_insurance import deployment_of, parse_json_params
from indexer.api.routes.apps_proofs import check_window, rights_for
from indexer.api.routes.telemetry import MAX_MS, Access, VehicleId, get_rights_cache
from indexer.apps import energy, settlement_pay
from indexer.apps.energy import (
    PLUGGED,
    REGION_PATTERN,
    EnergyParams,
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
    OpenAdrInvalid,
    PrivilegeMissing,
    RegionDeclarationInvalid,
    VehicleNotFound,
)
from indexer.queries import CHARGE_POWER, IS_CHARGING, SOC, raw_readings
from indexer.rights import Intervals, clip, contains, intersect, length
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

Start = Annotated[int, Query(ge=0, le=MAX_MS, description="Window start, unix ms, inclusive")]
End = Annotated[int, Query(ge=1, le=MAX_MS, description="Window end, unix ms, exclusive")]
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
    start: Start,
    end: End,
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
    start: Start,
    end: End,
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


@router.post(
    "/events",
    status_code=201,
    summary="Publish a demand-response event (OpenADR 3 EVENT)",
    responses=problem_responses(400, 401, 403, 404),
)
def post_event(body: dict[str, Any], caller: Caller, conn: DbConn, clock: Clock) -> Response:
    """Stores the EVENT: one `GRID_REGION` target, `intervalPeriod` (start, ISO 8601
    duration), a `DISPATCH_SETPOINT_RELATIVE` payload (kW, negative to shed) and optionally a
    `PRICE` payload (DIMO per delivered kWh). Only the program's publisher may add events."""
    now = int(clock() * 1000)
    require_feature(conn, FEATURE_GRID)
    require_grid_licence(conn, caller, now // 1000)
    program_id, region, start, end, requested, price = _event_fields(body)
    program = _object(conn, oadr_programs, program_id)
    if str(program.owner) != caller.lower():
        raise OpenAdrInvalid("programID", f"program {program_id} was published by another party")
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
    event = {
        **body,
        "id": str(new_id[0]),
        "objectType": "EVENT",
        "programID": str(program_id),
        "createdDateTime": energy.iso(now),
        "modificationDateTime": energy.iso(now),
        "x-dimo": {"requested_kw": requested, "price_dimo_per_kwh": price},
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
    `POST /apps/proofs` serves, and the payment in DIMO at the event's PRICE.
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
    withheld = []
    profile_actual = [0.0] * -(-(end - start) // 300_000)
    profile_base = [0.0] * len(profile_actual)
    for vid in _region_vehicles(conn, str(event_row.region)):
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
    settlement = energy.settle(event, deliveries, p, withheld=withheld)
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
