"""`/apps/energy/...` OpenADR 3 programs and demand-response events, published by a utility
with a grid licence.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import Connection, insert, select, update

from apps.energy.geo import GeoArea
from apps.energy.openadr import dumps, iso, parse_duration_ms
from apps.energy.region import REGION_PATTERN
from indexer.api.apps_energy_common import (
    FEATURE_GRID,
    RESPONSES,
    ObjectId,
    json_response,
    oadr_object,
    parse_area,
    publish_area,
    require_feature,
    require_grid_licence,
    require_location,
)
from indexer.api.deps import (
    Caller,
    Clock,
    DbConn,
)
from indexer.api.problems import problem_responses
from indexer.apps.energy import geo_regions, oadr_events, oadr_programs
from indexer.exceptions import OpenAdrInvalid

router = APIRouter(prefix="/apps/energy", tags=["apps: energy"])


# -------------------------------------------------------------------------------------------
# OpenADR 3: programs and events
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
        "createdDateTime": iso(now),
        "modificationDateTime": iso(now),
    }
    conn.execute(
        update(oadr_programs).where(oadr_programs.c.id == new_id[0]).values(body=dumps(program))
    )
    conn.commit()
    return json_response(program, 201)


@router.get("/programs/{ident}", summary="An OpenADR 3 program", responses=RESPONSES)
def get_program(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The PROGRAM as published."""
    del caller
    return json_response(json.loads(oadr_object(conn, oadr_programs, ident).body))


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
        duration = parse_duration_ms(str(period.get("duration")))
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
    return parse_area(areas[0][0], "targets.SERVICE_AREA")


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
    require_location(conn, caller, now // 1000, region)
    return publish_area(conn, caller, region, area, now), area


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
    program = oadr_object(conn, oadr_programs, program_id)
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
        "createdDateTime": iso(now),
        "modificationDateTime": iso(now),
        "x-dimo": dimo,
    }
    conn.execute(update(oadr_events).where(oadr_events.c.id == new_id[0]).values(body=dumps(event)))
    conn.commit()
    return json_response(event, 201)


@router.get("/events/{ident}", summary="A demand-response event", responses=RESPONSES)
def get_event(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The EVENT as published."""
    del caller
    return json_response(json.loads(oadr_object(conn, oadr_events, ident).body))
