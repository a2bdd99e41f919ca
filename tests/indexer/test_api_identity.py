"""Identity, rights and governance routes over a real sync of anvil, served by uvicorn.

One chain scenario (vehicles, devices, pairings, grants, a transfer, products, opt-ins, licences,
a revenue claim, parameters, proposals and votes) is synced into SQLite and into PostgreSQL; each
test reads it through the API as a wallet, a dApp or a data buyer would, and checks it against
the chain's own view calls where the chain has one.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from fastapi import FastAPI
from siwe import SiweMessage
from sqlalchemy import create_engine, text

from indexer.api.main import create_app
from indexer.config import IndexerSettings
from indexer.migrate import upgrade
from indexer.sync import Syncer
from protocol.cid import Cid
from tests.conftest import (
    CLAIM_TYPES,
    FAR_FUTURE,
    PAIR_TYPES,
    TERMS_CID,
    make_device_key,
    private_key,
    vin_commitment,
)

PG_URL = os.environ.get("DIMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PROBLEMS = "https://dimo.local/problems/"
DOMAIN = "127.0.0.1:8700"
URI = "http://127.0.0.1:8700"
PRICE = 10**18
FEE_BPS = 250
HOUR = 3600
DEVICE_KEYS = 83_000


# --------------------------------------------------------------------------------------------
# Serving and signing in
# --------------------------------------------------------------------------------------------


class Clock:
    """A settable clock the app reads (unix seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Served:
    """An app served by uvicorn in a thread on 127.0.0.1 (a real HTTP server)."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def serve(engine: Any, clock: Clock) -> Served:
    settings = IndexerSettings(
        siwe_domain=DOMAIN,
        siwe_uri=URI,
        siwe_chain_id=31337,
        jwt_secret="i" * 32,
        rate_limit_per_minute=0,
    )
    return Served(create_app(settings, engine, clock=clock))


def sign_in(client: httpx.Client, key: str, clock: Clock) -> dict[str, str]:
    """Signs in with Ethereum as the holder of `key`; returns the bearer header."""
    wallet = Account.from_key(key)
    nonce = client.get("/auth/nonce").json()["nonce"]
    message = SiweMessage(
        domain=DOMAIN,
        address=wallet.address,
        uri=URI,
        version="1",
        chain_id=31337,
        issued_at=datetime.fromtimestamp(clock.now, UTC).isoformat(),
        nonce=nonce,
    ).prepare_message()
    sig = wallet.sign_message(encode_defunct(text=message)).signature.hex()
    r = client.post(
        "/auth/login",
        json={"message": message, "signature": sig if sig.startswith("0x") else "0x" + sig},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    return body


def fresh_db(kind: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A migrated empty database URL (SQLite file or fresh PostgreSQL schema) and its cleanup."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / f'idx-{secrets.token_hex(4)}.db'}"
        upgrade(url)
        return url, lambda: None
    schema = f"api_identity_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    upgrade(url)

    def _drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return url, _drop


def syncer_for(url: str, rpc_url: str, deployment: Path) -> Syncer:
    return Syncer(IndexerSettings(database_url=url, rpc_url=rpc_url, deployment=deployment))


# --------------------------------------------------------------------------------------------
# The chain scenario
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """What the scenario made on chain: ids, people (address, key) and times."""

    people: dict[str, Any]
    vehicles: dict[str, int]
    devices: dict[str, str]
    products: dict[str, int]
    proposals: dict[str, int]
    manufacturer_id: int
    v3_grant_expiry: int
    head_time: int
    claim_amount: int
    buyer_paid: int
    mints: dict[str, list[int]] = field(default_factory=dict)

    def addr(self, who: str) -> str:
        return str(self.people[who].address)

    def key(self, who: str) -> str:
        return private_key(self.people[who])


@pytest.fixture(scope="module")
def world(
    platform: dict[str, Any],
    accounts: Any,
    admin: Any,
    manufacturer: Any,
    owner: Any,
    other_owner: Any,
    stranger: Any,
    buyer: Any,
    curator: Any,
    treasury: Any,
    sign: Callable[..., bytes],
    chain: Any,
) -> World:
    """Mint, claim, pair and unpair, grant, transfer, list, opt in and out, buy, claim, set
    parameters, propose, cancel and vote."""
    vehicles, devices = platform["VehicleId"], platform["DeviceId"]
    rights, market = platform["VehicleRights"], platform["DataMarket"]
    token, governor = platform["DimoToken"], platform["DimoGovernor"]
    params, registry = platform["Parameters"], platform["ManufacturerRegistry"]

    def fresh() -> Any:
        acct = accounts.generate_test_account()
        admin.transfer(acct, 10**19)
        return acct

    grantee, extra1, extra2, buyer2 = fresh(), fresh(), fresh(), fresh()
    people = {
        "owner": owner,
        "other_owner": other_owner,
        "stranger": stranger,
        "buyer": buyer,
        "buyer2": buyer2,
        "grantee": grantee,
        "curator": curator,
    }
    mints: dict[str, list[int]] = {}

    def mint_dimo(who: Any, amount: int) -> None:
        token.mint(who, amount, sender=admin)
        mints.setdefault(who.address, []).append(amount)

    # Governance first: it moves the chain's time.
    for who, amount in ((owner, 3_000_000), (other_owner, 1_000_000), (buyer, 500_000)):
        mint_dimo(who, amount * 10**18)
        token.invoke_transaction("delegate", who, sender=who)
    calls = []
    proposal_ids = []
    for i, (key, value) in enumerate(
        (("PROTOCOL_FEE_BPS", 500), ("ORACLE_THRESHOLD", 3), ("REWARDS_CHALLENGE_DELAY", 70))
    ):
        call = (
            [params.address],
            [0],
            [params.setUint.encode_input(keccak(key.encode()), value)],
            f"identity API test proposal {i}: set {key} to {value}",
        )
        tx = governor.propose(*call, sender=owner)
        calls.append(call)
        proposal_ids.append(int(tx.events.filter(governor.ProposalCreated)[0].proposalId))
    targets, values, datas, description = calls[2]
    governor.cancel(targets, values, datas, keccak(description.encode()), sender=owner)
    # Voting opens after the later snapshot of the two live proposals; blocks mined within
    # one wall-clock second can share a timestamp, so the earlier snapshot is not enough.
    chain.mine(timestamp=max(governor.proposalSnapshot(p) for p in proposal_ids[:2]) + 1)
    governor.castVote(proposal_ids[0], 1, sender=owner)
    governor.castVoteWithReason(proposal_ids[0], 0, "too soon", sender=other_owner)
    governor.castVote(proposal_ids[0], 2, sender=buyer)
    governor.castVote(proposal_ids[1], 1, sender=owner)

    # Parameters, set directly by the local admin.
    params.setUint(params.PROTOCOL_FEE_BPS(), FEE_BPS, sender=admin)
    params.setFlag(params.FEATURE_GRID_PROGRAMMES(), True, sender=admin)
    params.setUint(params.ORACLE_THRESHOLD(), 2, sender=admin)

    # Identity: a third manufacturer, vehicles, devices, pairings.
    registry.register(fresh(), "Third Telematics", 1, sender=admin)

    def mint(who: Any, make: str, model: str, year: int, n: int) -> int:
        vin = f"VIN{n:014d}"
        return int(vehicles.mint(make, model, year, vin_commitment(vin), sender=who).return_value)

    v = {f"V{i}": mint(owner, "Hyundai", "Kona Electric", 2019, 830 + i) for i in range(1, 6)}
    v["V6"] = mint(other_owner, "Tesla", "Model 3", 2021, 836)
    v["V7"] = mint(other_owner, "Tesla", "Model 3", 2021, 837)
    keys = {f"D{i}": make_device_key(DEVICE_KEYS + i) for i in range(1, 6)}
    devices.mintDevices(
        [k.address for k in keys.values()],
        [keccak(k.address.encode()) for k in keys.values()],
        sender=manufacturer,
    )
    for k in keys.values():
        msg = {"device": k.address, "user": owner.address, "deadline": FAR_FUTURE}
        devices.claim(
            k.address,
            owner,
            FAR_FUTURE,
            sign(private_key(owner), devices, "ClaimDevice", CLAIM_TYPES, msg),
            sign(k.key, devices, "ClaimDevice", CLAIM_TYPES, msg),
            sender=owner,
        )

    def pair(vehicle: int, k: Any, nonce: int) -> None:
        msg = {"vehicleId": vehicle, "device": k.address, "nonce": nonce, "deadline": FAR_FUTURE}
        devices.pair(
            vehicle,
            k.address,
            FAR_FUTURE,
            sign(private_key(owner), devices, "PairDevice", PAIR_TYPES, msg),
            sign(k.key, devices, "PairDevice", PAIR_TYPES, msg),
            sender=owner,
        )

    for nonce in range(3):  # V1 and D1: paired three times, unpaired twice
        pair(v["V1"], keys["D1"], nonce)
        if nonce < 2:
            devices.unpair(keys["D1"].address, sender=owner)
    pair(v["V2"], keys["D2"], 0)
    pair(v["V3"], keys["D3"], 0)
    # V4 and V5 earn licence revenue: only a vehicle with a paired device does.
    pair(v["V4"], keys["D4"], 0)
    pair(v["V5"], keys["D5"], 0)

    # Rights: grants, one voided by a transfer, one that expires soon.
    now = int(chain.blocks.head.timestamp)
    for who, scopes in ((grantee, 0b1), (extra1, 0b11), (extra2, 0b100)):
        rights.grant(v["V1"], who, scopes, FAR_FUTURE, TERMS_CID, sender=owner)
    v3_expiry = now + 5_000
    rights.grant(v["V3"], grantee, 0b1111, v3_expiry, TERMS_CID, sender=owner)
    rights.grant(v["V2"], grantee, 0b1, FAR_FUTURE, TERMS_CID, sender=owner)
    vehicles.transferFrom(owner, other_owner, v["V2"], sender=owner)

    # Market: three products, opt-ins and outs, sales, a claim.
    products = {
        name: int(market.listProduct(scopes, price, period, TERMS_CID, sender=curator).return_value)
        for name, scopes, price, period in (
            ("P1", 0b11, PRICE, HOUR),
            ("P2", 0b100, 2 * PRICE, 24 * HOUR),
            ("P3", 0b10000, PRICE, HOUR),
        )
    }
    for who in (buyer, buyer2):
        mint_dimo(who, 100 * PRICE)
        token.approve(market, 100 * PRICE, sender=who)
    market.optIn(v["V4"], products["P1"], sender=owner)
    market.optIn(v["V5"], products["P1"], sender=owner)
    market.optIn(v["V4"], products["P2"], sender=owner)
    market.optIn(v["V4"], products["P3"], sender=owner)
    market.buy(products["P1"], 2, sender=buyer)  # V4 and V5 share
    market.optOut(v["V5"], products["P1"], sender=owner)
    market.buy(products["P1"], 1, sender=buyer)  # V4 alone
    market.optIn(v["V5"], products["P2"], sender=owner)
    market.optOut(v["V4"], products["P2"], sender=owner)
    market.buy(products["P2"], 1, sender=buyer2)  # V5 alone: V4 is out
    market.optIn(v["V4"], products["P2"], sender=owner)
    market.buy(products["P2"], 1, sender=buyer2)  # V4 and V5
    market.buy(products["P1"], 1, sender=buyer2)  # V4 alone
    # Revenue streams over the licences' hour: claim half a minute later (proposal B's
    # vote stays open).
    chain.mine(timestamp=chain.pending_timestamp + 30)
    tx = market.claim(v["V4"], [products["P1"]], sender=owner)
    claim_amount = int(tx.events.filter(market.RevenueClaimed)[0].amount)

    return World(
        people=people,
        vehicles=v,
        devices={name: k.address for name, k in keys.items()},
        products=products,
        proposals={"A": proposal_ids[0], "B": proposal_ids[1], "C": proposal_ids[2]},
        manufacturer_id=int(registry.manufacturerOf(manufacturer).id),
        v3_grant_expiry=v3_expiry,
        head_time=int(chain.blocks.head.timestamp),
        claim_amount=claim_amount,
        buyer_paid=3 * PRICE,
        mints=mints,
    )


@dataclass
class Api:
    client: httpx.Client
    clock: Clock
    kind: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest,
    world: World,
    rpc_url: str,
    deployment_record: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Api]:
    """The scenario synced into a fresh database of each kind, served over HTTP."""
    url, drop = fresh_db(str(request.param), tmp_path_factory.mktemp("api-identity"))
    syncer = syncer_for(url, rpc_url, deployment_record)
    try:
        syncer.backfill()
    finally:
        syncer.close()
    clock = Clock(world.head_time)
    try:
        with (
            serve(syncer.engine, clock) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            yield Api(client, clock, str(request.param))
    finally:
        syncer.engine.dispose()
        drop()


@pytest.fixture
def api(served: Api, world: World) -> Iterator[Api]:
    """The served API with its clock at the chain's time; tests may move the clock."""
    served.clock.now = world.head_time
    yield served
    served.clock.now = world.head_time


def get(api: Api, path: str, **params: Any) -> Any:
    r = api.client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def everything(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list of at most 100 items, in one page."""
    body = get(api, path, limit=100, **params)
    assert body["next_cursor"] is None
    return list(body["items"])


def ids(items: list[dict[str, Any]], key: str = "id") -> list[Any]:
    return [i[key] for i in items]


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# --------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------

LISTS = [
    ("/vehicles", {}),
    ("/vehicles", {"owner": "owner"}),
    ("/vehicles/{V1}/pairings", {}),
    ("/vehicles/{V1}/grants", {}),
    ("/vehicles/{V4}/opt-ins", {}),
    ("/vehicles/{V4}/revenue", {}),
    ("/devices", {}),
    ("/devices", {"owner": "owner"}),
    ("/manufacturers", {}),
    ("/products", {}),
    ("/licences", {}),
    ("/grants", {}),
    ("/grants", {"include_void": "true"}),
    ("/proposals", {}),
    ("/proposals/{A}/votes", {}),
    ("/parameters", {}),
    ("/rewards", {}),
]


def _resolve(world: World, path: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    names = {**world.vehicles, **world.proposals}
    resolved = {k: world.addr(v) if k == "owner" else v for k, v in params.items()}
    return path.format(**names), resolved


@pytest.mark.parametrize(("path", "params"), LISTS, ids=[f"{p} {q}" for p, q in LISTS])
def test_every_list_walks_in_pages_of_two_to_exactly_the_single_page_list(
    api: Api, world: World, path: str, params: dict[str, str]
) -> None:
    path, params = _resolve(world, path, params)
    whole = everything(api, path, **params)
    walked: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = get(api, path, **query)
        pages += 1
        walked.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["items"]) == 2
        assert pages < 100
    assert len(whole) >= 3, "the scenario must give every list more than one page"
    assert pages == (len(whole) + 1) // 2
    assert walked == whole  # same items, same order: no duplicates, no gaps
    assert len({json.dumps(i, sort_keys=True) for i in walked}) == len(walked)


def test_a_tampered_or_foreign_cursor_is_a_400_problem(api: Api) -> None:
    cursor = get(api, "/vehicles", limit=2)["next_cursor"]
    device_cursor = get(api, "/devices", limit=2)["next_cursor"]
    assert cursor
    assert device_cursor
    bad = [
        "X" + cursor[1:],  # the JSON no longer parses
        cursor[:-3],
        "not a cursor!",
        b64({"vehicles": 5}),
        b64(["vehicles", "5"]),
        b64(["vehicles", 5, 6]),
        b64(["vehicles", 2**70]),
        b64(["vehicles", True]),
        device_cursor,
        cursor + "A" * 2000,
    ]
    for value in bad:
        body = assert_problem(
            api.client.get("/vehicles", params={"cursor": value}), 400, "invalid-cursor"
        )
        assert body["instance"] == "/vehicles"


def test_a_page_size_outside_1_to_100_is_a_validation_problem(api: Api) -> None:
    for limit in (0, 101, -1):
        body = assert_problem(
            api.client.get("/products", params={"limit": limit}), 422, "validation-error"
        )
        assert body["errors"][0]["pointer"] == "/query/limit"
    assert len(get(api, "/vehicles")["items"]) <= 50


# --------------------------------------------------------------------------------------------
# Vehicles, devices, pairings
# --------------------------------------------------------------------------------------------


def test_a_vehicle_has_its_make_model_owner_epoch_and_device(api: Api, world: World) -> None:
    one = get(api, f"/vehicles/{world.vehicles['V1']}")
    assert one["owner"] == world.addr("owner")  # EIP-55, as Ape gives it
    assert (one["make"], one["model"], one["year"]) == ("Hyundai", "Kona Electric", 2019)
    assert one["device"] == world.devices["D1"]
    assert one["epoch"] == 0
    moved = get(api, f"/vehicles/{world.vehicles['V2']}")
    assert moved["owner"] == world.addr("other_owner")
    assert (moved["epoch"], moved["device"]) == (1, None)


def test_vehicle_filters_select_exactly_the_matching_vehicles(api: Api, world: World) -> None:
    every = everything(api, "/vehicles")
    v = world.vehicles
    other = world.addr("other_owner")
    for params, keep, expected in (
        ({"owner": other.lower()}, lambda x: x["owner"] == other, {"V2", "V6", "V7"}),
        ({"owner": "0x" + other[2:].upper()}, lambda x: x["owner"] == other, {"V2", "V6", "V7"}),
        ({"make": "TESLA"}, lambda x: x["make"] == "Tesla", {"V6", "V7"}),
        ({"model": "model 3", "year": 2021}, lambda x: x["model"] == "Model 3", {"V6", "V7"}),
        ({"year": 2019}, lambda x: x["year"] == 2019, {"V1", "V2", "V3", "V4", "V5"}),
        ({"make": "Hyundai", "owner": other}, lambda x: x["id"] == v["V2"], {"V2"}),
        ({"make": "Lada"}, lambda x: False, set()),
    ):
        got = everything(api, "/vehicles", **params)
        assert got == [x for x in every if keep(x)], params
        assert {v[name] for name in expected} <= set(ids(got)), params


def test_a_devices_address_is_found_in_any_case_and_returned_checksummed(
    api: Api, world: World
) -> None:
    d1 = world.devices["D1"]
    wrong_checksum = d1[:2] + d1[2:].swapcase()  # mixed case, not EIP-55: still the device
    for form in (d1, d1.lower(), "0x" + d1[2:].upper(), wrong_checksum):
        body = get(api, f"/devices/{form}")
        assert body["address"] == d1
    assert body["vehicle_id"] == world.vehicles["V1"]
    assert body["owner"] == world.addr("owner")
    assert (body["manufacturer"], body["claimed"], body["pairings_count"]) == (
        "Acme Telematics",
        True,
        3,
    )


def test_device_filters_select_exactly_the_matching_devices(api: Api, world: World) -> None:
    every = everything(api, "/devices")
    mine = everything(api, "/devices", owner=world.addr("owner").lower())
    assert set(world.devices.values()) <= set(ids(mine, "address"))
    assert mine == [d for d in every if d["owner"] == world.addr("owner")]
    paired = everything(api, "/devices", vehicle_id=world.vehicles["V1"])
    assert ids(paired, "address") == [world.devices["D1"]]
    made = everything(api, "/devices", manufacturer_id=world.manufacturer_id)
    assert made == [d for d in every if d["manufacturer_id"] == world.manufacturer_id]
    assert set(world.devices.values()) <= set(ids(made, "address"))
    assert everything(api, "/devices", manufacturer_id=999_999) == []


def test_pairing_history_lists_every_interval_with_how_it_ended(api: Api, world: World) -> None:
    history = everything(api, f"/vehicles/{world.vehicles['V1']}/pairings")
    assert [p["reason"] for p in history] == ["owner", "owner", None]
    assert {p["device"] for p in history} == {world.devices["D1"]}
    assert history[-1]["unpaired_at"] is None
    assert history[0]["paired_at"] <= history[0]["unpaired_at"] <= history[1]["paired_at"]
    moved = everything(api, f"/vehicles/{world.vehicles['V2']}/pairings")
    assert [p["reason"] for p in moved] == ["vehicle-transferred"]


def test_manufacturers_include_the_registered_ones(api: Api, world: World) -> None:
    names = {m["name"]: m for m in everything(api, "/manufacturers")}
    assert {"Acme Telematics", "Hyundai Connect", "Third Telematics"} <= set(names)
    assert names["Acme Telematics"]["id"] == world.manufacturer_id
    assert names["Acme Telematics"]["capabilities"] == 1


# --------------------------------------------------------------------------------------------
# Rights: grants and readable_by_me
# --------------------------------------------------------------------------------------------


def test_a_vehicles_live_grants_match_the_chains_privileges(
    api: Api, world: World, platform: dict[str, Any]
) -> None:
    rights = platform["VehicleRights"]
    v1 = world.vehicles["V1"]
    grants = everything(api, f"/vehicles/{v1}/grants")
    assert len(grants) == 3
    for g in grants:
        assert g["live"] is True
        assert (g["scopes"], g["expiry"]) == tuple(rights.privilegesOf(v1, g["grantee"]))
        assert g["terms_cid"] == Cid.from_bytes(TERMS_CID).encode()
    by_grantee = {g["grantee"]: g for g in grants}
    assert by_grantee[world.addr("grantee")]["privileges"] == ["BATTERY"]


def test_a_transfer_voids_the_vehicles_grants(api: Api, world: World) -> None:
    v2 = world.vehicles["V2"]
    assert everything(api, f"/vehicles/{v2}/grants") == []
    live = everything(api, "/grants", grantee=world.addr("grantee"))
    assert ids(live, "vehicle_id") == [world.vehicles["V1"], world.vehicles["V3"]]
    with_void = everything(
        api, "/grants", grantee=world.addr("grantee").lower(), include_void="true"
    )
    assert {g["vehicle_id"]: g["live"] for g in with_void} == {
        world.vehicles["V1"]: True,
        v2: False,
        world.vehicles["V3"]: True,
    }


def test_a_grant_stops_being_listed_when_the_clock_passes_its_expiry(
    api: Api, world: World
) -> None:
    v3 = world.vehicles["V3"]
    assert ids(everything(api, f"/vehicles/{v3}/grants"), "grantee") == [world.addr("grantee")]
    api.clock.now = world.v3_grant_expiry
    assert everything(api, f"/vehicles/{v3}/grants") == []
    void = everything(api, "/grants", grantee=world.addr("grantee"), include_void="true")
    assert {g["vehicle_id"]: g["live"] for g in void}[v3] is False


def readable(api: Api, world: World, who: str) -> set[str]:
    headers = sign_in(api.client, world.key(who), api.clock)
    r = api.client.get("/vehicles", params={"readable_by_me": "true"}, headers=headers)
    assert r.status_code == 200, r.text
    names = {vid: name for name, vid in world.vehicles.items()}
    return {names.get(x["id"], str(x["id"])) for x in r.json()["items"]}


def test_readable_by_me_lists_what_an_owner_owns(api: Api, world: World) -> None:
    assert readable(api, world, "owner") == {"V1", "V3", "V4", "V5"}
    assert readable(api, world, "other_owner") == {"V2", "V6", "V7"}


def test_readable_by_me_lists_live_grants_of_a_grantee(api: Api, world: World) -> None:
    assert readable(api, world, "grantee") == {"V1", "V3"}  # V2's grant died with its transfer
    api.clock.now = world.v3_grant_expiry
    assert readable(api, world, "grantee") == {"V1"}


def test_readable_by_me_lists_opted_in_vehicles_of_live_licences(
    api: Api, world: World, platform: dict[str, Any]
) -> None:
    assert readable(api, world, "buyer") == {"V4"}  # V5 opted out of P1
    assert readable(api, world, "buyer2") == {"V4", "V5"}  # P2 covers V5
    expiry = platform["DataMarket"].licenceOf(world.addr("buyer"), world.products["P1"])
    api.clock.now = expiry
    assert readable(api, world, "buyer") == set()


def test_readable_by_me_is_empty_for_a_stranger_and_401_for_anonymous(
    api: Api, world: World
) -> None:
    assert readable(api, world, "stranger") == set()
    r = api.client.get("/vehicles", params={"readable_by_me": "true"})
    assert_problem(r, 401, "token-missing")
    assert r.headers["www-authenticate"] == "Bearer"


def test_readable_by_me_combines_with_the_other_filters(api: Api, world: World) -> None:
    headers = sign_in(api.client, world.key("buyer2"), api.clock)
    r = api.client.get(
        "/vehicles",
        params={"readable_by_me": "true", "owner": world.addr("owner"), "limit": 1},
        headers=headers,
    )
    body = r.json()
    assert ids(body["items"]) == [world.vehicles["V4"]]
    r = api.client.get(
        "/vehicles",
        params={"readable_by_me": "true", "cursor": body["next_cursor"]},
        headers=headers,
    )
    assert ids(r.json()["items"]) == [world.vehicles["V5"]]


# --------------------------------------------------------------------------------------------
# Market: products, opt-ins, licences, revenue
# --------------------------------------------------------------------------------------------


def test_products_match_the_chain(api: Api, world: World, platform: dict[str, Any]) -> None:
    market = platform["DataMarket"]
    for name, pid in world.products.items():
        body = get(api, f"/products/{pid}")
        onchain = market.productOf(pid)
        assert body["price_per_period"] == str(onchain.pricePerPeriod)
        assert body["period_seconds"] == onchain.periodSeconds
        assert body["scopes"] == onchain.scopes
        assert body["vehicles_opted_in"] == onchain.optedIn, name
        assert body["curator"] == world.addr("curator")
        assert body["terms_cid_hex"] == "0x" + TERMS_CID.hex()
    assert get(api, f"/products/{world.products['P1']}")["privileges"] == ["BATTERY", "CHARGING"]
    listed = everything(api, "/products", curator=world.addr("curator"))
    assert set(world.products.values()) <= set(ids(listed))


def test_opt_ins_list_each_interval_and_filter_by_activity(api: Api, world: World) -> None:
    v4 = world.vehicles["V4"]
    p = world.products
    intervals = everything(api, f"/vehicles/{v4}/opt-ins")
    assert [(i["product_id"], i["active"]) for i in intervals] == [
        (p["P1"], True),
        (p["P2"], False),
        (p["P3"], True),
        (p["P2"], True),
    ]
    ended = everything(api, f"/vehicles/{v4}/opt-ins", active="false")
    assert [(i["product_id"], i["opted_out_by"]) for i in ended] == [(p["P2"], world.addr("owner"))]
    assert len(everything(api, f"/vehicles/{v4}/opt-ins", active="true")) == 3


def test_revenue_per_product_equals_what_the_chain_lets_the_owner_claim(
    api: Api, world: World, platform: dict[str, Any]
) -> None:
    market = platform["DataMarket"]
    for vname in ("V4", "V5"):
        vid = world.vehicles[vname]
        rows = everything(api, f"/vehicles/{vid}/revenue")
        assert rows, vname
        for row in rows:
            pid = row["product_id"]
            claimed = world.claim_amount if (vname, pid) == ("V4", world.products["P1"]) else 0
            assert row["claimable"] == str(market.claimable(vid, pid)), (vname, pid)
            assert row["claimed"] == str(claimed)
            assert int(row["earned"]) == int(row["claimable"]) + claimed
            assert row["opted_in"] is market.positionOf(vid, pid).optedIn
    v4 = {r["product_id"]: r for r in everything(api, f"/vehicles/{world.vehicles['V4']}/revenue")}
    assert int(v4[world.products["P1"]]["earned"]) > 0
    assert v4[world.products["P3"]]["earned"] == "0"
    assert v4[world.products["P1"]]["last_claimed_at"] is not None


def test_licences_match_the_chain_and_filter_by_buyer_product_and_activity(
    api: Api, world: World, platform: dict[str, Any]
) -> None:
    market = platform["DataMarket"]
    p1, p2 = world.products["P1"], world.products["P2"]
    mine = everything(api, "/licences", buyer=world.addr("buyer").lower())
    assert [(x["buyer"], x["product_id"]) for x in mine] == [(world.addr("buyer"), p1)]
    assert mine[0]["paid"] == str(world.buyer_paid)
    assert mine[0]["periods"] == 3
    assert mine[0]["expiry"] == market.licenceOf(world.addr("buyer"), p1)
    of_p1 = everything(api, "/licences", product_id=p1)
    assert {x["buyer"] for x in of_p1} == {world.addr("buyer"), world.addr("buyer2")}
    of_b2 = everything(api, "/licences", buyer=world.addr("buyer2"))
    assert sorted(x["product_id"] for x in of_b2) == sorted([p1, p2])
    api.clock.now = mine[0]["expiry"]
    assert everything(api, "/licences", buyer=world.addr("buyer"), active="true") == []
    expired = everything(api, "/licences", buyer=world.addr("buyer"), active="false")
    assert [x["active"] for x in expired] == [False]


# --------------------------------------------------------------------------------------------
# Governance and token
# --------------------------------------------------------------------------------------------


def test_proposals_carry_the_chains_tally_status_and_phase(
    api: Api, world: World, platform: dict[str, Any]
) -> None:
    governor = platform["DimoGovernor"]
    a = get(api, f"/proposals/{world.proposals['A']}")
    assert a["id"] == str(world.proposals["A"])
    against, for_, abstain = governor.proposalVotes(world.proposals["A"])
    assert (a["votes_against"], a["votes_for"], a["votes_abstain"]) == tuple(
        str(x) for x in (against, for_, abstain)
    )
    assert a["proposer"] == world.addr("owner")
    assert a["actions"][0]["target"] == platform["Parameters"].address
    assert (a["status"], a["phase"]) == ("created", "active")
    api.clock.now = a["vote_end"] + 1
    assert get(api, f"/proposals/{world.proposals['A']}")["phase"] == "ended"
    canceled = everything(api, "/proposals", status="canceled")
    assert str(world.proposals["C"]) in ids(canceled)
    assert all(p["status"] == "canceled" for p in canceled)


def test_a_proposals_votes_list_each_ballot_in_order(api: Api, world: World) -> None:
    votes = everything(api, f"/proposals/{world.proposals['A']}/votes")
    assert [(v["voter"], v["choice"]) for v in votes] == [
        (world.addr("owner"), "for"),
        (world.addr("other_owner"), "against"),
        (world.addr("buyer"), "abstain"),
    ]
    assert votes[0]["weight"] == str(3_000_000 * 10**18)
    assert votes[1]["reason"] == "too soon"


def test_parameters_are_listed_with_their_well_known_names(api: Api) -> None:
    by_name = {p["name"]: p for p in everything(api, "/parameters")}
    assert by_name["PROTOCOL_FEE_BPS"]["value"] == str(FEE_BPS)
    assert by_name["PROTOCOL_FEE_BPS"]["key"] == "0x" + keccak(b"PROTOCOL_FEE_BPS").hex()
    assert (
        by_name["FEATURE_GRID_PROGRAMMES"]["kind"],
        by_name["FEATURE_GRID_PROGRAMMES"]["value"],
    ) == (
        "flag",
        "1",
    )


def test_rewards_list_the_dimo_minted_to_an_account(api: Api, world: World) -> None:
    for who in ("buyer", "owner"):
        issued = everything(api, "/rewards", recipient=world.addr(who).lower())
        assert [int(r["amount"]) for r in issued] == world.mints[world.addr(who)]
        assert {r["recipient"] for r in issued} == {world.addr(who)}
    assert everything(api, "/rewards", recipient=world.addr("stranger")) == []


# --------------------------------------------------------------------------------------------
# Problems and OpenAPI
# --------------------------------------------------------------------------------------------


def test_unknown_ids_are_404_problems(api: Api) -> None:
    for path, slug in (
        ("/vehicles/987654321", "vehicle-not-found"),
        ("/vehicles/987654321/pairings", "vehicle-not-found"),
        ("/vehicles/987654321/grants", "vehicle-not-found"),
        ("/vehicles/987654321/opt-ins", "vehicle-not-found"),
        ("/vehicles/987654321/revenue", "vehicle-not-found"),
        ("/devices/0x" + "ab" * 20, "device-not-found"),
        ("/products/987654321", "product-not-found"),
        ("/proposals/12345", "proposal-not-found"),
        ("/proposals/" + "9" * 78, "proposal-not-found"),
        ("/proposals/12345/votes", "proposal-not-found"),
    ):
        body = assert_problem(api.client.get(path), 404, slug)
        assert body["instance"] == path


def test_malformed_parameters_are_validation_problems(api: Api) -> None:
    for path, params, pointer in (
        ("/vehicles", {"owner": "0x1234"}, "/query/owner"),
        ("/vehicles", {"owner": "0x" + "g" * 40}, "/query/owner"),
        ("/vehicles", {"year": "soon"}, "/query/year"),
        ("/vehicles", {"readable_by_me": "maybe"}, "/query/readable_by_me"),
        ("/vehicles/seven", {}, "/path/vehicle_id"),
        ("/vehicles/" + str(2**63), {}, "/path/vehicle_id"),
        ("/devices/0x12", {}, "/path/address"),
        ("/licences", {"buyer": "alice"}, "/query/buyer"),
        ("/grants", {"grantee": "0x" + "1" * 41}, "/query/grantee"),
        ("/proposals/abc", {}, "/path/proposal_id"),
        ("/proposals", {"status": "won"}, "/query/status"),
        ("/rewards", {"recipient": "me"}, "/query/recipient"),
    ):
        body = assert_problem(api.client.get(path, params=params), 422, "validation-error")
        assert [e["pointer"] for e in body["errors"]] == [pointer], (path, params)


def test_the_openapi_document_describes_every_identity_route(api: Api) -> None:
    doc = get(api, "/openapi.json")
    expected = {
        "/vehicles": {400, 401},
        "/vehicles/{vehicle_id}": {404},
        "/vehicles/{vehicle_id}/pairings": {400, 404},
        "/vehicles/{vehicle_id}/grants": {400, 404},
        "/vehicles/{vehicle_id}/opt-ins": {400, 404},
        "/vehicles/{vehicle_id}/revenue": {400, 404},
        "/devices": {400},
        "/devices/{address}": {404},
        "/manufacturers": {400},
        "/products": {400},
        "/products/{product_id}": {404},
        "/licences": {400},
        "/grants": {400},
        "/proposals": {400},
        "/proposals/{proposal_id}": {404},
        "/proposals/{proposal_id}/votes": {400, 404},
        "/parameters": {400},
        "/rewards": {400},
    }
    for path, statuses in expected.items():
        responses = doc["paths"][path]["get"]["responses"]
        assert "$ref" in responses["200"]["content"]["application/json"]["schema"], path
        for status in {*statuses, 422, 429}:
            assert set(responses[str(status)]["content"]) == {"application/problem+json"}, path
    assert doc["paths"]["/vehicles"]["get"]["security"] == [{"SiweJwt": []}, {}]
    page = doc["components"]["schemas"]["Page_VehicleOut_"]
    assert set(page["required"]) == {"items", "next_cursor"}


# --------------------------------------------------------------------------------------------
# A transfer seen live: grants listed, then voided after the next sync
# --------------------------------------------------------------------------------------------


def test_grants_listed_before_a_transfer_are_gone_after_the_next_sync(
    platform: dict[str, Any],
    owner: Any,
    other_owner: Any,
    stranger: Any,
    chain: Any,
    rpc_url: str,
    deployment_record: Path,
    tmp_path: Path,
) -> None:
    vehicles, rights = platform["VehicleId"], platform["VehicleRights"]
    tx = vehicles.mint("Kia", "EV6", 2023, vin_commitment("KNDC000000083999"), sender=owner)
    vid = int(tx.return_value)
    rights.grant(vid, stranger, 0b1, FAR_FUTURE, TERMS_CID, sender=owner)
    url, _ = fresh_db("sqlite", tmp_path)
    syncer = syncer_for(url, rpc_url, deployment_record)
    clock = Clock(int(chain.blocks.head.timestamp))
    try:
        syncer.backfill()
        with serve(syncer.engine, clock) as server, httpx.Client(base_url=server.url) as client:
            before = client.get(f"/vehicles/{vid}/grants").json()["items"]
            assert [g["grantee"] for g in before] == [stranger.address]
            headers = sign_in(client, private_key(stranger), clock)
            mine = client.get("/vehicles", params={"readable_by_me": "true"}, headers=headers)
            assert vid in ids(mine.json()["items"])

            vehicles.transferFrom(owner, other_owner, vid, sender=owner)
            syncer.backfill()
            clock.now = int(chain.blocks.head.timestamp)
            assert client.get(f"/vehicles/{vid}/grants").json()["items"] == []
            after = client.get(f"/vehicles/{vid}").json()
            assert (after["owner"], after["epoch"]) == (other_owner.address, 1)
            mine = client.get("/vehicles", params={"readable_by_me": "true"}, headers=headers)
            assert vid not in ids(mine.json()["items"])
    finally:
        syncer.close()
        syncer.engine.dispose()
