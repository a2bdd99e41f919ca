"""The finance chart: the verified odometer history as PNG with its tamper signals marked, served
under the finance answer's rights and window; without ODOMETER there is no chart."""

# The fixtures come from the indexer tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib.image
import numpy as np
from numpy.typing import NDArray

from apps.finance import FinanceParams, odometer_history
from indexer.apps.charts import PNG_MAGIC, odometer_chart
from indexer.queries import Reading
from protocol.eip712 import Eip712Domain
from tests.apps.test_finance import _load_sim
from tests.indexer.test_api_telemetry import (  # fixtures shared with the telemetry tests
    World,
    assert_problem,
    world,  # noqa: F401
)
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
)

DAY = 86_400_000
DEVICE = "0x000000000000000000000000000000000000000A"
BATTERY_BIT, DRIVING_BIT, ODOMETER_BIT = 1 << 0, 1 << 3, 1 << 2
#: matplotlib's tab:red, the colour `odometer_chart` marks decreases with.
DECREASE_RGB = (0xD6 / 255, 0x27 / 255, 0x28 / 255)
Fleet = tuple[list[tuple[int, Any]], int]


def _pixels(png: bytes) -> NDArray[np.float32]:
    """The PNG decoded to RGB(A) floats in [0, 1]; fails unless it is a real PNG."""
    assert png[:8] == PNG_MAGIC
    assert len(png) > 10_000, f"a {len(png)}-byte chart draws next to nothing"
    image: NDArray[np.float32] = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.ndim == 3
    assert image.shape[0] > 200
    assert image.shape[1] > 400
    return image


def _has_colour(image: NDArray[np.float32], rgb: tuple[float, float, float]) -> bool:
    return bool((np.abs(image[..., :3] - np.asarray(rgb)).max(axis=-1) < 0.02).any())


def test_a_decrease_is_marked_in_the_chart_and_a_clean_history_has_no_mark() -> None:
    t0 = 1_700_000_000_000
    clean = [(t0 + i * 3_600_000, 1000.0 + 30 * i) for i in range(24)]
    rolled = [*clean[:12], *((t, km - 300.0) for t, km in clean[12:])]  # rolled back at noon
    charts = {}
    for name, points in {"clean": clean, "rolled": rolled}.items():
        readings = [Reading(t, km, 1, i) for i, (t, km) in enumerate(points)]
        devices = {(1, i): DEVICE for i in range(len(points))}
        odo = odometer_history(readings, devices, FinanceParams(), t0 - DAY, t0 + DAY)
        charts[name] = _pixels(odometer_chart(points, odo, t0, t0 + DAY, vehicle_id=7))
        assert odo["flags"] == ([] if name == "clean" else ["decrease"])
    assert not _has_colour(charts["clean"], DECREASE_RGB)
    assert _has_colour(charts["rolled"], DECREASE_RGB)


def test_the_served_chart_draws_the_verified_odometer_with_its_rollback_marked(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
) -> None:
    car, start, end = _load_sim(world, anchor_bundles, domain, fleet, 4, 21, True)
    span = {"start": start, "end": end}
    with world.client(owner) as mine:
        chart = mine.get(f"/apps/finance/{car}/chart.png", params=span)
        answer = mine.get(f"/apps/finance/{car}", params=span).json()
        empty = mine.get(f"/apps/finance/{car}/chart.png", params={"start": end, "end": end})
    assert chart.status_code == 200, chart.text
    assert chart.headers["content-type"] == "image/png"
    assert "decrease" in answer["result"]["odometer"]["flags"]
    assert _has_colour(_pixels(chart.content), DECREASE_RGB)
    assert_problem(empty, 400, "invalid-telemetry-query")
