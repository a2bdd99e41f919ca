// Charts drawn in the page (uPlot), for answers that have no PNG route: the energy sessions.
// uPlot loads only when a chart is drawn, so the first paint does not wait for it.

/**
 * A bar chart of each charging session's energy and the part of it that could have moved in
 * time, over the session's start; its time axis spans the window the API answered for
 * (`window`: start and end, unix ms). Resolves to the element holding it, which tells the
 * points drawn and the axis' span in `data-points`, `data-x-min` and `data-x-max` (unix s).
 */
export async function energyChart(sessions, window, width) {
  const [{ default: UPlot }] = await Promise.all([
    import("uplot"),
    import("uplot/dist/uPlot.min.css"),
  ]);
  const sorted = [...sessions].sort((a, b) => a.start_ms - b.start_ms);
  const data = [
    sorted.map((s) => s.start_ms / 1000),
    sorted.map((s) => s.energy_kwh),
    sorted.map((s) => s.shiftable_kwh),
  ];
  const box = document.createElement("div");
  box.className = "chart energy-chart";
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", `Energy of ${sorted.length} charging sessions, in kWh`);
  const bars = UPlot.paths.bars({ size: [0.6, 40] });
  const chart = new UPlot({
    // The axis' span as drawn, for readers of the page (and its tests).
    hooks: {
      setScale: [(u, key) => {
        if (key !== "x") return;
        box.dataset.xMin = String(u.scales.x.min);
        box.dataset.xMax = String(u.scales.x.max);
      }],
    },
    width: Math.max(280, Math.min(640, width)),
    height: 220,
    title: "Charging sessions: energy (kWh) by start (UTC)",
    tzDate: (ts) => UPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      x: { time: true, range: () => [window.start / 1000, window.end / 1000] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
    },
    axes: [{}, { label: "kWh" }],
    series: [
      { label: "start" },
      { label: "energy", stroke: "#2357d9", fill: "rgba(35,87,217,0.35)", paths: bars },
      { label: "shiftable", stroke: "#17692f", fill: "rgba(23,105,47,0.35)", paths: bars },
    ],
  }, data, box);
  box.dataset.points = String(chart.data[1].filter((v) => Number.isFinite(v)).length);
  return box;
}
