"""`/apps/energy/...` settlements of demand-response events, their reports and charts, and
their payment through the data market.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Connection, insert, select, update

from apps.energy.geo import placement_record
from apps.energy.openadr import dumps, openadr_report
from apps.energy.params import EnergyParams
from apps.energy.settlement import comparable_windows, deliver, load_profile, local_date, settle
from indexer import schema as s
from indexer.api.apps_energy_common import (
    FEATURE_GRID,
    RESPONSES,
    ObjectId,
    Params,
    geo_region,
    json_response,
    oadr_object,
    place_vehicles,
    region_vehicles,
    require_feature,
    require_grid_licence,
    series,
)
from indexer.api.deps import (
    Caller,
    Clock,
    DbConn,
    get_rights_cache,
)
from indexer.api.params import parse_json_params
from indexer.api.problems import problem_responses
from indexer.apps import energy, settlement_pay
from indexer.apps.energy import oadr_events, oadr_reports
from indexer.exceptions import (
    GridResourceNotFound,
    OpenAdrInvalid,
)
from indexer.queries import CHARGE_POWER, IS_CHARGING
from indexer.rights import Intervals, clip, intersect, length

router = APIRouter(prefix="/apps/energy", tags=["apps: energy"])


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
    event_row = oadr_object(conn, oadr_events, ident)
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
    excluded = sorted({local_date(int(r.start_ms), p.timezone) for r in others})
    candidates = comparable_windows(start, end, p, excluded_days=excluded)
    cache = get_rights_cache(request)
    deliveries = []
    withheld: list[dict[str, Any]] = []
    placement: dict[str, Any] | None = None
    geo_id = stored["x-dimo"].get("geo_region_id")
    if geo_id is None:
        members = region_vehicles(conn, str(event_row.region))
    else:
        geo_row, area = geo_region(conn, int(geo_id))
        placements, withheld = place_vehicles(
            conn, cache, caller, now, str(geo_row.name), area, start, end, p
        )
        placement = placement_record(int(geo_row.id), str(geo_row.name), area, placements, withheld)
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
        power = series(conn, vid, CHARGE_POWER, first - lead, end, spans)
        charging = series(conn, vid, IS_CHARGING, start, end, spans)
        delivery = deliver(vid, start, end, windows, power, charging, p)
        deliveries.append(delivery)
        if delivery.status == "settled":
            actual, base = load_profile(power, start, end, windows, p)
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
    settlement = settle(event, deliveries, p, withheld=withheld, placement=placement)
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
    report = openadr_report(int(new_id[0]), event, settlement, caller, now)
    conn.execute(
        update(oadr_reports)
        .where(oadr_reports.c.id == new_id[0])
        .values(body=dumps(report), settlement=dumps(settlement))
    )
    conn.commit()
    payment = payment_status(conn, caller, settlement)
    return json_response({"report": report, "settlement": settlement, "payment": payment}, 201)


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


@router.get("/reports/{ident}", summary="A settlement report", responses=RESPONSES)
def get_report(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The REPORT, its settlement, and its payment in DIMO through the data market: the
    settlement id to pay it under (`DataMarket.paySettlement`), and once paid, the transaction
    and whether each vehicle was credited the report's amount."""
    row = oadr_object(conn, oadr_reports, ident)
    if str(row.owner) != caller.lower():
        raise GridResourceNotFound(f"report {ident}")
    settlement = json.loads(row.settlement)
    return json_response(
        {
            "report": json.loads(row.body),
            "settlement": settlement,
            "payment": payment_status(conn, caller, settlement),
        }
    )


@router.get(
    "/reports/{ident}/chart.png",
    summary="Delivered load against the baseline, as PNG",
    responses={**RESPONSES, 200: {"content": {"image/png": {}}}},
    response_class=Response,
)
def get_report_chart(ident: ObjectId, caller: Caller, conn: DbConn) -> Response:
    """The region's measured load and its baseline over the event window."""
    row = oadr_object(conn, oadr_reports, ident)
    if str(row.owner) != caller.lower():
        raise GridResourceNotFound(f"report {ident}")
    return Response(energy.delivery_chart(json.loads(row.settlement)), media_type="image/png")
