"""Telemetry and proof routes over real chain rights: anvil actions, anchored batches synced
into SQLite and PostgreSQL, the API served by uvicorn, callers signed in with SIWE.

Each test acts on the chain (grant, revoke, list, opt in/out, buy, transfer), anchors signed
bundles with the oracle quorum, syncs a fresh index with the `Syncer` (which loads the
batches), and asks the API as the owner, grantees, buyers and strangers would.
"""

# The fixtures come from the loader tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from fastapi import FastAPI
from siwe import SiweMessage
from sqlalchemy import Engine

from indexer.api.main import create_app
from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.queries import ODOMETER, trips
from indexer.sync import Syncer
from protocol.blobstore import LocalCidStore
from protocol.bundle import decode_signed_bundle, verify_bundle
from protocol.eip712 import Eip712Domain
from tests.conftest import FAR_FUTURE, TERMS_CID, make_device_key, private_key
from tests.indexer.test_api_basics import Served
from tests.indexer.test_loader import (  # fixtures are shared with the loader tests
    IGNITION,
    SOC,
    SPEED,
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)
from tests.indexer.test_sync import fresh_db

PROBLEMS = "https://dimo.local/problems/"
DOMAIN = "127.0.0.1:8700"
URI = "http://127.0.0.1:8700"
LAT = "Vehicle.CurrentLocation.Latitude"
IS_CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
DRIVING, LOCATION, ODOMETER_BIT, BATTERY = 1 << 3, 1 << 4, 1 << 2, 1 << 0
PRICE = 10**18
Fleet = tuple[list[tuple[int, LocalAccount]], int]
Samples = dict[str, list[tuple[int, Any]]]


# -------------------------------------------------------------------------------------------
# chain time
# -------------------------------------------------------------------------------------------


def head_s() -> int:
    from ape import chain

    return int(chain.blocks.head.timestamp)


def advance(seconds: int) -> None:
    """Mines a block `seconds` after the head."""
    from ape import chain

    chain.mine(deltatime=seconds)


def block_ms(tx: Any) -> int:
    """The time of `tx`'s block, unix ms."""
    from ape import chain

    return int(chain.blocks[tx.block_number].timestamp) * 1000


def every(start_ms: int, end_ms: int, step_ms: int, value: Callable[[int], Any]) -> list[Any]:
    return [(t, value(i)) for i, t in enumerate(range(start_ms, end_ms, step_ms))]


def drive_samples(start_ms: int, end_ms: int) -> Samples:
    """Speed every 2 s, latitude every 10 s, state of charge every 20 s."""
    return {
        SPEED: every(start_ms, end_ms, 2_000, lambda i: float(20 + i % 50)),
        LAT: every(start_ms, end_ms, 10_000, lambda i: 48.1 + i * 1e-4),
        SOC: every(start_ms, end_ms, 20_000, lambda i: 80.0 - i * 0.1),
    }


def inside(samples: list[tuple[int, Any]], start_ms: int, end_ms: int) -> list[tuple[int, Any]]:
    return [(t, v) for t, v in samples if start_ms <= t < end_ms]


# -------------------------------------------------------------------------------------------
# the API over a synced index
# -------------------------------------------------------------------------------------------


class Clock:
    """The API's clock (unix seconds), set by the tests to follow the chain."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """A fresh index synced from the chain and the API serving it."""

    url: str
    engine: Engine
    base_url: str
    clock: Clock
    store: LocalCidStore
    rpc_url: str
    deployment_record: Path

    def sync(self) -> None:
        """Backfills the index to the chain's head, loading every anchored batch."""
        settings = IndexerSettings(
            database_url=self.url,
            rpc_url=self.rpc_url,
            deployment=self.deployment_record,
            pending_retry_s=0,
        )
        syncer = Syncer(settings, store=self.store)
        try:
            syncer.backfill()
        finally:
            syncer.close()

    def at(self, ms: int) -> None:
        """Sets the API's clock to `ms` (unix ms)."""
        self.clock.now = ms / 1000

    @contextmanager
    def client(self, account: Any) -> Iterator[httpx.Client]:
        """A client signed in with Sign-In with Ethereum as `account` (an Ape test account)."""
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            self._sign_in(client, account)
            yield client

    def _sign_in(self, client: httpx.Client, account: Any) -> None:
        wallet = Account.from_key(private_key(account))
        nonce = client.get("/auth/nonce").json()["nonce"]
        message = SiweMessage(
            domain=DOMAIN,
            address=wallet.address,
            uri=URI,
            version="1",
            chain_id=31337,
            issued_at=datetime.fromtimestamp(self.clock.now, UTC).isoformat(),
            nonce=nonce,
        ).prepare_message()
        sig = wallet.sign_message(encode_defunct(text=message)).signature.hex()
        r = client.post(
            "/auth/login",
            json={"message": message, "signature": sig if sig.startswith("0x") else "0x" + sig},
        )
        assert r.status_code == 200, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


