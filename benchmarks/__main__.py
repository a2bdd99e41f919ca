"""Runs every benchmark (`make bench`) and prints their figures as one table.

Each benchmark is a script in this folder whose last line of output is one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
#: In the order the platform's data flows; scripts not written yet are skipped.
ORDER = ("gas", "bridge", "oracle", "indexer", "rewards", "apps", "attestations", "stack", "dapp")


def run(name: str) -> dict[str, object]:
    """Runs `benchmarks/<name>.py` and parses its last line."""
    proc = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py")], capture_output=True, text=True, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"benchmark {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    figures = json.loads(lines[-1])
    if not isinstance(figures, dict):
        raise SystemExit(f"benchmark {name}: last line is not a JSON object")
    return figures


def main() -> None:
    """Runs the benchmarks that exist and prints one table."""
    console = Console()
    table = Table(title="benchmarks")
    table.add_column("benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    everything: dict[str, dict[str, object]] = {}
    for name in ORDER:
        if not (HERE / f"{name}.py").exists():
            continue
        with console.status(f"running {name}"):
            figures = run(name)
        everything[name] = figures
        for key, value in figures.items():
            shown = f"{value:,}" if isinstance(value, int) else str(value)
            table.add_row(name, key, shown)
    console.print(table)
    print(json.dumps(everything))


if __name__ == "__main__":
    main()
