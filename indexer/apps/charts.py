"""PNG charts of application results (matplotlib, Agg backend: no display needed).

`soh_chart` draws a battery report: each charging session's SoH over time, the current SoH
with its 95 % interval, and the fleet band, i.e. where a vehicle of this age sits when it
loses the field average of 1.8-2.3 %/year (and 3 %/year, heavy DC fast charging), or the
percentiles of a fleet view when given. `odometer_chart` draws a finance report's verified
odometer history with its tamper signals marked. `line_chart` is a generic time series for the
other applications.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from apps.battery import FIELD_HEAVY_DC_PCT_PER_YEAR, FIELD_RANGE_PCT_PER_YEAR, MS_PER_YEAR

__all__ = ["line_chart", "odometer_chart", "png", "soh_chart", "time_axis"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def time_axis(ax: Axes) -> None:
    """Date ticks on `ax`'s x axis, each a different time (UTC) whatever the span: day and
    hour for a window of up to two days, the day for longer ones."""
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())  # type: ignore[no-untyped-call]

    def label(x: float, _pos: int | None = None) -> str:
        lo, hi = ax.get_xlim()
        fmt = "%d %b %H:%M" if hi - lo <= 2 else "%d %b %Y"
        return str(mdates.num2date(x).strftime(fmt))  # type: ignore[no-untyped-call]

    ax.xaxis.set_major_formatter(FuncFormatter(label))


def _dt(ms: float) -> float:
    """Matplotlib's date number (days since its epoch, 1970-01-01 UTC) of unix ms."""
    return ms / 86_400_000


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def soh_chart(
    report: Mapping[str, Any],
    start_ms: int,
    end_ms: int,
    *,
    vehicle_id: int | None = None,
    fleet_band: tuple[float, float] | None = None,
) -> bytes:
    """SoH over time with the fleet band, as PNG.

    Args:
        report: A battery result (`apps.battery.battery_report`).
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        vehicle_id: For the title.
        fleet_band: (p10, p90) SoH of the vehicle's make, model and year in a fleet view;
            without it, the band the field degradation range gives for the vehicle's age.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    year = int(report["vehicle"]["year"])
    mid = (year - 1970 + 0.5) * MS_PER_YEAR
    xs = [start_ms, end_ms]
    ages = [max(0.0, (x - mid) / MS_PER_YEAR) for x in xs]
    times = [_dt(x) for x in xs]
    if fleet_band is not None:
        ax.fill_between(
            times,
            [fleet_band[0]] * 2,
            [fleet_band[1]] * 2,
            color="tab:green",
            alpha=0.2,
            label="fleet p10-p90 (same make, model, year)",
        )
    else:
        lo, hi = FIELD_RANGE_PCT_PER_YEAR
        ax.fill_between(
            times,
            [100 - a * hi for a in ages],
            [100 - a * lo for a in ages],
            color="tab:green",
            alpha=0.2,
            label=f"field average {lo}-{hi} %/year since model year",
        )
        ax.plot(
            times,
            [100 - a * FIELD_HEAVY_DC_PCT_PER_YEAR for a in ages],
            color="tab:orange",
            linestyle="--",
            label=f"heavy DC fast charging {FIELD_HEAVY_DC_PCT_PER_YEAR} %/year",
        )
    used = [s for s in report["sessions"] if s["used"] and s["soh_percent"] is not None]
    other = [s for s in report["sessions"] if not s["used"] and s["soh_percent"] is not None]
    if used:
        ax.scatter(
            [_dt((s["start"] + s["end"]) / 2) for s in used],
            [s["soh_percent"] for s in used],
            color="tab:blue",
            zorder=3,
            label="charging session (used)",
        )
    if other:
        ax.scatter(
            [_dt((s["start"] + s["end"]) / 2) for s in other],
            [s["soh_percent"] for s in other],
            color="tab:gray",
            marker="x",
            zorder=3,
            label="charging session (left out)",
        )
    soh = report.get("soh")
    if soh:
        lo, hi = soh["ci95"]
        ax.errorbar(
            [_dt(end_ms)],
            [soh["percent"]],
            yerr=[[soh["percent"] - lo], [hi - soh["percent"]]],
            fmt="o",
            color="black",
            capsize=6,
            zorder=4,
            label=f"SoH {soh['percent']:.1f} % (95 % interval)",
        )
    title = "State of health"
    if vehicle_id is not None:
        title += f", vehicle {vehicle_id}"
    v = report["vehicle"]
    ax.set_title(f"{title} ({v['make']} {v['model']} {v['year']})")
    ax.set_ylabel("SoH, % of nominal energy")
    time_axis(ax)
    fig.autofmt_xdate()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return png(fig)


def line_chart(
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    title: str,
    ylabel: str,
    band: tuple[float, float] | None = None,
) -> bytes:
    """Named time series (unix ms, value) as one PNG line chart, with an optional band."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, points in series.items():
        if points:
            ax.plot([_dt(t) for t, _ in points], [v for _, v in points], label=name)
    if band is not None:
        ax.axhspan(band[0], band[1], color="tab:green", alpha=0.2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    time_axis(ax)
    fig.autofmt_xdate()
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return png(fig)


#: How `odometer_chart` marks each tamper signal kind: colour, marker and legend label.
_ODOMETER_MARKS: dict[str, tuple[str, str, str]] = {
    "decrease": ("tab:red", "v", "decrease"),
    "implausible-jump": ("tab:orange", "^", "implausible jump"),
    "device-swap": ("tab:purple", "D", "device swap"),
}


def odometer_chart(
    points: Sequence[tuple[int, float]],
    odometer: Mapping[str, Any],
    start_ms: int,
    end_ms: int,
    *,
    vehicle_id: int | None = None,
) -> bytes:
    """A verified odometer history with its tamper signals marked, as PNG.

    Gaps are shaded over their span (clipped to the window); decreases, implausible jumps and
    device swaps are marked at the reading that raised them, each from the signal's own times
    and values. The time axis spans what is drawn (the whole window when nothing is).

    Args:
        points: The odometer readings (unix ms, km) in time order.
        odometer: The odometer section of a finance result
            (`apps.finance.odometer_history`): its `signals`, `signed_km`, `latest`.
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        vehicle_id: For the title.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if points:
        ax.plot(
            [_dt(t) for t, _ in points],
            [km for _, km in points],
            color="tab:blue",
            linewidth=1.2,
            label=f"odometer ({len(points)} signed readings)",
        )
    signals = list(odometer.get("signals") or [])
    gaps = [s for s in signals if s["kind"] == "gap"]
    for i, gap in enumerate(gaps):
        ax.axvspan(
            _dt(max(int(gap["from_ts"]), start_ms)),
            _dt(min(int(gap["to_ts"]), end_ms)),
            color="tab:gray",
            alpha=0.25,
            label=f"gap ({len(gaps)})" if i == 0 else None,
        )
    for kind, (color, marker, label) in _ODOMETER_MARKS.items():
        marked = [s for s in signals if s["kind"] == kind]
        if marked:
            ax.scatter(
                [_dt(int(s["to_ts"])) for s in marked],
                [float(s["to_km"]) for s in marked],
                color=color,
                marker=marker,
                s=60,
                zorder=4,
                label=f"{label} ({len(marked)})",
            )
    if not points and not signals:
        ax.set_xlim(_dt(start_ms), _dt(end_ms))
    title = "Verified odometer"
    if vehicle_id is not None:
        title += f", vehicle {vehicle_id}"
    latest = odometer.get("latest")
    if latest:
        title += f" ({float(odometer['signed_km']):,.0f} km signed of {float(latest['km']):,.0f})"
    ax.set_title(title)
    ax.set_ylabel("odometer, km")
    time_axis(ax)
    fig.autofmt_xdate()
    ax.grid(alpha=0.3)
    if not points:
        ax.text(
            0.5,
            0.5,
            "no odometer readings in the window",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="tab:gray",
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return png(fig)