@contextmanager
def served_world(
    kind: str,
    tmp_path: Path,
    store: LocalCidStore,
    rpc_url: str,
    deployment_record: Path,
    *,
    knows_chain: bool = False,
    mount: Callable[[FastAPI], None] | None = None,
) -> Iterator[World]:
    """A fresh `kind` index and the API serving it; `knows_chain` gives the API the chain and
    the deployment (for the routes that read them, e.g. the token exchange); `mount` adds
    routes to the app before it is served."""
    url, drop = fresh_db(kind, tmp_path)
    engine = make_engine(url)
    clock = Clock(head_s())
    config = IndexerSettings(
        siwe_domain=DOMAIN,
        siwe_uri=URI,
        siwe_chain_id=31337,
        jwt_secret="t" * 32,
        jwt_ttl_s=10**8,
        session_max_s=10**8,
        rate_limit_per_minute=0,
        **({"rpc_url": rpc_url, "deployment": deployment_record} if knows_chain else {}),
    )
    try:
        app = create_app(config, engine, clock=clock)
        if mount is not None:
            mount(app)
        with Served(app) as served:
            yield World(url, engine, served.url, clock, store, rpc_url, deployment_record)
    finally:
        engine.dispose()
        drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store: LocalCidStore,
    rpc_url: str,
    deployment_record: Path,
) -> Iterator[World]:
    with served_world(str(request.param), tmp_path, store, rpc_url, deployment_record) as w:
        yield w


def load(
    world: World,
    anchor_bundles: Callable[..., Anchored],
    domain: Eip712Domain,
    key: LocalAccount,
    car: int,
    samples: Samples,
    first_sequence: int = 0,
) -> Anchored:
    """Anchors the samples as 60 s bundles signed by `key` for `car` (synced later)."""
    return anchor_bundles(
        windowed_bundles(key, car, samples, domain, first_sequence=first_sequence)
    )


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    return body


def series(
    client: httpx.Client, car: int, signal: str, start: int, end: int, **params: Any
) -> httpx.Response:
    return client.get(
        f"/vehicles/{car}/signals/{signal}",
        params={"start": start, "end": end, "interval": 60_000, **params},
    )


