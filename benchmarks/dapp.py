"""The dApp's quality as a newcomer meets it: Lighthouse scores, axe-core violations, and the
owner view's requests and time, against a fresh `make run` with its demo seed.

The platform runs as `make run` runs it (`dimo stack run`, demo on) in a temporary data folder
on free loopback ports, with 24 simulated vehicles (dev account 2 owns 8 of them) driving one
day of history at 8,000x; the API's rate limit stays at its default. Once the demo is seeded
(products, DIMO, the proposal, epoch 0's rewards), in Debian's chromium:
- Lighthouse 12.2.3 (npm, `--preset=desktop`, its default simulated throttling) on the owner,
  buyer and holder views, each opened at `/?as=N#view` (the dev wallet signs account N in);
  `--runs` runs each, the median score of each category is reported with its spread;
- axe-core 4.10 injected through Playwright into each view (the owner's first card open):
  violations by impact;
- the owner view of 8 vehicles, `--runs` times in a fresh page: `owner_view_requests` counts
  every request (API and chain RPC) from clicking Refresh until the view is drawn, and
  `owner_view_ms` is the time from the click until the overview is painted (the next animation
  frame after the view is in the DOM); `owner_view_first_load_ms` is from navigation through
  sign-in to the same paint.

The load average is read before each run. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The views and the dev account each is opened as (stack/demo.py's roles).
VIEWS = {"owner": 2, "buyer": 5, "holder": 6}
CATEGORIES = ("performance", "accessibility", "best-practices")
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DemoRun:
    """A running `dimo stack run` with its demo seeded: where to reach it, what it printed."""

    api: str
    rpc: str
    data: Path
    output: list[str]


@contextmanager
def demo_run(data: Path, vehicles: int, timeout_s: float = 900) -> Iterator[DemoRun]:
    """`dimo stack run` (the command behind `make run`, demo on) on free loopback ports with
    `vehicles` simulated vehicles driving a day of history at 8,000x, until its demo is seeded;
    stopped with Ctrl-C (SIGINT) after.

    Raises:
        RuntimeError: the platform failed or the demo was not seeded within `timeout_s`.
    """
    api_port, anvil_port = free_port(), free_port()
    env = {
        **os.environ,
        "DIMO_STACK_DATA_DIR": str(data),
        "DIMO_STACK_ANVIL_PORT": str(anvil_port),
        "DIMO_STACK_ORACLE_PORT": str(free_port()),
        "DIMO_STACK_INDEXER_PORT": str(api_port),
        "DIMO_STACK_SIGNER_PORTS": json.dumps([free_port() for _ in range(3)]),
        "DIMO_STACK_CERTIFIER_PORT": str(free_port()),
        "DIMO_STACK_TRIGGERS_PORT": str(free_port()),
        "DIMO_STACK_ATTESTATION_PORT": str(free_port()),
        "DIMO_STACK_FLEET_VEHICLES": str(vehicles),
        "DIMO_STACK_HISTORY_DAYS": "1",
        "DIMO_STACK_TIME_FACTOR": "8000",
        "DIMO_STACK_FLEET_RATE_SCALE": "0.02",
        "DIMO_STACK_FLEET_WINDOW_S": "300",
        "DIMO_STACK_FLEET_LIVE": "false",
        "DIMO_STACK_BATCH_INTERVAL_S": "3",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack", "stack", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    finished = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith(("demo epoch 0 rewards", "demo nothing left", "demo failed")):
                finished.set()
            if line.startswith("error"):
                finished.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not finished.wait(timeout_s):
            raise RuntimeError(
                f"the demo was not seeded in {timeout_s:.0f} s:\n" + "\n".join(lines[-40:])
            )
        if any(line.startswith(("demo failed", "error")) for line in lines):
            raise RuntimeError("the platform failed:\n" + "\n".join(lines[-40:]))
        yield DemoRun(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{anvil_port}", data, lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()


def lighthouse(url: str, out: Path) -> dict[str, float]:
    """One Lighthouse run of `url` in Debian's chromium: each category's score (0-100)."""
    done = subprocess.run(
        [
            str(LIGHTHOUSE),
            url,
            "--preset=desktop",
            "--quiet",
            "--output=json",
            f"--output-path={out}",
            f"--only-categories={','.join(CATEGORIES)}",
            "--chrome-flags=--headless=new --no-sandbox",
            "--max-wait-for-load=60000",
        ],
        env={**os.environ, "CHROME_PATH": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"lighthouse failed on {url}: {done.stderr[-1500:]}")
    report = json.loads(out.read_text())
    return {c: round(report["categories"][c]["score"] * 100) for c in CATEGORIES}


def owner_view(browser: Any, api: str) -> dict[str, Any]:
    """One fresh page of the owner view: first load and a refresh, with their requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        started = time.monotonic()
        page.goto(f"{api}/?as={VIEWS['owner']}#owner")
        page.wait_for_selector("#overview", timeout=TIMEOUT_MS)
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => r()))")
        first_ms = (time.monotonic() - started) * 1000
        page.wait_for_selector("#view-owner:not([data-loading])", timeout=TIMEOUT_MS)
        cards = page.locator("#vehicles details.vehicle").count()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        started = time.monotonic()
        page.click("#refresh")
        page.wait_for_function(
            "() => document.querySelector('#view-owner:not([data-loading]) #overview')",
            timeout=TIMEOUT_MS,
        )
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => r()))")
        view_ms = (time.monotonic() - started) * 1000
        return {"first_ms": first_ms, "view_ms": view_ms, "requests": requests, "cards": cards}
    finally:
        context.close()


