"""The application charts' time axes: each tick says a different time, whatever the span."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from indexer.apps.charts import time_axis

HOUR_MS = 3_600_000
T0_MS = 1_780_000_000_000  # 2026-05-28 UTC


@pytest.mark.parametrize("hours", [1, 6, 24, 24 * 30])
def test_every_tick_of_a_window_reads_a_different_time(hours: int) -> None:
    fig, ax = plt.subplots()
    try:
        days = [(T0_MS + i * HOUR_MS // 4) / 86_400_000 for i in range(hours * 4 + 1)]
        ax.plot(days, range(len(days)))
        time_axis(ax)
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    finally:
        plt.close(fig)
    assert len(labels) >= 3
    assert len(set(labels)) == len(labels), labels
