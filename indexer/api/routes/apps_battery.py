"""`/apps/battery/...`: state of health, charging behaviour, the fleet view, the SoH chart and the
battery health certificate statement, each over the readings the caller's rights cover.

The SoH needs BATTERY (state of charge, pack current and voltage) at common times; pack
temperatures (BATTERY) and the odometer (ODOMETER) refine it when covered; the charging
behaviour needs CHARGING. Without BATTERY the answer is a 403 problem naming the scope.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from apps import battery
from indexer import schema as s
from indexer.api.access import rights_for
from indexer.api.deps import Access, Caller, Clock, DbConn, End, Start, VehicleId, get_rights_cache
from indexer.api.models import envelope
from indexer.api.params import battery_params, check_window
from indexer.api.problems import problem_responses
from indexer.apps.charts import soh_chart
from indexer.apps.inputs import gather_fleet_inputs, gather_inputs, vehicle_facts
from indexer.exceptions import AppParameterInvalid, CertificateInvalid
from indexer.rights import clip
from protocol.privileges import Privilege

router = APIRouter(prefix="/apps/battery", tags=["apps"])
_RESPONSES: Final = problem_responses(400, 401, 403, 404)
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: Most vehicles one fleet view looks at.
MAX_FLEET: Final = 1_000

ParamsJson = Annotated[
    str | None,
    Query(
        max_length=4096,
        description="JSON object overriding method parameters (see BatteryParams), e.g. "
        '{"min_soc_delta": 20}',
    ),
]


def _json(body: dict[str, Any]) -> Response:
    return Response(_dumps(body), media_type="application/json")


def battery_answer(
    conn: Any, coverage: Any, vehicle_id: int, start: int, end: int, params_json: str | None
) -> dict[str, Any]:
    """The served battery envelope (rights checked, inputs gathered, pure function run)."""
    check_window(start, end)
    facts, _ = vehicle_facts(conn, vehicle_id)
    params = battery_params(facts, params_json)
    within, withheld = rights_for(
        coverage,
        battery.REQUIRED,
        (*battery.OPTIONAL, *battery.CHARGING_SIGNALS),
        start,
        end,
    )
    with_charging = any(n in within for n in battery.CHARGING_SIGNALS)
    inputs = gather_inputs(conn, vehicle_id, battery.SIGNALS, start, end, within)
    context = battery.battery_context(facts, params, with_charging=with_charging)
    result = battery.compute(inputs, context, start, end)
    return envelope(
        "battery", vehicle_id, start, end, context, within, withheld, inputs.refs(), result
    )


@router.get(
    "/fleet",
    summary="SoH against age and mileage by make, model and year, with percentiles",
    responses=_RESPONSES,
)
def get_fleet(
    request: Request,
    caller: Caller,
    conn: DbConn,
    clock: Clock,
    start: Start,
    end: End,
    make: Annotated[str | None, Query(max_length=128, description="Only this make")] = None,
    model: Annotated[str | None, Query(max_length=128, description="Only this model")] = None,
    year: Annotated[int | None, Query(ge=1900, le=2200, description="Only this year")] = None,
) -> Response:
    """The fleet view over the vehicles whose BATTERY data your rights cover in the window
    (your own, granted, or licensed), at most 1,000; each vehicle's SoH from its readings."""
    check_window(start, end)
    query = select(s.vehicles.c.id, s.models.c.make, s.models.c.model, s.vehicles.c.year).join(
        s.models, s.models.c.id == s.vehicles.c.model_id
    )
    if make is not None:
        query = query.where(s.models.c.make == make)
    if model is not None:
        query = query.where(s.models.c.model == model)
    if year is not None:
        query = query.where(s.vehicles.c.year == year)
    cache = get_rights_cache(request)
    now = int(clock() * 1000)
    readable: dict[int, battery.VehicleFacts] = {}
    for row in conn.execute(query.order_by(s.vehicles.c.id)):
        cov = cache.coverage(conn, int(row.id), caller, now)
        if clip(cov.of(Privilege.BATTERY), start, end):
            readable[int(row.id)] = battery.VehicleFacts(row.make, row.model, int(row.year))
            if len(readable) >= MAX_FLEET:
                break
    entries = []
    whole = gather_fleet_inputs(conn, sorted(readable), battery.SIGNALS[:5], start, end)
    for vid, facts in readable.items():
        nominal = battery.nominal_kwh_of(facts.make, facts.model)
        if nominal is None:
            continue
        cov = cache.coverage(conn, vid, caller, now)
        spans = clip(cov.of(Privilege.BATTERY), start, end)
        inputs = whole[vid]
        for name, rs in list(inputs.series.items()):
            inputs.series[name] = [r for r in rs if any(a <= r.ts < b for a, b in spans)]
        report = battery.battery_report(
            inputs, battery.BatteryParams(nominal), facts, start, end, with_charging=False
        )
        entries.append(
            {
                "vehicle_id": vid,
                "make": facts.make,
                "model": facts.model,
                "year": facts.year,
                "soh": report["soh"]["percent"] if report["soh"] else None,
                "age_years": facts.age_years(end),
                "odometer_km": None,
            }
        )
    return _json({"start": start, "end": end, **battery.fleet_view(entries)})


@router.get(
    "/{vehicle_id}",
    summary="State of health, degradation, sessions and charging behaviour",
    responses=_RESPONSES,
)
def get_battery(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    params: ParamsJson = None,
) -> Response:
    """The battery report over `[start, end)` within your rights, with its inputs listed.

    `result.soh` is null when no charging session passes the filters.
    """
    return _json(battery_answer(conn, coverage, vehicle_id, start, end, params))


@router.get(
    "/{vehicle_id}/chart.png",
    summary="SoH over time with the fleet band (PNG)",
    responses={**_RESPONSES, 200: {"content": {"image/png": {}}}},
    response_class=Response,
)
def get_battery_chart(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    params: ParamsJson = None,
) -> Response:
    """The sessions' SoH, the current SoH with its interval, and the field band, as PNG."""
    answer = battery_answer(conn, coverage, vehicle_id, start, end, params)
    return Response(
        soh_chart(answer["result"], start, end, vehicle_id=vehicle_id), media_type="image/png"
    )


@router.get(
    "/{vehicle_id}/certificate",
    summary="The battery health certificate statement for the oracle quorum to sign",
    responses=_RESPONSES,
)
def get_certificate(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
) -> Response:
    """The EIP-712 `BatteryCertificate` of the report over `[start, end)` and the report.

    The oracle signers recompute the report from the listed inputs' proofs before signing;
    `BatteryCertificates.verifyCertificate(certificate, signatures)` checks it on-chain.
    """
    answer = battery_answer(conn, coverage, vehicle_id, start, end, None)
    try:
        cert = battery.Certificate.of(
            vehicle_id, answer["result"], start, end, [tuple(r) for r in answer["inputs"]]
        )
    except CertificateInvalid as exc:
        raise AppParameterInvalid("start/end", exc.reason) from exc
    return _json({"certificate": cert.as_dict(), "answer": answer})
