"""docs/bridge.md agrees with the code it documents: the catalog table and the mapping keys."""

from __future__ import annotations

import re
from pathlib import Path

from device_bridge.mapping import _SIGNAL_KEYS, CONVERSIONS
from protocol.vss import CATALOG

DOC = (Path(__file__).resolve().parents[2] / "docs" / "bridge.md").read_text(encoding="utf-8")


def test_the_documented_catalog_is_the_catalog() -> None:
    rows = re.findall(
        r"^\| `([A-Za-z0-9.]+)`( \(ext\))? \| (\w+) \| ([^|]+) \| ([^|]+) \|$", DOC, re.M
    )
    documented = {
        path: (ext != "", dt, unit.strip(), rng.strip()) for path, ext, dt, unit, rng in rows
    }
    expected = {}
    for s in CATALOG.values():
        rng = "-" if s.min is None else f"{s.min:g}..{s.max:g}"
        expected[s.path] = (s.extension, s.datatype.value, s.unit or "-", rng)
    assert documented == expected


def test_every_mapping_key_and_conversion_is_documented() -> None:
    section = DOC.split("## Add your car", 1)[1].split("## Windows", 1)[0]
    for key in _SIGNAL_KEYS:
        assert f"`{key}`" in section, key
    for name in CONVERSIONS:
        assert f"`{name}`" in section, name
