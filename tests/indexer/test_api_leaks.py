"""No route hands a caller a value of a signal its rights do not cover (issue 17).

One vehicle sends a signal of every readable privilege (and one outside the catalog, RAW) in
the same bundles, of schema 1 (proved only whole) or schema 2 (opened signal by signal).
Then every route that returns reading values (telemetry reads, proofs, `POST /apps/proofs`,
the insurance export, the application answers that echo readings) is asked as the owner, as
a caller without rights, and as a grantee of each single scope; no response body may hold a
value of a signal outside the caller's scopes, looked for as JSON numbers and text and inside
hex blobs (a bundle's wire, an opening's samples). Position is looked for by value: any number
in the area the vehicle drove in, not only the exact samples. With schema-2 bundles each scope
alone must also get the per-signal proofs of its own signals.
"""

# The fixtures come from the loader and insurance tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from indexer.rights import signal_privilege
from protocol.eip712 import Eip712Domain
from protocol.privileges import Privilege
from tests.apps.test_insurance import ServedWorld, served_world
from tests.conftest import FAR_FUTURE, TERMS_CID
from tests.indexer.leaks import LAT, LON, latitude, longitude, position_found, values_found
from tests.indexer.test_api_telemetry import advance, head_s
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)

__all__ = ["served_world"]

Fleet = tuple[list[tuple[int, Any]], int]
TRACTION = "Vehicle.Powertrain.TractionBattery."
SPEED = "Vehicle.Speed"
IGNITION = "Vehicle.LowVoltageSystemState"
VIN_SIGNAL = "Vehicle.VehicleIdentification.VIN"
RAW_SIGNAL = "Vehicle.Private.Frame2A1"
VIN_TEXT = "KMHK381GFKU0LEAK7"
SECONDS = 600
#: Every signal sent: name -> (seconds between samples, value of sample i). Numbers are
#: distinctive (no other field of an answer falls on them); booleans and ignition text are
#: sent too but cannot be looked for by value.
SENT: dict[str, tuple[int, Callable[[int], Any]]] = {
    SPEED: (1, lambda i: 61.370913 + (i % 40) * 0.731177),
    IGNITION: (10, lambda i: "ON"),
    LAT: (5, latitude),
    LON: (5, longitude),
    TRACTION + "StateOfCharge.Current": (5, lambda i: 72.913407 - i * 0.011371),
    TRACTION + "CurrentCurrent": (5, lambda i: -41.337219 + i * 0.007113),
    TRACTION + "CurrentVoltage": (5, lambda i: 391.173301 - i * 0.009317),
    TRACTION + "Temperature.Min": (5, lambda i: 21.417733 + i * 0.003119),
    TRACTION + "Temperature.Max": (5, lambda i: 27.631559 + i * 0.002917),
    TRACTION + "Charging.IsCharging": (5, lambda i: True),
    TRACTION + "Charging.IsChargingCableConnected": (5, lambda i: True),
    TRACTION + "Charging.Power": (5, lambda i: 7.219347 + i * 0.001313),
    "Vehicle.TraveledDistance": (10, lambda i: 12345.678123 + i * 0.041719),
    VIN_SIGNAL: (60, lambda i: VIN_TEXT),
    RAW_SIGNAL: (5, lambda i: 4321.098761 + i * 0.013107),
}
#: Signals whose values cannot be looked for (booleans, "ON"): they appear in any answer.
INDISTINCT = frozenset(
    {IGNITION, TRACTION + "Charging.IsCharging", TRACTION + "Charging.IsChargingCableConnected"}
)
#: The callers: the owner, one without rights, and a grantee of each single scope.
ROLES = ["owner", "no rights", *(p.name for p in Privilege)]
#: The bundle schemas the vehicle sends.
SCHEMAS = [1, 2]


def drive(t0: int) -> dict[str, list[tuple[int, Any]]]:
    return {
        name: [(t0 + s * 1000, value(i)) for i, s in enumerate(range(0, SECONDS, step))]
        for name, (step, value) in SENT.items()
    }


@dataclass
class Scene:
    """The caller's role, the vehicle, its samples and bundles, and a client signed in as the
    role."""

    role: str
    schema: int
    car: int
    t0: int
    samples: dict[str, list[tuple[int, Any]]]
    anchored: Anchored
    client: httpx.Client