def axe(browser: Any, api: str) -> dict[str, dict[str, int]]:
    """axe-core's violations on each view, counted by impact."""
    counts: dict[str, dict[str, int]] = {}
    for view, account in VIEWS.items():
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto(f"{api}/?as={account}#{view}")
            page.wait_for_selector(f"#view-{view}:not([data-loading])", timeout=TIMEOUT_MS)
            if view == "owner":
                page.locator("details.vehicle summary").first.click()
            page.add_script_tag(path=str(AXE))
            found = page.evaluate("async () => (await axe.run(document)).violations")
            by_impact: dict[str, int] = {}
            for v in found:
                by_impact[v["impact"]] = by_impact.get(v["impact"], 0) + len(v["nodes"])
            counts[view] = by_impact
        finally:
            context.close()
    return counts


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--vehicles", type=int, default=24, help="simulated vehicles")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists() or not LIGHTHOUSE.exists():
        raise SystemExit(f"needs {CHROMIUM} and {LIGHTHOUSE}: run `make install`")
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="bench-dapp-"))
    result: dict[str, Any] = {"runs": args.runs, "vehicles": args.vehicles}
    try:
        with demo_run(data, args.vehicles) as run, sync_playwright() as p:
            api = run.api
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            loads: list[list[float]] = []
            views = []
            for _ in range(args.runs):
                loads.append([round(x, 2) for x in os.getloadavg()])
                views.append(owner_view(browser, api))
            result["owner_view_cards"] = views[-1]["cards"]
            result["owner_view_requests"] = max(len(v["requests"]) for v in views)
            result["owner_view_request_urls"] = sorted(
                {u.split("?")[0] for u in views[-1]["requests"]}
            )
            result["owner_view_ms"] = spread([v["view_ms"] for v in views])
            result["owner_view_first_load_ms"] = spread([v["first_ms"] for v in views])
            result["load_before_owner_runs"] = loads
            result["axe_violations_by_impact"] = axe(browser, api)
            result["axe_serious_or_critical"] = sum(
                n
                for counts in result["axe_violations_by_impact"].values()
                for impact, n in counts.items()
                if impact in ("serious", "critical")
            )
            browser.close()
            scores: dict[str, dict[str, Any]] = {}
            for view, account in VIEWS.items():
                runs = []
                for i in range(args.runs):
                    load = [round(x, 2) for x in os.getloadavg()]
                    out = data / f"lighthouse-{view}-{i}.json"
                    runs.append((load, lighthouse(f"{api}/?as={account}#{view}", out)))
                scores[view] = {c: spread([float(r[c]) for _, r in runs]) for c in CATEGORIES} | {
                    "load_before": [load for load, _ in runs]
                }
            result["lighthouse"] = scores
            reports = ROOT / "artifacts" / "lighthouse"
            reports.mkdir(parents=True, exist_ok=True)
            for report in data.glob("lighthouse-*-0.json"):
                shutil.copy(report, reports / report.name)
            result["lighthouse_reports"] = str(reports)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    targets = {
        "performance": min(s["performance"]["median"] for s in result["lighthouse"].values()),
        "accessibility": min(s["accessibility"]["median"] for s in result["lighthouse"].values()),
        "best-practices": min(s["best-practices"]["median"] for s in result["lighthouse"].values()),
    }
    result["targets_met"] = {
        "performance>=90": targets["performance"] >= 90,
        "accessibility>=95": targets["accessibility"] >= 95,
        "best_practices>=95": targets["best-practices"] >= 95,
        "axe_serious_or_critical==0": result["axe_serious_or_critical"] == 0,
        "owner_view_requests<=10": result["owner_view_requests"] <= 10,
        "owner_view_ms<=1000": result["owner_view_ms"]["median"] <= 1000,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
