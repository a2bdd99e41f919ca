"""The indexer's side of grid integration: the tables of owners' region declarations,
published geometric regions and OpenADR 3 objects, and the delivery chart.

The pure functions live in `apps.energy` (`params`, `sessions`, `settlement`, `region`,
`geo`, `openadr`); the few names re-exported here serve the CLI and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from apps.energy.openadr import iso as iso
from apps.energy.params import EnergyParams as EnergyParams
from apps.energy.settlement import VehicleDelivery as VehicleDelivery
from apps.energy.settlement import comparable_windows as comparable_windows
from apps.energy.settlement import deliver as deliver
from apps.energy.settlement import settle as settle
from indexer.db import metadata

# -------------------------------------------------------------------------------------------
# storage: declarations and OpenADR 3 objects
# -------------------------------------------------------------------------------------------

#: The owner's signed grid region of each vehicle (the latest declaration).
grid_regions = Table(
    "app_grid_regions",
    metadata,
    Column("vehicle_id", BigInteger, primary_key=True),
    Column("region", String(64), nullable=False, index=True),
    # The owner who signed, lowercase 0x address, and when (unix s, signed).
    Column("owner", String(42), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

#: OpenADR 3 programs, as JSON, with the utility that published each.
oadr_programs = Table(
    "app_oadr_programs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(42), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

#: OpenADR 3 events: a region, a window and a requested reduction.
oadr_events = Table(
    "app_oadr_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("program_id", Integer, ForeignKey("app_oadr_programs.id"), nullable=False, index=True),
    Column("owner", String(42), nullable=False),
    Column("region", String(64), nullable=False, index=True),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("requested_kw", Float, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

#: OpenADR 3 reports: the settlement of an event, with the full result.
oadr_reports = Table(
    "app_oadr_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, ForeignKey("app_oadr_events.id"), nullable=False, index=True),
    Column("owner", String(42), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("settlement", Text, nullable=False),
)

ENERGY_TABLES: Final = (grid_regions, oadr_programs, oadr_events, oadr_reports)

#: Geometric regions published by utilities (immutable: a new shape gets a new name).
geo_regions = Table(
    "app_geo_regions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(42), nullable=False),
    Column("name", String(64), nullable=False),
    # The area as canonical GeoJSON (`GeoArea.as_geojson`, `dumps`).
    Column("geometry", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("owner", "name"),
)

#: Tables added after `ENERGY_TABLES` (migration 0008; `ENERGY_TABLES` stays what 0006 made).
GEO_REGION_TABLES: Final = (geo_regions,)


# -------------------------------------------------------------------------------------------
# the delivery chart
# -------------------------------------------------------------------------------------------


def delivery_chart(settlement: Mapping[str, Any]) -> bytes:
    """Delivered load against the baseline of a settled event, as PNG."""
    import matplotlib.pyplot as plt

    from indexer.apps.charts import png

    profile = settlement["profile"]
    step_h = profile["step_ms"] / 3_600_000
    xs = [i * step_h for i in range(len(profile["actual_kw"]))]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.step(xs, profile["baseline_kw"], where="post", color="tab:gray", label="baseline (10 of 10)")
    ax.step(xs, profile["actual_kw"], where="post", color="tab:blue", label="measured load")
    ax.fill_between(
        xs,
        profile["actual_kw"],
        profile["baseline_kw"],
        step="post",
        color="tab:green",
        alpha=0.25,
        label="delivered reduction",
    )
    requested = [b - settlement["requested_kw"] for b in profile["baseline_kw"]]
    ax.step(xs, requested, where="post", color="tab:red", ls="--", lw=0.8, label="requested")
    totals = settlement["totals"]
    ax.set_title(
        f"Event {settlement['event_id']} in {settlement['region']}: "
        f"{totals['delivered_kwh']:.1f} kWh delivered by {totals['settled']} vehicles"
    )
    ax.set_xlabel(f"hours from {iso(settlement['start_ms'])}")
    ax.set_ylabel("load, kW")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png(fig)