def raw(client: httpx.Client, car: int, signal: str, start: int, end: int) -> list[tuple[int, Any]]:
    """Every reading the API serves over `[start, end)`, page after page."""
    out: list[tuple[int, Any]] = []
    params: dict[str, Any] = {"signal": signal, "start": start, "end": end, "limit": 100}
    while True:
        r = client.get(f"/vehicles/{car}/readings", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        out += [(item["t"], item["value"]) for item in body["items"]]
        if body["next_cursor"] is None:
            return out
        params["cursor"] = body["next_cursor"]


def minute_avg(samples: list[tuple[int, Any]], start: int) -> list[tuple[int, float, int]]:
    buckets: dict[int, list[float]] = {}
    for t, v in samples:
        buckets.setdefault(start + (t - start) // 60_000 * 60_000, []).append(v)
    return [(b, sum(vs) / len(vs), len(vs)) for b, vs in sorted(buckets.items())]


# -------------------------------------------------------------------------------------------
# owner, strangers, bad requests
# -------------------------------------------------------------------------------------------


def test_the_owner_reads_a_series_and_a_stranger_gets_a_403_naming_the_scope(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    samples = drive_samples(t0, t0 + 600_000)
    load(world, anchor_bundles, domain, key, car, samples)
    advance(700)
    world.sync()
    world.at(head_s() * 1000)
    with world.client(owner) as mine, world.client(stranger) as theirs:
        r = series(mine, car, SPEED, t0, t0 + 600_000)
        denied = series(theirs, car, SPEED, t0, t0 + 600_000)
        located = series(theirs, car, LAT, t0, t0 + 600_000)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["signal"] == SPEED
    assert body["agg"] == "avg"
    assert body["interval"] == 60_000
    assert [(p["t"], p["count"]) for p in body["points"]] == [
        (b, n) for b, _, n in minute_avg(samples[SPEED], t0)
    ]
    for point, (_, want, _) in zip(body["points"], minute_avg(samples[SPEED], t0), strict=True):
        assert math.isclose(point["value"], want)
    assert body["covered"] == [[t0, t0 + 600_000]]
    problem = assert_problem(denied, 403, "privilege-missing")
    assert problem["missing_scopes"] == ["DRIVING"]
    assert problem["signals"] == [SPEED]
    assert problem["vehicle_id"] == car
    assert assert_problem(located, 403, "privilege-missing")["missing_scopes"] == ["LOCATION"]


def test_bad_requests_are_problems_anonymous_401_unknown_vehicle_404_unknown_signal_400(
    world: World, fleet: Fleet, owner: Any
) -> None:
    (car, _), _ = fleet[0]
    world.sync()
    now = head_s() * 1000
    world.at(now + 200_000)
    with world.anonymous() as anon, world.client(owner) as mine:
        assert_problem(series(anon, car, SPEED, 0, 10), 401, "token-missing")
        assert_problem(series(mine, 10**12, SPEED, 0, 10), 404, "vehicle-not-found")
        body = assert_problem(series(mine, car, "Vehicle.NoSuch", 0, 10), 400, "unknown-signal")
        assert body["signals"] == ["Vehicle.NoSuch"]
        assert_problem(series(mine, car, SPEED, 10, 5), 400, "invalid-telemetry-query")
        r = series(mine, car, SPEED, now, now + 200_000, interval=1)
        assert assert_problem(r, 400, "invalid-telemetry-query")["argument"] == "interval_ms"
        r = series(mine, car, IGNITION, now, now + 10, agg="avg")
        assert assert_problem(r, 400, "invalid-telemetry-query")["argument"] == "aggregation"
        params = {"signal": SPEED, "start": now, "end": now + 9, "cursor": "x"}
        assert_problem(mine.get(f"/vehicles/{car}/readings", params=params), 400, "invalid-cursor")
        proof = mine.get(f"/vehicles/{car}/signals/{SPEED}/readings/{now + 100}/proof")
        assert_problem(proof, 404, "reading-not-found")


# -------------------------------------------------------------------------------------------
# grants
# -------------------------------------------------------------------------------------------


def test_a_grant_covers_only_its_scopes_and_location_is_its_own_privilege(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    samples = drive_samples(t0, t0 + 300_000)
    load(world, anchor_bundles, domain, key, car, samples)
    vehicle_rights.grant(car, stranger, DRIVING, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(400)
    world.sync()
    world.at(head_s() * 1000)
    span = {"start": t0, "end": t0 + 300_000, "interval": 60_000}
    with world.client(stranger) as grantee:
        r = grantee.get(f"/vehicles/{car}/series", params={**span, "signal": [SPEED, LAT, SOC]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [s["signal"] for s in body["signals"]] == [SPEED]
        assert body["signals"][0]["privilege"] == "DRIVING"
        assert sum(p["count"] for p in body["signals"][0]["points"]) == len(samples[SPEED])
        assert body["withheld"] == [
            {"signal": LAT, "missing_scope": "LOCATION"},
            {"signal": SOC, "missing_scope": "BATTERY"},
        ]
        assert raw(grantee, car, SPEED, t0, t0 + 300_000) == samples[SPEED]
        problem = assert_problem(
            grantee.get(f"/vehicles/{car}/series", params={**span, "signal": [LAT, SOC]}),
            403,
            "privilege-missing",
        )
        assert problem["missing_scopes"] == ["BATTERY", "LOCATION"]
        assert problem["signals"] == sorted([LAT, SOC])

        vehicle_rights.grant(car, stranger, LOCATION, FAR_FUTURE, TERMS_CID, sender=owner)
        world.sync()
        assert_problem(series(grantee, car, SPEED, t0, t0 + 300_000), 403, "privilege-missing")
        assert raw(grantee, car, LAT, t0, t0 + 300_000) == samples[LAT]


def test_revoking_a_grant_ends_access(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    load(world, anchor_bundles, domain, key, car, drive_samples(t0, t0 + 120_000))
    vehicle_rights.grant(car, stranger, DRIVING | LOCATION, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(200)
    world.sync()
    world.at(head_s() * 1000)
    with world.client(stranger) as grantee:
        assert series(grantee, car, SPEED, t0, t0 + 120_000).status_code == 200
        vehicle_rights.revoke(car, stranger, sender=owner)
        world.sync()
        assert_problem(series(grantee, car, SPEED, t0, t0 + 120_000), 403, "privilege-missing")
        r = grantee.get(f"/vehicles/{car}/latest", params={"signal": [SPEED, LAT]})
        assert assert_problem(r, 403, "privilege-missing")["missing_scopes"] == [
            "DRIVING",
            "LOCATION",
        ]


def test_a_grant_ends_at_its_expiry(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    load(world, anchor_bundles, domain, key, car, drive_samples(t0, t0 + 120_000))
    expiry = head_s() + 1_000
    vehicle_rights.grant(car, stranger, DRIVING, expiry, TERMS_CID, sender=owner)
    advance(200)
    world.sync()
    world.at(expiry * 1000 - 1)
    with world.client(stranger) as grantee:
        assert series(grantee, car, SPEED, t0, t0 + 120_000).status_code == 200
        world.at(expiry * 1000)
        assert_problem(series(grantee, car, SPEED, t0, t0 + 120_000), 403, "privilege-missing")


# -------------------------------------------------------------------------------------------
# licences
# -------------------------------------------------------------------------------------------


def test_a_licence_reads_only_opted_in_vehicles_in_scope_signals_and_opted_in_time(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    buyer: Any,
    curator: Any,
    admin: Any,
    data_market: Any,
    token: Any,
) -> None:
    (car_a, key_a), (car_b, key_b) = fleet[0]
    t0 = fleet[1]
    end = t0 + 900_000
    samples = drive_samples(t0, end)
    listed = data_market.listProduct(
        DRIVING | ODOMETER_BIT, PRICE, 3_600, TERMS_CID, sender=curator
    )
    product = int(listed.return_value)
    with world.client(buyer) as licensee:
        # Before any licence: 403.
        world.sync()
        world.at(head_s() * 1000)
        assert_problem(series(licensee, car_a, SPEED, t0, end), 403, "privilege-missing")

        advance(200)
        opted_in = block_ms(data_market.optIn(car_a, product, sender=owner))
        token.mint(buyer, PRICE, sender=admin)
        token.approve(data_market, PRICE, sender=buyer)
        expiry = int(data_market.buy(product, 1, sender=buyer).return_value)
        advance(300)
        opted_out = block_ms(data_market.optOut(car_a, product, sender=owner))
        assert t0 < opted_in < opted_out < end
        load(world, anchor_bundles, domain, key_a, car_a, samples)
        load(world, anchor_bundles, domain, key_b, car_b, samples)
        advance(600)
        world.sync()
        world.at(head_s() * 1000)
        assert head_s() < expiry

        r = series(licensee, car_a, SPEED, t0, end)
        assert r.status_code == 200, r.text
        assert r.json()["covered"] == [[opted_in, opted_out]]
        assert raw(licensee, car_a, SPEED, t0, end) == inside(samples[SPEED], opted_in, opted_out)
        served = sum(p["count"] for p in r.json()["points"])
        assert served == len(inside(samples[SPEED], opted_in, opted_out))
        # Outside the opted-in time: nothing covered.
        assert_problem(series(licensee, car_a, SPEED, t0, opted_in), 403, "privilege-missing")
        # A vehicle never opted in, and a signal outside the product's scopes.
        assert_problem(series(licensee, car_b, SPEED, t0, end), 403, "privilege-missing")
        problem = assert_problem(series(licensee, car_a, LAT, t0, end), 403, "privilege-missing")
        assert problem["missing_scopes"] == ["LOCATION"]
        # The latest value is the last one inside the opted-in time.
        r = licensee.get(f"/vehicles/{car_a}/latest", params={"signal": [SPEED, LAT]})
        assert r.status_code == 200, r.text
        latest = r.json()
        assert [(v["signal"], v["t"]) for v in latest["values"]] == [
            (SPEED, inside(samples[SPEED], opted_in, opted_out)[-1][0])
        ]
        assert latest["withheld"] == [{"signal": LAT, "missing_scope": "LOCATION"}]

        # Expiry ends access.
        world.at(expiry * 1000)
        assert_problem(series(licensee, car_a, SPEED, t0, end), 403, "privilege-missing")


# -------------------------------------------------------------------------------------------
# transfers
# -------------------------------------------------------------------------------------------


def test_a_transfer_voids_grants_and_ends_the_old_owners_access_to_new_data(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    other_owner: Any,
    stranger: Any,
    vehicle_id: Any,
    device_id: Any,
    vehicle_rights: Any,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    before = drive_samples(t0, t0 + 120_000)
    vehicle_rights.grant(car, stranger, DRIVING, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(200)
    transferred = block_ms(vehicle_id.transferFrom(owner, other_owner, car, sender=owner))
    new_key = make_device_key(car + 500_000)
    claim(other_owner, new_key)
    device_id.pair(
        car,
        new_key.address,
        FAR_FUTURE,
        *pair_sigs(private_key(other_owner), new_key, car),
        sender=other_owner,
    )
    t1 = head_s() * 1000 + 1_000
    after = drive_samples(t1, t1 + 120_000)
    load(world, anchor_bundles, domain, key, car, before)
    load(world, anchor_bundles, domain, new_key, car, after)
    advance(300)
    world.sync()
    world.at(head_s() * 1000)
    whole = (t0, t1 + 120_000)
    with (
        world.client(owner) as old,
        world.client(other_owner) as new,
        world.client(stranger) as grantee,
    ):
        # The grant of the previous owner is void.
        assert_problem(series(grantee, car, SPEED, *whole), 403, "privilege-missing")
        # The previous owner reads up to the transfer, the new owner from it.
        r_old, r_new = series(old, car, SPEED, *whole), series(new, car, SPEED, *whole)
        assert r_old.json()["covered"][-1][1] == transferred
        assert r_new.json()["covered"] == [[transferred, whole[1]]]
        assert raw(old, car, SPEED, *whole) == before[SPEED]
        assert raw(new, car, SPEED, *whole) == after[SPEED]
        assert_problem(series(old, car, SPEED, t1, t1 + 120_000), 403, "privilege-missing")
        assert_problem(series(new, car, SPEED, t0, t0 + 120_000), 403, "privilege-missing")
        # Proofs follow the same rights.
        ts_new = after[SPEED][5][0]
        proof = f"/vehicles/{car}/signals/{SPEED}/readings/{ts_new}/proof"
        assert_problem(old.get(proof), 403, "privilege-missing")
        assert new.get(proof).status_code == 200


# -------------------------------------------------------------------------------------------
# proofs, raw readings, latest, trips and charging
# -------------------------------------------------------------------------------------------


def test_proofs_of_random_served_readings_verify_on_chain(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    platform: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    rng = random.Random(11)
    samples = drive_samples(t0, t0 + 600_000)
    anchored = load(world, anchor_bundles, domain, key, car, samples)
    advance(700)
    world.sync()
    world.at(head_s() * 1000)
    anchor = platform["AttestationAnchor"]
    proofs = []
    with world.client(owner) as mine:
        served = {name: raw(mine, car, name, t0, t0 + 600_000) for name in (SPEED, LAT, SOC)}
        assert served == samples
        for _ in range(10):
            name = rng.choice([SPEED, LAT, SOC])
            ts, value = rng.choice(served[name])
            r = mine.get(f"/vehicles/{car}/signals/{name}/readings/{ts}/proof")
            assert r.status_code == 200, r.text
            proofs.append((name, ts, value, r.json()))
    for name, ts, value, body in proofs:
        assert body["reading"]["t"] == ts
        assert body["reading"]["value"] == value
        signed = decode_signed_bundle(bytes.fromhex(body["bundle_wire"][2:]))
        assert dict(signed.bundle.readings[name])[ts] == value
        assert verify_bundle(signed, domain) == body["leaf"]["device"] == key.address
        assert signed.signature.hex() == body["signature"][2:]
        assert "0x" + keccak(signed.signature).hex() == body["leaf"]["signature_hash"]
        assert body["batch"]["root"] == "0x" + anchored.tree.root.hex()
        assert body["batch"]["tx_hash"] == anchored.batch.tx_hash
        assert anchor.verifyReading(body["batch"]["id"], leaf_tuple(body), proof_list(body))
    # Another bundle's path does not verify this leaf: the check is not vacuous.
    a, b = (
        proofs[0][3],
        next(p[3] for p in proofs if p[3]["leaf_index"] != proofs[0][3]["leaf_index"]),
    )
    assert not anchor.verifyReading(a["batch"]["id"], leaf_tuple(a), proof_list(b))


def leaf_tuple(body: dict[str, Any]) -> tuple[Any, ...]:
    leaf = body["leaf"]
    return (
        leaf["device"],
        leaf["vehicle_id"],
        leaf["sequence"],
        leaf["window_start"],
        leaf["window_end"],
        bytes.fromhex(leaf["data_hash"][2:]),
        bytes.fromhex(leaf["signature_hash"][2:]),
    )


def proof_list(body: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(p[2:]) for p in body["proof"]]


def test_raw_readings_come_in_pages_of_at_most_the_limit_each_reading_once(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    samples = drive_samples(t0, t0 + 300_000)
    load(world, anchor_bundles, domain, key, car, samples)
    advance(400)
    world.sync()
    world.at(head_s() * 1000)
    pages = []
    params: dict[str, Any] = {"signal": SPEED, "start": t0 + 1, "end": t0 + 300_000, "limit": 7}
    with world.client(owner) as mine:
        while True:
            body = mine.get(f"/vehicles/{car}/readings", params=params).json()
            pages.append(body["items"])
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        too_many = mine.get(f"/vehicles/{car}/readings", params={**params, "limit": 101})
    assert [len(p) for p in pages] == [7] * 21 + [2]
    got = [(item["t"], item["value"]) for page in pages for item in page]
    assert got == inside(samples[SPEED], t0 + 1, t0 + 300_000)
    assert too_many.status_code == 422


def test_latest_without_signals_gives_every_covered_signal_and_lists_the_rest(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    samples = drive_samples(t0, t0 + 120_000)
    load(world, anchor_bundles, domain, key, car, samples)
    vehicle_rights.grant(car, stranger, BATTERY | LOCATION, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(200)
    world.sync()
    world.at(head_s() * 1000)
    with world.client(stranger) as grantee, world.client(owner) as mine:
        body = grantee.get(f"/vehicles/{car}/latest").json()
        everything = mine.get(f"/vehicles/{car}/latest").json()
    assert {v["signal"]: (v["t"], v["value"]) for v in body["values"]} == {
        LAT: samples[LAT][-1],
        SOC: samples[SOC][-1],
    }
    assert {"signal": SPEED, "missing_scope": "DRIVING"} in body["withheld"]
    assert {v["signal"] for v in everything["values"]} == {SPEED, LAT, SOC}
    assert everything["withheld"] == []


def test_trips_need_driving_and_leave_out_the_distance_without_odometer(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    s = 1_000
    samples: Samples = {
        SPEED: [(t0 + i * s, 50.0) for i in range(300)]
        + [(t0 + (900 + i) * s, 40.0) for i in range(300)],
        ODOMETER: [(t0 + i * 10 * s, 1000.0 + i * 0.1) for i in range(120)],
        IGNITION: [(t0 + 600 * s, "OFF")],
        IS_CHARGING: [(t0 + (1300 + 30 * i) * s, True) for i in range(10)],
    }
    load(world, anchor_bundles, domain, key, car, samples)
    vehicle_rights.grant(car, stranger, DRIVING, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(1_700)
    world.sync()
    world.at(head_s() * 1000)
    span = {"start": t0, "end": t0 + 1_600 * s}
    with world.client(stranger) as grantee, world.client(owner) as mine:
        theirs = grantee.get(f"/vehicles/{car}/trips", params=span)
        full = mine.get(f"/vehicles/{car}/trips", params=span)
        charging = grantee.get(f"/vehicles/{car}/charging-sessions", params=span)
        sessions = mine.get(f"/vehicles/{car}/charging-sessions", params=span)
    assert theirs.status_code == 200, theirs.text
    with world.engine.connect() as conn:
        want = trips(conn, car, t0, t0 + 1_600 * s)
    assert [(t["start"], t["end"]) for t in full.json()["trips"]] == [
        (t.start_ms, t.end_ms) for t in want
    ]
    assert len(want) == 2
    assert [t["distance_km"] for t in full.json()["trips"]] == [t.distance_km for t in want]
    assert [(t["start"], t["end"]) for t in theirs.json()["trips"]] == [
        (t.start_ms, t.end_ms) for t in want
    ]
    assert [t["distance_km"] for t in theirs.json()["trips"]] == [None, None]
    assert theirs.json()["withheld"] == [{"signal": ODOMETER, "missing_scope": "ODOMETER"}]
    problem = assert_problem(charging, 403, "privilege-missing")
    assert problem["missing_scopes"] == ["CHARGING"]
    assert [(c["start"], c["end"]) for c in sessions.json()["sessions"]] == [
        (t0 + 1300 * s, t0 + 1570 * s)
    ]
