"""`GET /overview`: the signed-in owner's vehicles in one answer, each part the same as the
per-vehicle route gives it, over real chain rights and anchored batches (SQLite and
PostgreSQL)."""

# The fixtures come from the loader and telemetry tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.eip712 import Eip712Domain
from tests.indexer.test_api_telemetry import (
    Anchored,
    Fleet,
    World,
    advance,
    anchor_bundles,  # noqa: F401
    assert_problem,
    deployment,  # noqa: F401
    domain,  # noqa: F401
    drive_samples,
    fleet,  # noqa: F401
    head_s,
    load,
    now_ms,  # noqa: F401
    store,  # noqa: F401
    world,  # noqa: F401
)


def test_the_overview_gives_each_owned_vehicle_as_the_per_vehicle_routes_do(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    load(world, anchor_bundles, domain, key, car, drive_samples(t0, t0 + 600_000))
    advance(700)
    world.sync()
    world.at(head_s() * 1000)
    with world.client(owner) as mine:
        r = mine.get("/overview")
        assert r.status_code == 200, r.text
        body = r.json()
        entry = next(v for v in body["vehicles"] if v["vehicle"]["id"] == car)
        assert body["owner"] == owner.address
        assert body["more"] is False
        assert {v["vehicle"]["owner"] for v in body["vehicles"]} == {owner.address}
        assert entry["vehicle"] == mine.get(f"/vehicles/{car}").json()
        assert entry["latest"] == mine.get(f"/vehicles/{car}/latest").json()
        assert entry["latest"]["values"], "the owner reads its vehicle's latest values"
        assert entry["grants"] == mine.get(f"/vehicles/{car}/grants").json()["items"]
        opt_ins = mine.get(f"/vehicles/{car}/opt-ins", params={"active": True}).json()
        assert entry["opt_ins"] == opt_ins["items"]
        assert entry["rewards"] == mine.get(f"/vehicles/{car}/rewards").json()["items"]
        assert entry["revenue"] == mine.get(f"/vehicles/{car}/revenue").json()["items"]
        devices = mine.get("/devices", params={"owner": owner.address}).json()["items"]
        assert body["devices"] == devices


def test_a_caller_who_owns_nothing_gets_an_empty_overview_and_anonymous_gets_a_401(
    world: World, fleet: Fleet, stranger: Any
) -> None:
    world.sync()
    with world.client(stranger) as theirs:
        body = theirs.get("/overview").json()
    assert body["vehicles"] == []
    assert body["devices"] == []
    with world.anonymous() as anonymous:
        assert_problem(anonymous.get("/overview"), 401, "token-missing")
