"""Geometric regions (GeoJSON areas), point in polygon, and placing a vehicle by its
verified position."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Any, Final

from apps.energy.params import EnergyParams
from protocol.readings import Reading

#: Method version of the placement of vehicles in geometric regions.
PLACEMENT_VERSION: Final = "dimo-geo-placement-v1"
#: The position signals (LOCATION).
LATITUDE: Final = "Vehicle.CurrentLocation.Latitude"
LONGITUDE: Final = "Vehicle.CurrentLocation.Longitude"
POSITION_SIGNALS: Final = (LATITUDE, LONGITUDE)
#: Most vertices a published geometric region may have, over all its rings.
MAX_AREA_VERTICES: Final = 20_000

#: A ring of `(longitude, latitude)` vertices, closed (the first vertex repeated last).
Ring = tuple[tuple[float, float], ...]


def _coordinate(value: Any, low: float, high: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {value!r} is not a number")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{where}: {value!r} is not in [{low}, {high}]")
    return number


def _ring(raw: Any, where: str) -> Ring:
    if not isinstance(raw, list) or len(raw) < 4:
        raise ValueError(f"{where}: a linear ring is a list of at least 4 positions")
    out = []
    for i, position in enumerate(raw):
        if not isinstance(position, list) or not 2 <= len(position) <= 3:
            raise ValueError(f"{where}[{i}]: a position is [longitude, latitude(, altitude)]")
        lon = _coordinate(position[0], -180.0, 180.0, f"{where}[{i}][0] (longitude)")
        lat = _coordinate(position[1], -90.0, 90.0, f"{where}[{i}][1] (latitude)")
        out.append((lon, lat))
    if out[0] != out[-1]:
        raise ValueError(f"{where}: the ring is not closed (its last position must be its first)")
    if len(set(out)) < 3:
        raise ValueError(f"{where}: the ring has fewer than 3 distinct positions")
    return tuple(out)


@dataclass(frozen=True)
class GeoArea:
    """A geometric grid region: polygons of WGS 84 `(longitude, latitude)` rings.

    Attributes:
        polygons: Each polygon's exterior ring first, then its holes.
    """

    polygons: tuple[tuple[Ring, ...], ...]

    @classmethod
    def from_geojson(cls, data: Any) -> GeoArea:
        """The area of a GeoJSON Polygon or MultiPolygon geometry (or a Feature holding one).

        Raises:
            ValueError: not such a geometry, a ring not closed or too short, a coordinate out
                of range, or more than `MAX_AREA_VERTICES` vertices.
        """
        if isinstance(data, dict) and data.get("type") == "Feature":
            data = data.get("geometry")
        if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError("a GeoJSON Polygon or MultiPolygon geometry is required")
        coords = data.get("coordinates")
        polys = [coords] if data["type"] == "Polygon" else coords
        if not isinstance(polys, list) or not polys:
            raise ValueError("coordinates: at least one polygon is required")
        out = []
        for p, rings in enumerate(polys):
            if not isinstance(rings, list) or not rings:
                raise ValueError(f"coordinates[{p}]: a polygon is a non-empty list of rings")
            out.append(tuple(_ring(r, f"coordinates[{p}][{k}]") for k, r in enumerate(rings)))
        area = cls(tuple(out))
        if area.vertices() > MAX_AREA_VERTICES:
            raise ValueError(f"the area has more than {MAX_AREA_VERTICES} vertices")
        return area

    def vertices(self) -> int:
        """How many positions the rings hold."""
        return sum(len(r) for rings in self.polygons for r in rings)

    def as_geojson(self) -> dict[str, Any]:
        """The area as a GeoJSON MultiPolygon (or Polygon, when it has one polygon)."""
        polys = [[[list(v) for v in ring] for ring in rings] for rings in self.polygons]
        if len(polys) == 1:
            return {"type": "Polygon", "coordinates": polys[0]}
        return {"type": "MultiPolygon", "coordinates": polys}

    def bbox(self) -> list[float]:
        """`[west, south, east, north]` of the exterior rings."""
        xs = [x for rings in self.polygons for x, _ in rings[0]]
        ys = [y for rings in self.polygons for _, y in rings[0]]
        return [min(xs), min(ys), max(xs), max(ys)]

    def contains(self, lon: float, lat: float) -> bool:
        """Whether the point is in the area: in some polygon's exterior ring and in none of its
        holes; a point on any ring counts as inside."""
        for rings in self.polygons:
            outer = _ring_side(rings[0], lon, lat)
            if outer < 0:
                continue
            if outer == 0:
                return True
            sides = [_ring_side(hole, lon, lat) for hole in rings[1:]]
            if all(side <= 0 for side in sides):
                return True
        return False


def _ring_side(ring: Ring, x: float, y: float) -> int:
    """1 if `(x, y)` is inside the ring (even-odd rule), 0 on it, -1 outside; exact."""
    inside = False
    px, py = Fraction(x), Fraction(y)
    for (ax, ay), (bx, by) in pairwise(ring):
        in_box = min(ax, bx) <= x <= max(ax, bx) and min(ay, by) <= y <= max(ay, by)
        straddles = (ay > y) != (by > y)
        if not (in_box or straddles):
            continue
        fax, fay = Fraction(ax), Fraction(ay)
        cross = (Fraction(bx) - fax) * (py - fay) - (px - fax) * (Fraction(by) - fay)
        if in_box and cross == 0:
            return 0
        # The edge crosses the horizontal line through the point right of it.
        if straddles and (cross > 0) == (by > ay):
            inside = not inside
    return 1 if inside else -1


@dataclass(frozen=True)
class Placement:
    """Where one vehicle was placed for a window, and how.

    Attributes:
        vehicle_id: The vehicle.
        method: `position` (its position fix) or `declared` (its owner's declaration).
        inside: Whether it is in the region.
        at_ms: The instant it was placed at: its first charging reading in the window, else
            the window start (None for a declaration).
        fix_ms: Time of the position fix used (None for a declaration).
        inputs: `[batch_id, leaf_index]` of the readings behind it: the latitude and longitude
            of the fix, and the charging reading that set `at_ms` if one did.
    """

    vehicle_id: int
    method: str
    inside: bool
    at_ms: int | None
    fix_ms: int | None
    inputs: list[list[int]]


def placement_instant(is_charging: Sequence[Reading], start_ms: int, end_ms: int) -> int:
    """Where the load is: the first `IsCharging` true reading in `[start_ms, end_ms)`, else
    `start_ms`."""
    for r in is_charging:
        if start_ms <= r.ts < end_ms and float(r.value) != 0:
            return r.ts
    return start_ms


def latest_fix(
    lat: Sequence[Reading], lon: Sequence[Reading], at_ms: int, max_age_ms: int
) -> tuple[Reading, Reading] | None:
    """The latest (latitude, longitude) pair of readings at one time in `[at_ms - max_age_ms,
    at_ms]`; of several at that time, the one of the latest bundle. None if there is none."""
    lons: dict[int, Reading] = {}
    for r in lon:
        if at_ms - max_age_ms <= r.ts <= at_ms:
            lons[r.ts] = max(r, lons.get(r.ts, r), key=lambda x: (x.batch_id, x.leaf_index))
    best: tuple[Reading, Reading] | None = None
    for r in lat:
        if r.ts not in lons:
            continue
        if best is None or (r.ts, r.batch_id, r.leaf_index) > (
            best[0].ts,
            best[0].batch_id,
            best[0].leaf_index,
        ):
            best = (r, lons[r.ts])
    return best


def place_by_position(
    vehicle_id: int,
    area: GeoArea,
    lat: Sequence[Reading],
    lon: Sequence[Reading],
    is_charging: Sequence[Reading],
    start_ms: int,
    end_ms: int,
    params: EnergyParams,
) -> Placement | None:
    """A vehicle's placement in `area` for `[start_ms, end_ms)` from its verified positions.

    Args:
        vehicle_id: The vehicle.
        area: The geometric region.
        lat: `CurrentLocation.Latitude` readings (degrees), sorted.
        lon: `CurrentLocation.Longitude` readings (degrees), sorted.
        is_charging: `Charging.IsCharging` readings in the window that the caller may read
            (none: the vehicle is placed at the window start).
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        params: `position_max_age_s` is used.

    Returns:
        The placement (method `position`), or None when no fix is recent enough.
    """
    at = placement_instant(is_charging, start_ms, end_ms)
    fix = latest_fix(lat, lon, at, int(params.position_max_age_s * 1000))
    if fix is None:
        return None
    refs = {(fix[0].batch_id, fix[0].leaf_index), (fix[1].batch_id, fix[1].leaf_index)}
    refs |= {(r.batch_id, r.leaf_index) for r in is_charging if r.ts == at and float(r.value)}
    inside = area.contains(float(fix[1].value), float(fix[0].value))
    return Placement(vehicle_id, "position", inside, at, fix[0].ts, [list(x) for x in sorted(refs)])


def declared_placement(vehicle_id: int) -> Placement:
    """A vehicle placed in the region by its owner's declaration of the region's name."""
    return Placement(vehicle_id, "declared", True, None, None, [])


def placement_record(
    region_id: int,
    name: str,
    area: GeoArea,
    placements: Sequence[Placement],
    withheld: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """How the vehicles of a geometric region were placed, as a result carries it."""
    return {
        "version": PLACEMENT_VERSION,
        "region_id": region_id,
        "name": name,
        "geometry": area.as_geojson(),
        "vehicles": [asdict(p) for p in sorted(placements, key=lambda p: p.vehicle_id)],
        "withheld": list(withheld),
    }
