"""`/apps/finance/...`: verified odometer history with tamper signals, usage, battery health
(EVs) and the transparent value adjustment, over the readings the caller's rights cover.

The odometer history needs ODOMETER; usage needs DRIVING (speed, ignition) and is left out
without it; the battery section needs BATTERY and is left out without it. Without ODOMETER
the answer is a 403 problem naming the scope. `/{id}/chart.png` draws the same answer's
odometer history with its tamper signals marked, under the same rights and window.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Response
from pydantic import ValidationError

from apps import battery, finance
from apps.audit import AppInputs
from apps.columnar import as_columns
from indexer.api.access import rights_for
from indexer.api.deps import Access, DbConn, End, Start, VehicleId
from indexer.api.models import envelope
from indexer.api.params import battery_params, check_window
from indexer.api.problems import problem_responses
from indexer.apps.charts import odometer_chart
from indexer.apps.inputs import gather_inputs, vehicle_facts
from indexer.exceptions import AppParameterInvalid
from indexer.queries import ODOMETER

router = APIRouter(prefix="/apps/finance", tags=["apps"])
_RESPONSES: Final = problem_responses(400, 401, 403, 404)
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

ParamsJson = Annotated[
    str | None,
    Query(
        max_length=4096,
        description="JSON object overriding parameters (see FinanceParams), e.g. "
        '{"reference_value": 35000}',
    ),
]


def finance_params(raw: str | None) -> finance.FinanceParams:
    """The default parameters overridden by the caller's JSON object.

    Raises:
        AppParameterInvalid: bad JSON, an unknown name or a value out of range.
    """
    if not raw:
        return finance.FinanceParams()
    try:
        given = json.loads(raw)
    except ValueError as exc:
        raise AppParameterInvalid("params", f"not JSON: {exc}") from exc
    if not isinstance(given, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in given.values()
    ):
        raise AppParameterInvalid("params", "a JSON object of numbers")
    try:
        return finance.FinanceParams.from_dict(given)
    except (TypeError, ValidationError) as exc:
        raise AppParameterInvalid("params", str(exc)) from exc


def _finance(
    conn: Any, coverage: Any, vehicle_id: int, start: int, end: int, params_json: str | None
) -> tuple[dict[str, Any], AppInputs]:
    """The served finance envelope and the verified readings it was computed from."""
    check_window(start, end)
    facts, minted_ms = vehicle_facts(conn, vehicle_id)
    params = finance_params(params_json)
    optional = (*finance.USAGE_SIGNALS, *battery.REQUIRED, battery.TEMP_MIN, battery.TEMP_MAX)
    within, withheld = rights_for(coverage, finance.REQUIRED, optional, start, end)
    with_usage = all(n in within for n in finance.USAGE_SIGNALS)
    nominal = battery.nominal_kwh_of(facts.make, facts.model)
    with_battery = nominal is not None and all(n in within for n in battery.REQUIRED)
    names = (*finance.SIGNALS, *battery.REQUIRED, battery.TEMP_MIN, battery.TEMP_MAX)
    inputs = gather_inputs(conn, vehicle_id, names, start, end, within)
    context = finance.finance_context(
        facts,
        minted_ms,
        params,
        battery_params(facts, None) if with_battery else None,
        with_usage=with_usage,
    )
    result = finance.compute(inputs, context, start, end)
    answer = envelope(
        "finance", vehicle_id, start, end, context, within, withheld, inputs.refs(), result
    )
    return answer, inputs


def finance_answer(
    conn: Any, coverage: Any, vehicle_id: int, start: int, end: int, params_json: str | None
) -> dict[str, Any]:
    """The served finance envelope (rights checked, inputs gathered, pure function run)."""
    return _finance(conn, coverage, vehicle_id, start, end, params_json)[0]


@router.get(
    "/{vehicle_id}",
    summary="Odometer history with tamper signals, usage, battery health and value adjustment",
    responses=_RESPONSES,
)
def get_finance(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    params: ParamsJson = None,
) -> Response:
    """The finance report over `[start, end)` within your rights, with its inputs listed."""
    return Response(
        _dumps(finance_answer(conn, coverage, vehicle_id, start, end, params)),
        media_type="application/json",
    )


@router.get(
    "/{vehicle_id}/chart.png",
    summary="Verified odometer history with the tamper signals marked (PNG)",
    responses={**_RESPONSES, 200: {"content": {"image/png": {}}}},
    response_class=Response,
)
def get_finance_chart(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    params: ParamsJson = None,
) -> Response:
    """The odometer readings of `[start, end)` within your rights, with the decreases,
    implausible jumps, gaps and device swaps of the finance report marked, as PNG."""
    answer, inputs = _finance(conn, coverage, vehicle_id, start, end, params)
    cols = as_columns(inputs.get(ODOMETER))
    points = list(zip(cols.ts.tolist(), cols.value.tolist(), strict=True))
    chart = odometer_chart(points, answer["result"]["odometer"], start, end, vehicle_id=vehicle_id)
    return Response(chart, media_type="image/png")