@pytest.fixture(params=SCHEMAS, ids=lambda n: f"schema {n}")
def schema(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(params=ROLES)
def scene(
    schema: int,
    request: pytest.FixtureRequest,
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> Iterator[Scene]:
    world = served_world
    (car, key), t0 = fleet[0][0], fleet[1]
    samples = drive(t0)
    anchored = anchor_bundles(windowed_bundles(key, car, samples, domain, schema=schema))
    role = str(request.param)
    if role in Privilege.__members__:
        grant = int(Privilege[role])
        vehicle_rights.grant(car, stranger, grant, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(SECONDS + 100)
    world.sync()
    world.at(head_s() * 1000)
    with world.client(owner if role == "owner" else stranger) as client:
        yield Scene(role, schema, car, t0, samples, anchored, client)


def scopes_of(role: str) -> set[str]:
    if role == "owner":
        return {p.name for p in Privilege}
    return {role} if role in Privilege.__members__ else set()


def value_routes(s: Scene) -> Iterator[tuple[str, httpx.Response]]:
    """Every route that returns reading values, asked about the scene's vehicle and window."""
    c, car = s.client, s.car
    window = {"start": s.t0, "end": s.t0 + SECONDS * 1000}
    names = list(SENT)
    for name in names:
        yield f"signal {name}", c.get(f"/vehicles/{car}/signals/{name}", params=window)
        page = {**window, "signal": name, "limit": 100}
        yield f"readings {name}", c.get(f"/vehicles/{car}/readings", params=page)
        ts = s.samples[name][1][0]
        yield f"proof {name}", c.get(f"/vehicles/{car}/signals/{name}/readings/{ts}/proof")
    yield "series", c.get(f"/vehicles/{car}/series", params={**window, "signal": names})
    yield "latest", c.get(f"/vehicles/{car}/latest")
    yield "trips", c.get(f"/vehicles/{car}/trips", params=window)
    yield "charging sessions", c.get(f"/vehicles/{car}/charging-sessions", params=window)
    for leaf in range(len(s.anchored.bundles)):
        body = {"vehicle_id": car, "inputs": [[s.anchored.batch.id, leaf]]}
        yield f"apps proofs {leaf}", c.post("/apps/proofs", json=body)
    yield "insurance score", c.get(f"/apps/insurance/{car}/score", params=window)
    yield "insurance export", c.get(f"/apps/insurance/{car}/export", params=window)
    yield "battery", c.get(f"/apps/battery/{car}", params=window)
    yield "battery certificate", c.get(f"/apps/battery/{car}/certificate", params=window)
    yield "battery fleet", c.get("/apps/battery/fleet", params=window)
    yield "finance", c.get(f"/apps/finance/{car}", params=window)
    yield "energy sessions", c.get(f"/apps/energy/{car}/sessions", params=window)


def test_no_route_returns_a_value_of_a_signal_the_caller_may_not_read(scene: Scene) -> None:
    scopes = scopes_of(scene.role)
    uncovered = [n for n in SENT if signal_privilege(n).name not in scopes]
    hidden = [v for n in uncovered if n not in INDISTINCT for _, v in scene.samples[n]]
    lats = [v for _, v in scene.samples[LAT]] if LAT in uncovered else []
    lons = [v for _, v in scene.samples[LON]] if LON in uncovered else []
    leaks: list[str] = []
    statuses: dict[str, int] = {}
    bodies: dict[str, str] = {}
    for route, r in value_routes(scene):
        statuses[route], bodies[route] = r.status_code, r.text
        found = values_found(r.text, hidden)
        if lats:
            found += position_found(r.text, lats, lons)
        if found:
            leaks.append(f"{route} ({r.status_code}): {found[:3]}")
    assert leaks == []
    assert {code for code in statuses.values()} <= {200, 400, 403, 404}, statuses
    # Not vacuous: every signal the role covers is served to it with its values, and the
    # owner gets every route and every bundle whole.
    for name in SENT:
        if name in uncovered:
            assert statuses[f"readings {name}"] == 403, name
            continue
        assert statuses[f"readings {name}"] == 200, name
        if name not in INDISTINCT:
            readable = [v for _, v in scene.samples[name]]
            assert values_found(bodies[f"readings {name}"], readable), name
    if not uncovered:
        assert [k for k, v in statuses.items() if v != 200 and k != "battery certificate"] == []
        for name in set(SENT) - INDISTINCT:
            second = scene.samples[name][1][1]
            assert values_found(bodies[f"proof {name}"], [second]), name
    if scene.schema == 2:
        assert_per_signal_proofs(scene, statuses, bodies, uncovered)


def assert_per_signal_proofs(
    scene: Scene, statuses: dict[str, int], bodies: dict[str, str], uncovered: list[str]
) -> None:
    """Schema 2: every signal the role covers has its reading proof, opening that signal alone
    (its value in it), and `POST /apps/proofs` opens exactly the covered signals; the whole
    bundle goes only to a caller covering every signal."""
    covered = [n for n in SENT if n not in uncovered]
    for name in SENT:
        route = f"proof {name}"
        if name in uncovered:
            assert statuses[route] == 403, route
            continue
        assert statuses[route] == 200, (route, bodies[route][:300])
        body = json.loads(bodies[route])
        assert body["schema_version"] == 2
        assert body["opening"]["name"] == name
        assert {c["name"] for c in body["commitments"]} == set(SENT)
        assert (body["bundle_wire"] is None) is bool(uncovered)
        if name not in INDISTINCT:
            assert values_found(body["opening"]["samples"], [scene.samples[name][1][1]]), name
    for leaf in range(len(scene.anchored.bundles)):
        route = f"apps proofs {leaf}"
        if not covered:  # no rights: 403 before any lookup; rights covering none: not found
            assert statuses[route] == (403 if scene.role == "no rights" else 404), route
            continue
        assert statuses[route] == 200, (route, bodies[route][:300])
        (item,) = json.loads(bodies[route])["bundles"]
        assert sorted(o["name"] for o in item["openings"]) == sorted(covered)
        assert (item["bundle_wire"] is None) is bool(uncovered)
