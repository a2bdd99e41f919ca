"""DIMO's Telemetry GraphQL (`/telemetry/query`) over real chain rights: anvil, anchored
batches synced into SQLite and PostgreSQL, the API served by uvicorn; asked with wallet
tokens, vehicle JWTs, and DIMO's own Python and npm SDKs.

Values are compared with our REST API's for the same vehicle and window.
"""

# The fixtures come from the loader and REST telemetry tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from strawberry.fastapi import GraphQLRouter
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

import indexer.api.graphql.telemetry as telemetry_graphql
from indexer.api.graphql.telemetry import (
    INLINE_COST,
    MAX_COST,
    MAX_FILTER_DEPTH,
    telemetry_context,
    telemetry_schema,
)
from protocol.blobstore import LocalCidStore
from protocol.eip712 import Eip712Domain
from protocol.jwt import issue_vehicle_token
from tests.conftest import FAR_FUTURE, TERMS_CID
from tests.indexer.test_api_telemetry import (
    LAT,
    LOCATION,
    URI,
    Anchored,
    World,
    advance,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    drive_samples,
    fleet,  # noqa: F401
    head_s,
    leaf_tuple,
    load,
    now_ms,  # noqa: F401
    proof_list,
    served_world,
    store,  # noqa: F401
)
from tests.indexer.test_dimo_sdks import REDIRECT, SDK_ESM
from tests.indexer.test_loader import IGNITION, SPEED

Fleet = tuple[list[tuple[int, LocalAccount]], int]
SECRET = b"t" * 32  # the `world` fixture's jwt_secret
NFT = "0x" + "11" * 20
LON = "Vehicle.CurrentLocation.Longitude"
SPAN_MS = 300_000
ALL_SCOPES = 0xFF


@pytest.fixture(params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store: LocalCidStore,
    rpc_url: str,
    deployment_record: Path,
) -> Iterator[World]:
    """The REST telemetry tests' `world`, whose API also exchanges tokens (it knows the chain),
    and serves the same schema run by Strawberry's own executor at `REFERENCE_PATH`."""
    with served_world(
        str(request.param),
        tmp_path,
        store,
        rpc_url,
        deployment_record,
        knows_chain=True,
        mount=_mount_reference,
    ) as w:
        yield w


#: Where `world` serves the Telemetry schema run by Strawberry's own executor (the served one
#: runs `LeanExecutor`), with the same context, for the equivalence test.
REFERENCE_PATH = "/telemetry/reference-query"


def _mount_reference(app: FastAPI) -> None:
    app.include_router(
        GraphQLRouter(
            telemetry_schema(StrawberryGraphQLCoreExecutionContext),
            path=REFERENCE_PATH,
            context_getter=telemetry_context,
            include_in_schema=False,
        )
    )


def rfc3339(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def vehicle_jwt(world: World, grantee: Any, car: int, privileges: list[int]) -> str:
    """A vehicle JWT as `POST /v1/tokens/exchange` issues it, for `grantee`'s licence."""
    return issue_vehicle_token(
        grantee.address,
        car,
        NFT,
        31337,
        privileges,
        [],
        SECRET,
        URI,
        world.clock(),
        600,
    )


def gql(
    world: World,
    token: str | None,
    query: str,
    variables: dict[str, Any] | None = None,
    path: str = "/telemetry/query",
) -> dict[str, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    r = httpx.post(
        world.base_url + path,
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wallet_token(world: World, account: Any) -> str:
    with world.client(account) as client:
        return str(client.headers["Authorization"]).removeprefix("Bearer ")


SIGNALS_QUERY = """
query S($tokenId: Int!, $from: Time!, $to: Time!) {
  signals(tokenId: $tokenId, interval: "1m", from: $from, to: $to) {
    timestamp
    avg: speed(agg: AVG) max: speed(agg: MAX) min: speed(agg: MIN)
    first: speed(agg: FIRST) last: speed(agg: LAST) med: speed(agg: MED) rand: speed(agg: RAND)
  }
}
"""


@pytest.fixture
def driven(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
) -> tuple[int, int, dict[str, list[tuple[int, Any]]]]:
    """A vehicle with five minutes of anchored speed, location, charge and ignition."""
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    samples = drive_samples(t0, t0 + SPAN_MS)
    samples[LON] = [(t, 11.5 + i * 1e-4) for i, (t, _) in enumerate(samples[LAT])]
    samples[IGNITION] = [(t, "ON" if i % 4 else "OFF") for i, (t, _) in enumerate(samples[LAT])]
    load(world, anchor_bundles, domain, key, car, samples)
    advance(400)
    return car, t0, samples


def ms_of(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp() * 1000)


def synced(world: World) -> None:
    world.sync()
    world.at(head_s() * 1000)


def window(car: int, t0: int) -> dict[str, Any]:
    return {"tokenId": car, "from": rfc3339(t0), "to": rfc3339(t0 + SPAN_MS)}


@pytest.fixture
def shared(
    world: World, driven: tuple[int, int, Any], owner: Any, stranger: Any, vehicle_rights: Any
) -> tuple[int, int, dict[str, list[tuple[int, Any]]]]:
    """`driven`, with every scope granted to `stranger`, synced."""
    vehicle_rights.grant(driven[0], stranger, ALL_SCOPES, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    return driven


def test_signals_equal_the_rest_series_for_each_aggregation(
    world: World, driven: tuple[int, int, Any], owner: Any
) -> None:
    car, t0, samples = driven
    synced(world)
    token = wallet_token(world, owner)
    body = gql(world, token, SIGNALS_QUERY, window(car, t0))
    assert "errors" not in body, body
    rows = body["data"]["signals"]
    with world.client(owner) as rest:
        for agg in ("avg", "max", "min", "first", "last"):
            r = rest.get(
                f"/vehicles/{car}/signals/{SPEED}",
                params={"start": t0, "end": t0 + SPAN_MS, "interval": 60_000, "agg": agg},
            )
            assert r.status_code == 200, r.text
            points = r.json()["points"]
            assert [row["timestamp"] for row in rows] == [rfc3339(p["t"]) for p in points]
            for row, p in zip(rows, points, strict=True):
                assert math.isclose(row[agg], p["value"])
    buckets: dict[int, list[float]] = {}
    for t, v in samples[SPEED]:
        buckets.setdefault(t0 + (t - t0) // 60_000 * 60_000, []).append(v)
    for row, (b, values) in zip(rows, sorted(buckets.items()), strict=True):
        assert row["timestamp"] == rfc3339(b)
        assert math.isclose(row["med"], statistics.median(values))
        assert row["rand"] in values
    again = gql(world, token, SIGNALS_QUERY, window(car, t0))["data"]["signals"]
    assert [r["rand"] for r in again] == [r["rand"] for r in rows]


FILTER_QUERY = """
query F($tokenId: Int!, $from: Time!, $to: Time!, $lo: Float!, $hi: Float!,
        $band: SignalFloatFilter, $picked: [Float!]) {
  signals(tokenId: $tokenId, interval: "1m", from: $from, to: $to) {
    timestamp
    all: speed(agg: AVG)
    fast: speed(agg: AVG, filter: {gt: $hi})
    band: speed(agg: MAX, filter: $band)
    outer: speed(agg: MIN, filter: {or: [{lt: $lo}, {gte: $hi}]})
    picked: speed(agg: FIRST, filter: {in: $picked, neq: 21})
    rest: speed(agg: LAST, filter: {notIn: $picked, lte: $hi})
    med: speed(agg: MED, filter: {eq: 42})
    one: speed(agg: RAND, filter: {in: 30})
  }
}
"""


def test_a_value_filter_counts_only_the_readings_it_lets_through(
    world: World, driven: tuple[int, int, Any], owner: Any
) -> None:
    """DIMO's per-field `filter` (SignalFloatFilter): each field aggregates the readings its
    filter passes, aliases of one signal with different filters answer apart, and an interval
    where no reading passes is null."""
    car, t0, samples = driven
    synced(world)
    lo, hi, picked = 30.0, 55.0, [21.0, 22.0, 23.0, 40.0]
    variables = {
        **window(car, t0),
        "lo": lo,
        "hi": hi,
        "band": {"gte": lo, "lt": 45},
        "picked": picked,
    }
    body = gql(world, wallet_token(world, owner), FILTER_QUERY, variables)
    assert "errors" not in body, body
    rows = body["data"]["signals"]
    buckets: dict[int, list[float]] = {}
    for t, v in samples[SPEED]:
        buckets.setdefault(t0 + (t - t0) // 60_000 * 60_000, []).append(v)
    assert [r["timestamp"] for r in rows] == [rfc3339(b) for b in sorted(buckets)]

    def agg(values: list[float], how: Callable[[list[float]], float]) -> float | None:
        return how(values) if values else None

    first: Callable[[list[float]], float] = lambda vs: vs[0]  # noqa: E731
    last: Callable[[list[float]], float] = lambda vs: vs[-1]  # noqa: E731
    for row, (_, values) in zip(rows, sorted(buckets.items()), strict=True):
        assert math.isclose(row["all"], statistics.mean(values))
        fast = agg([v for v in values if v > hi], statistics.mean)
        if fast is None:
            assert row["fast"] is None
        else:
            assert math.isclose(row["fast"], fast)
        assert row["band"] == agg([v for v in values if lo <= v < 45], max)
        assert row["outer"] == agg([v for v in values if v < lo or v >= hi], min)
        assert row["picked"] == agg([v for v in values if v in picked and v != 21], first)
        assert row["rest"] == agg([v for v in values if v not in picked and v <= hi], last)
        assert row["med"] == agg([v for v in values if v == 42], statistics.median)
        assert row["one"] == (30.0 if 30.0 in values else None)
    # Not vacuous: some intervals have a filtered value and some have none.
    assert any(r["fast"] is not None for r in rows)
    assert any(r["med"] is None for r in rows)
    assert any(r["med"] is not None for r in rows)


def test_a_value_filter_nested_too_deep_is_a_typed_error(
    world: World, driven: tuple[int, int, Any], owner: Any
) -> None:
    car, t0, _ = driven
    synced(world)
    nested = "{gt: 1}"
    for _ in range(MAX_FILTER_DEPTH):
        nested = f"{{or: [{nested}]}}"
    query = (
        "query F($tokenId: Int!, $from: Time!, $to: Time!) { signals(tokenId: $tokenId, "
        'interval: "1m", from: $from, to: $to) { timestamp '
        f"speed(agg: AVG, filter: {nested}) }} }}"
    )
    body = gql(world, wallet_token(world, owner), query, window(car, t0))
    assert body["data"] == {"signals": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_REQUEST"]
    assert "nests" in body["errors"][0]["message"]


def test_location_ignition_and_string_fields_take_each_of_their_aggregations(
    world: World, driven: tuple[int, int, Any], owner: Any
) -> None:
    car, t0, samples = driven
    synced(world)
    query = """query S($tokenId: Int!, $from: Time!, $to: Time!) {
      signals(tokenId: $tokenId, interval: "5m", from: $from, to: $to) {
        avg: currentLocationCoordinates(agg: AVG) { latitude longitude }
        first: currentLocationCoordinates(agg: FIRST) { latitude longitude }
        last: currentLocationCoordinates(agg: LAST) { latitude longitude }
        rand: currentLocationCoordinates(agg: RAND) { latitude longitude }
        on: isIgnitionOn(agg: AVG) onMed: isIgnitionOn(agg: MED) onLast: isIgnitionOn(agg: LAST)
        top: powertrainType(agg: TOP) unique: powertrainType(agg: UNIQUE)
        randType: powertrainType(agg: RAND) firstType: powertrainType(agg: FIRST)
        lastType: powertrainType(agg: LAST)
      }
    }"""
    body = gql(world, wallet_token(world, owner), query, window(car, t0))
    assert "errors" not in body, body
    [row] = body["data"]["signals"]
    points = list(zip(samples[LAT], samples[LON], strict=True))
    lats, lons = [a for _, a in samples[LAT]], [o for _, o in samples[LON]]
    assert math.isclose(row["avg"]["latitude"], sum(lats) / len(lats))
    assert math.isclose(row["avg"]["longitude"], sum(lons) / len(lons))
    assert row["first"] == {"latitude": lats[0], "longitude": lons[0]}
    assert row["last"] == {"latitude": lats[-1], "longitude": lons[-1]}
    assert (row["rand"]["latitude"], row["rand"]["longitude"]) in [
        (a, o) for (_, a), (_, o) in points
    ]
    ons = [1.0 if v == "ON" else 0.0 for _, v in samples[IGNITION]]
    assert math.isclose(row["on"], sum(ons) / len(ons))
    assert row["onMed"] == statistics.median(ons)
    assert row["onLast"] == ons[-1]
    assert [row[k] for k in ("top", "unique", "randType", "firstType", "lastType")] == [None] * 5


def test_location_without_its_privilege_answers_null_with_an_error_and_no_coordinate(
    world: World, driven: tuple[int, int, Any], owner: Any, stranger: Any, vehicle_rights: Any
) -> None:
    car, t0, samples = driven
    vehicle_rights.grant(car, stranger, ALL_SCOPES & ~LOCATION, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    token = vehicle_jwt(world, stranger, car, [1, 4])
    query = """query S($tokenId: Int!, $from: Time!, $to: Time!) {
      signals(tokenId: $tokenId, interval: "5m", from: $from, to: $to) {
        timestamp speed(agg: AVG) currentLocationCoordinates(agg: LAST) { latitude longitude }
      }
      signalsLatest(tokenId: $tokenId) { speed { value } currentLocationCoordinates {
        value { latitude longitude } } }
    }"""
    body = gql(world, token, query, window(car, t0))
    rows = body["data"]["signals"]
    assert rows
    assert all(r["currentLocationCoordinates"] is None for r in rows)
    assert all(r["speed"] is not None for r in rows)
    assert body["data"]["signalsLatest"]["currentLocationCoordinates"] is None
    assert body["data"]["signalsLatest"]["speed"]["value"] == samples[SPEED][-1][1]
    refusals = [e for e in body["errors"] if e["extensions"]["code"] == "FORBIDDEN"]
    assert refusals
    assert {e["extensions"]["missingPrivilege"] for e in refusals} == {"VEHICLE_ALL_TIME_LOCATION"}
    text = json.dumps(body)
    for _, lat in samples[LAT]:
        assert repr(lat) not in text


def test_a_vehicle_jwt_narrows_the_grant_to_its_privileges(
    world: World, driven: tuple[int, int, Any], owner: Any, stranger: Any, vehicle_rights: Any
) -> None:
    car, _, _ = driven
    vehicle_rights.grant(car, stranger, ALL_SCOPES, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    query = "query A($tokenId: Int!) { availableSignals(tokenId: $tokenId) }"
    wide = gql(world, vehicle_jwt(world, stranger, car, [1, 4]), query, {"tokenId": car})
    narrow = gql(world, vehicle_jwt(world, stranger, car, [1]), query, {"tokenId": car})
    assert wide["data"]["availableSignals"] == [
        "currentLocationCoordinates",
        "isIgnitionOn",
        "powertrainTractionBatteryStateOfChargeCurrent",
        "speed",
    ]
    assert narrow["data"]["availableSignals"] == [
        "isIgnitionOn",
        "powertrainTractionBatteryStateOfChargeCurrent",
        "speed",
    ]


def test_a_sale_ends_access_inside_the_vehicle_jwts_life(
    world: World,
    driven: tuple[int, int, Any],
    owner: Any,
    other_owner: Any,
    stranger: Any,
    vehicle_rights: Any,
    vehicle_id: Any,
) -> None:
    car, _, _ = driven
    vehicle_rights.grant(car, stranger, ALL_SCOPES, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    token = vehicle_jwt(world, stranger, car, [1])
    query = "query L($tokenId: Int!) { signalsLatest(tokenId: $tokenId) { speed { value } } }"
    assert gql(world, token, query, {"tokenId": car})["data"]["signalsLatest"]["speed"]
    vehicle_id.transferFrom(owner, other_owner, car, sender=owner)
    world.sync()  # the clock stays: the token has most of its ten minutes left
    after = gql(world, token, query, {"tokenId": car})
    assert after["data"]["signalsLatest"]["speed"] is None
    assert after["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_an_expired_grant_ends_access_inside_the_vehicle_jwts_life(
    world: World, driven: tuple[int, int, Any], owner: Any, stranger: Any, vehicle_rights: Any
) -> None:
    car, t0, _ = driven
    expiry = head_s() + 100
    vehicle_rights.grant(car, stranger, ALL_SCOPES, expiry, TERMS_CID, sender=owner)
    synced(world)
    world.at(expiry * 1000 - 1_000)
    token = vehicle_jwt(world, stranger, car, [1])
    assert "errors" not in gql(world, token, SIGNALS_QUERY, window(car, t0))
    world.at(expiry * 1000)
    after = gql(world, token, SIGNALS_QUERY, window(car, t0))
    assert after["data"]["signals"] is None
    assert after["errors"][0]["extensions"]["missingPrivilege"] == "VEHICLE_NON_LOCATION_DATA"


def _code(body: dict[str, Any]) -> str | None:
    assert body.get("data") is None or all(v is None for v in body["data"].values()), body
    extensions = body["errors"][0].get("extensions") or {}
    return extensions.get("code")


def test_bad_input_gets_a_typed_graphql_error(
    world: World, driven: tuple[int, int, Any], owner: Any, stranger: Any, vehicle_rights: Any
) -> None:
    car, t0, _ = driven
    vehicle_rights.grant(car, stranger, ALL_SCOPES, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    token = vehicle_jwt(world, stranger, car, [1])

    def ask(interval: str, start: int, end: int, field: str = "speed(agg: AVG)") -> Any:
        q = f"""query S($tokenId: Int!, $from: Time!, $to: Time!) {{
          signals(tokenId: $tokenId, interval: "{interval}", from: $from, to: $to) {{
            timestamp {field} }} }}"""
        return gql(world, token, q, {"tokenId": car, "from": rfc3339(start), "to": rfc3339(end)})

    assert _code(ask("1d", t0, t0 + SPAN_MS)) == "BAD_REQUEST"
    assert _code(ask("1m", t0 + SPAN_MS, t0)) == "BAD_REQUEST"
    too_many = ask("1ms", t0, t0 + SPAN_MS)
    assert _code(too_many) == "QUERY_TOO_COMPLEX"
    assert too_many["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": SPAN_MS,
        "limit": MAX_COST,
    }
    unknown = ask("1m", t0, t0 + SPAN_MS, field="warpDrive(agg: AVG)")
    assert "warpDrive" in unknown["errors"][0]["message"]
    latest = "query L($id: Int!) { signalsLatest(tokenId: $id) { speed { value } } }"
    wide = gql(world, token, latest, {"id": 2**31})
    assert "32-bit" in wide["errors"][0]["message"]
    text_id = gql(world, token, latest, {"id": "7"})
    assert "Int" in text_id["errors"][0]["message"]
    bad_time = gql(world, token, SIGNALS_QUERY, {**window(car, t0), "from": "yesterday"})
    assert "RFC 3339" in bad_time["errors"][0]["message"]
    world.at(world.clock() * 1000 + 601_000)
    assert _code(gql(world, token, latest, {"id": car})) == "UNAUTHENTICATED"
    world.at(head_s() * 1000)
    other = vehicle_jwt(world, stranger, car + 1, [1])
    assert _code(gql(world, other, latest, {"id": car})) == "FORBIDDEN"
    assert _code(gql(world, None, latest, {"id": car})) == "UNAUTHENTICATED"


# --------------------------------------------------------------------------------------------
# DIMO's SDKs, unchanged
# --------------------------------------------------------------------------------------------


@dataclass
class Licensed:
    car: int
    t0: int
    samples: dict[str, list[tuple[int, Any]]]
    client_id: str
    signer_key: str


@pytest.fixture
def licensed(
    world: World,
    driven: tuple[int, int, Any],
    owner: Any,
    developer: Any,
    developer_licence: Any,
    vehicle_rights: Any,
) -> Licensed:
    """A developer licence with a signer and a redirect URI, granted every scope on the car."""
    car, t0, samples = driven
    event = developer_licence.mint(sender=developer).events.filter(developer_licence.LicenceMinted)[
        0
    ]
    licence_id, client_id = int(event.licenceId), str(event.clientId)
    signer = Account.create()
    developer_licence.addSigner(licence_id, signer.address, sender=developer)
    developer_licence.setRedirectUri(licence_id, REDIRECT, True, sender=developer)
    vehicle_rights.grant(car, client_id, ALL_SCOPES, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    return Licensed(car, t0, samples, client_id, signer.key.hex())


def test_the_python_sdk_logs_in_exchanges_and_reads_daily_average_speed_unchanged(
    world: World, licensed: Licensed
) -> None:
    from dimo import DIMO
    from dimo.environments import dimo_environment

    saved = dict(dimo_environment["Production"])
    api = world.base_url
    dimo_environment["Production"].update(
        Auth=api, TokenExchange=api, Identity=api + "/query", Telemetry=api + "/telemetry/query"
    )
    try:
        dimo = DIMO("Production")
        dev = dimo.auth.get_dev_jwt(
            client_id=licensed.client_id, domain=REDIRECT, private_key=licensed.signer_key
        )
        token = dimo.token_exchange.exchange(
            developer_jwt=dev["access_token"], token_id=licensed.car
        )["token"]
        day = licensed.t0 // 86_400_000 * 86_400_000
        got = dimo.telemetry.get_daily_average_speed(
            vehicle_jwt=token,
            token_id=licensed.car,
            start_date=rfc3339(day),
            end_date=rfc3339(day + 2 * 86_400_000),
        )
        available = dimo.telemetry.available_signals(vehicle_jwt=token, token_id=licensed.car)
    finally:
        dimo_environment["Production"].clear()
        dimo_environment["Production"].update(saved)
    speeds = [v for _, v in licensed.samples[SPEED]]
    assert got["data"]["signals"][0]["timestamp"] == rfc3339(day)
    assert math.isclose(got["data"]["signals"][0]["avgSpeed"], sum(speeds) / len(speeds))
    assert "speed" in available["data"]["availableSignals"]


NPM_SCRIPT = """
const cfg = JSON.parse(process.argv[2]);
const { DIMO, DimoEnvironment } = await import(cfg.sdk);
Object.assign(DimoEnvironment.Production, {
  Auth: cfg.api, TokenExchange: cfg.api, Telemetry: cfg.api + "/telemetry/query",
});
const dimo = new DIMO("Production");
const developerJwt = await dimo.auth.getDeveloperJwt({
  client_id: cfg.client_id, domain: cfg.domain, private_key: cfg.key,
});
const vehicleJwt = await dimo.tokenexchange.exchange({
  ...developerJwt, privileges: [1, 4], tokenId: cfg.car,
});
const out = await dimo.telemetry.query({
  ...vehicleJwt,
  query: `{ signals(tokenId: ${cfg.car}, interval: "24h", from: "${cfg.from}",
    to: "${cfg.to}") { timestamp maxSpeed: speed(agg: MAX) } }`,
});
console.log(JSON.stringify(out));
"""


def test_the_npm_sdk_logs_in_exchanges_and_runs_a_signals_query_unchanged(
    world: World, licensed: Licensed, tmp_path: Path
) -> None:
    day = licensed.t0 // 86_400_000 * 86_400_000
    config = {
        "sdk": SDK_ESM.as_uri(),
        "api": world.base_url,
        "client_id": licensed.client_id,
        "domain": REDIRECT,
        "key": licensed.signer_key.removeprefix("0x"),  # the SDK prefixes 0x itself
        "car": licensed.car,
        "from": rfc3339(day),
        "to": rfc3339(day + 2 * 86_400_000),
    }
    script = tmp_path / "telemetry.mjs"
    script.write_text(NPM_SCRIPT)
    done = subprocess.run(
        ["node", str(script), json.dumps(config)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout.strip().splitlines()[-1])
    assert body["data"]["signals"] == [
        {"timestamp": rfc3339(day), "maxSpeed": max(v for _, v in licensed.samples[SPEED])}
    ]


def test_signals_latest_equals_the_rest_latest(
    world: World, driven: tuple[int, int, Any], owner: Any
) -> None:
    car, _, samples = driven
    synced(world)
    query = """query L($tokenId: Int!) { signalsLatest(tokenId: $tokenId) { lastSeen
      speed { timestamp value } powertrainType { value }
      currentLocationCoordinates { value { latitude } } } }"""
    body = gql(world, wallet_token(world, owner), query, {"tokenId": car})
    assert "errors" not in body, body
    with world.client(owner) as rest:
        r = rest.get(f"/vehicles/{car}/latest", params={"signal": [SPEED, LAT]})
    latest = {v["signal"]: v for v in r.json()["values"]}
    got = body["data"]["signalsLatest"]
    assert got["speed"] == {
        "timestamp": rfc3339(latest[SPEED]["t"]),
        "value": latest[SPEED]["value"],
    }
    assert got["currentLocationCoordinates"]["value"]["latitude"] == latest[LAT]["value"]
    assert got["speed"]["value"] == samples[SPEED][-1][1]
    assert got["powertrainType"] is None


# --------------------------------------------------------------------------------------------
# proofs
# --------------------------------------------------------------------------------------------

PROOF_QUERY = """query P($tokenId: Int!) { signalsLatest(tokenId: $tokenId) {
  speed { timestamp value proof } currentLocationCoordinates { proof } } }"""


def test_a_latest_value_comes_with_the_proof_the_rest_route_serves(
    world: World, driven: tuple[int, int, Any], owner: Any
) -> None:
    car, _, samples = driven
    synced(world)
    body = gql(world, wallet_token(world, owner), PROOF_QUERY, {"tokenId": car})
    assert "errors" not in body, body
    got = body["data"]["signalsLatest"]
    t = samples[SPEED][-1][0]
    with world.client(owner) as rest:
        speed = rest.get(f"/vehicles/{car}/signals/{SPEED}/readings/{t}/proof").json()
        lat_t = samples[LAT][-1][0]
        lat = rest.get(f"/vehicles/{car}/signals/{LAT}/readings/{lat_t}/proof").json()
    assert got["speed"]["proof"] == speed
    assert got["speed"]["proof"]["reading"]["value"] == got["speed"]["value"]
    assert got["currentLocationCoordinates"]["proof"]["latitude"] == lat


def test_a_proof_discloses_only_what_the_vehicle_jwts_privileges_cover(
    world: World, driven: tuple[int, int, Any], owner: Any, stranger: Any, vehicle_rights: Any
) -> None:
    car, _, samples = driven
    vehicle_rights.grant(car, stranger, ALL_SCOPES, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    query = "query P($tokenId: Int!) { signalsLatest(tokenId: $tokenId) { speed { value proof } } }"
    narrow = gql(world, vehicle_jwt(world, stranger, car, [1]), query, {"tokenId": car})
    wide = gql(world, vehicle_jwt(world, stranger, car, [1, 4]), query, {"tokenId": car})
    # The bundle also holds the location: without it, no whole-bundle proof is disclosed.
    assert (
        narrow["data"]["signalsLatest"] is None or narrow["data"]["signalsLatest"]["speed"] is None
    )
    assert narrow["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "errors" not in wide, wide
    assert (
        wide["data"]["signalsLatest"]["speed"]["proof"]["reading"]["value"]
        == (samples[SPEED][-1][1])
    )


ROW_PROOF_QUERY = """query S($tokenId: Int!, $from: Time!, $to: Time!) {
  signals(tokenId: $tokenId, interval: "1m", from: $from, to: $to) {
    timestamp
    first: speed(agg: FIRST) pFirst: proof(signal: "speed", agg: FIRST)
    last: speed(agg: LAST) pLast: proof(signal: "speed", agg: LAST)
    min: speed(agg: MIN) pMin: proof(signal: "speed", agg: MIN)
    max: speed(agg: MAX) pMax: proof(signal: "speed", agg: MAX)
    rand: speed(agg: RAND) pRand: proof(signal: "speed", agg: RAND)
    loc: currentLocationCoordinates(agg: LAST) { latitude longitude }
    pLoc: proof(signal: "currentLocationCoordinates", agg: LAST)
  }
}"""


def test_each_selecting_aggregation_comes_with_its_readings_proof_that_verifies_on_chain(
    world: World, driven: tuple[int, int, Any], owner: Any, platform: Any
) -> None:
    car, t0, samples = driven
    synced(world)
    body = gql(world, wallet_token(world, owner), ROW_PROOF_QUERY, window(car, t0))
    assert "errors" not in body, body
    rows = body["data"]["signals"]
    plain = gql(world, wallet_token(world, owner), SIGNALS_QUERY, window(car, t0))
    # Asking for proofs changes no value.
    assert [{k: r[k] for k in ("first", "last", "min", "max", "rand")} for r in rows] == [
        {k: r[k] for k in ("first", "last", "min", "max", "rand")} for r in plain["data"]["signals"]
    ]
    anchor = platform["AttestationAnchor"]
    speeds = samples[SPEED]
    with world.client(owner) as rest:
        for row in rows:
            b = ms_of(row["timestamp"])
            inside = [(t, v) for t, v in speeds if b <= t < b + 60_000]
            expected = {
                "first": inside[0],
                "last": inside[-1],
                "min": min(inside, key=lambda p: (p[1], p[0])),
                "max": min(inside, key=lambda p: (-p[1], p[0])),
            }
            for agg in ("first", "last", "min", "max", "rand"):
                proof = row["p" + agg.capitalize()]
                assert proof["reading"]["value"] == row[agg]
                if agg in expected:
                    assert proof["reading"]["t"] == expected[agg][0]
                else:
                    assert (proof["reading"]["t"], row[agg]) in inside
                t = proof["reading"]["t"]
                served = rest.get(f"/vehicles/{car}/signals/{SPEED}/readings/{t}/proof").json()
                assert proof == served
                assert anchor.verifyReading(
                    proof["batch"]["id"], leaf_tuple(proof), proof_list(proof)
                )
            loc = row["pLoc"]
            assert loc["latitude"]["reading"]["value"] == row["loc"]["latitude"]
            assert loc["longitude"]["reading"]["value"] == row["loc"]["longitude"]
            assert anchor.verifyReading(
                loc["latitude"]["batch"]["id"],
                leaf_tuple(loc["latitude"]),
                proof_list(loc["latitude"]),
            )
    # The check is not vacuous: one reading's leaf does not verify with another bundle's path.
    a, z = rows[0]["pFirst"], rows[-1]["pLast"]
    assert a["leaf_index"] != z["leaf_index"] or a["batch"]["id"] != z["batch"]["id"]
    assert not anchor.verifyReading(a["batch"]["id"], leaf_tuple(a), proof_list(z))


def test_a_proof_of_a_combining_aggregation_or_a_bad_signal_is_a_typed_error(
    world: World, driven: tuple[int, int, Any], owner: Any
) -> None:
    car, t0, _ = driven
    synced(world)
    token = wallet_token(world, owner)

    def ask(args: str) -> Any:
        q = f"""query S($tokenId: Int!, $from: Time!, $to: Time!) {{
          signals(tokenId: $tokenId, interval: "1m", from: $from, to: $to) {{
            speed(agg: AVG) proof({args}) }} }}"""
        return gql(world, token, q, window(car, t0))

    for agg in ("AVG", "MED", "TOP", "UNIQUE"):
        got = ask(f'signal: "speed", agg: {agg}')
        assert _code(got) == "PROOF_UNAVAILABLE"
        assert agg in got["errors"][0]["message"]
    assert _code(ask('signal: "warpDrive", agg: MAX')) == "BAD_REQUEST"
    assert _code(ask('signal: "currentLocationCoordinates", agg: MAX')) == "BAD_REQUEST"
    assert "ProofAggregation" in ask('signal: "speed", agg: SUM')["errors"][0]["message"]
    # A field not carried here has no value and no proof.
    nothing = ask('signal: "powertrainType", agg: FIRST')
    assert "errors" not in nothing, nothing
    assert all(r["proof"] is None for r in nothing["data"]["signals"])


def test_a_proof_on_signals_needs_the_rights_of_its_signal(
    world: World, driven: tuple[int, int, Any], owner: Any, stranger: Any, vehicle_rights: Any
) -> None:
    car, t0, samples = driven
    vehicle_rights.grant(car, stranger, ALL_SCOPES & ~LOCATION, FAR_FUTURE, TERMS_CID, sender=owner)
    synced(world)
    q = """query S($tokenId: Int!, $from: Time!, $to: Time!) {
      signals(tokenId: $tokenId, interval: "5m", from: $from, to: $to) {
        speed(agg: MAX) p: proof(signal: "currentLocationCoordinates", agg: FIRST) } }"""
    body = gql(world, vehicle_jwt(world, stranger, car, [1, 4]), q, window(car, t0))
    assert body["data"]["signals"][0]["speed"] == max(v for _, v in samples[SPEED])
    assert body["data"]["signals"][0]["p"] is None
    assert body["errors"][0]["extensions"]["missingPrivilege"] == "VEHICLE_ALL_TIME_LOCATION"
    for _, lat in samples[LAT]:
        assert repr(lat) not in json.dumps(body)


# --------------------------------------------------------------------------------------------
# segments and events
# --------------------------------------------------------------------------------------------

SEGMENTS_QUERY = """query G($tokenId: Int!, $from: Time!, $to: Time!, $m: DetectionMechanism!) {
  segments(tokenId: $tokenId, from: $from, to: $to, mechanism: $m,
           config: {maxGapSeconds: 60, minSegmentDurationSeconds: 0}) {
    startTime endTime durationSeconds isOngoing startedBeforeRange
    start { timestamp value { latitude longitude } proof }
  }
}"""


def test_segments_are_the_rest_trips_and_charging_sessions(
    world: World, driven: tuple[int, int, Any], owner: Any, platform: Any
) -> None:
    car, t0, samples = driven
    synced(world)
    token = wallet_token(world, owner)
    trips = gql(world, token, SEGMENTS_QUERY, {**window(car, t0), "m": "ignitionDetection"})
    charging = gql(world, token, SEGMENTS_QUERY, {**window(car, t0), "m": "recharge"})
    assert "errors" not in trips, trips
    with world.client(owner) as rest:
        params = {"start": t0, "end": t0 + SPAN_MS, "gap_s": 60, "min_s": 0}
        want = rest.get(f"/vehicles/{car}/trips", params=params).json()["trips"]
        sessions = rest.get(f"/vehicles/{car}/charging-sessions", params=params).json()
    got = trips["data"]["segments"]
    assert len(got) == len(want) > 1
    for g, w in zip(got, want, strict=True):
        assert g["startTime"] == rfc3339(w["start"])
        assert g["startedBeforeRange"] == (w["start"] - 60_000 < t0)
        if not g["isOngoing"]:
            assert g["endTime"] == rfc3339(w["end"])
            assert g["durationSeconds"] == (w["end"] - w["start"]) // 1000
        first = next((t, v) for t, v in samples[LAT] if t >= w["start"])
        assert g["start"]["value"]["latitude"] == first[1]
        assert g["start"]["proof"]["latitude"]["reading"]["t"] == first[0]
    assert got[-1]["isOngoing"]
    assert got[-1]["endTime"] is None
    assert charging["data"]["segments"] == [] == sessions["sessions"]
    anchor = platform["AttestationAnchor"]
    p = got[0]["start"]["proof"]["latitude"]
    assert anchor.verifyReading(p["batch"]["id"], leaf_tuple(p), proof_list(p))


def test_segments_locations_need_the_location_privilege_and_other_mechanisms_are_refused(
    world: World, shared: tuple[int, int, Any], stranger: Any
) -> None:
    car, t0, samples = shared
    narrow = vehicle_jwt(world, stranger, car, [1])
    body = gql(world, narrow, SEGMENTS_QUERY, {**window(car, t0), "m": "ignitionDetection"})
    assert body["data"]["segments"]
    assert all(s["start"] is None and s["startTime"] for s in body["data"]["segments"])
    assert {e["extensions"]["missingPrivilege"] for e in body["errors"]} == {
        "VEHICLE_ALL_TIME_LOCATION"
    }
    for _, lat in samples[LAT]:
        assert repr(lat) not in json.dumps(body)
    other = gql(world, narrow, SEGMENTS_QUERY, {**window(car, t0), "m": "frequencyAnalysis"})
    assert _code(other) == "BAD_REQUEST"
    assert "frequencyAnalysis" in other["errors"][0]["message"]
    long = {**window(car, t0), "to": rfc3339(t0 + 32 * 86_400_000), "m": "recharge"}
    assert _code(gql(world, narrow, SEGMENTS_QUERY, long)) == "BAD_REQUEST"
    # Without DRIVING (a JWT holding only the location), no trip.
    loc_only = gql(
        world,
        vehicle_jwt(world, stranger, car, [4]),
        SEGMENTS_QUERY,
        {**window(car, t0), "m": "ignitionDetection"},
    )
    assert _code(loc_only) == "FORBIDDEN"


EVENTS_QUERY = """query E($tokenId: Int!, $from: Time!, $to: Time!, $filter: EventFilter) {
  events(tokenId: $tokenId, from: $from, to: $to, filter: $filter) {
    timestamp name source durationNs metadata
  }
}"""


def test_events_are_the_insurance_apps_harsh_brakings_filtered_and_need_driving(
    world: World, shared: tuple[int, int, Any], stranger: Any
) -> None:
    from apps.events import DetectorState, detect

    car, t0, samples = shared
    token = vehicle_jwt(world, stranger, car, [1])
    body = gql(world, token, EVENTS_QUERY, window(car, t0))
    assert "errors" not in body, body
    found = detect({SPEED: samples[SPEED]}, DetectorState())
    brakings = [e for e in found if e.name == "behavior.harshBraking"]
    assert len(brakings) >= 2  # the speed trace falls from 69 to 20 km/h in 2 s, twice
    assert body["data"]["events"] == [
        {
            "timestamp": rfc3339(e.ts),
            "name": "HarshBraking",
            "source": "dimo-insurance-v1",
            "durationNs": e.duration_ms * 1_000_000,
            "metadata": json.dumps({"value": e.value, "unit": "mph/s"}),
        }
        for e in brakings
    ]
    none = gql(
        world,
        token,
        EVENTS_QUERY,
        {**window(car, t0), "filter": {"name": {"in": ["HarshCornering", "HarshAcceleration"]}}},
    )
    assert none["data"]["events"] == []
    same = gql(
        world, token, EVENTS_QUERY, {**window(car, t0), "filter": {"name": {"eq": "HarshBraking"}}}
    )
    assert same["data"]["events"] == body["data"]["events"]
    refused = gql(world, vehicle_jwt(world, stranger, car, [4]), EVENTS_QUERY, window(car, t0))
    assert _code(refused) == "FORBIDDEN"
    assert refused["errors"][0]["extensions"]["missingPrivilege"] == "VEHICLE_NON_LOCATION_DATA"


def test_bad_input_to_proofs_segments_and_events_is_a_typed_error_and_changes_nothing(
    world: World, shared: tuple[int, int, Any], stranger: Any
) -> None:
    car, t0, _ = shared
    token = vehicle_jwt(world, stranger, car, [1, 4])
    before = gql(world, token, ROW_PROOF_QUERY, window(car, t0))
    assert "errors" not in before, before
    # tokenId: not an Int, or over 32 bits.
    for bad in ("7", 2**31, 1.5):
        got = gql(world, token, ROW_PROOF_QUERY, {**window(car, t0), "tokenId": bad})
        assert got.get("data") is None
        assert "Int" in got["errors"][0]["message"]
    # Over-complex: a proof costs as a signal field, per interval.
    q = """query S($tokenId: Int!, $from: Time!, $to: Time!) {
      signals(tokenId: $tokenId, interval: "10ms", from: $from, to: $to) {
        proof(signal: "speed", agg: LAST) } }"""
    heavy = gql(world, token, q, window(car, t0))
    assert _code(heavy) == "QUERY_TOO_COMPLEX"
    assert heavy["errors"][0]["extensions"]["cost"] == SPAN_MS // 10
    # A bad interval, from after to, an unknown field, for segments and events too.
    assert _code(gql(world, token, q.replace("10ms", "1 hour"), window(car, t0))) == "BAD_REQUEST"
    backwards = {**window(car, t0), "from": rfc3339(t0 + SPAN_MS), "to": rfc3339(t0)}
    assert _code(gql(world, token, EVENTS_QUERY, backwards)) == "BAD_REQUEST"
    assert _code(gql(world, token, SEGMENTS_QUERY, {**backwards, "m": "recharge"})) == (
        "BAD_REQUEST"
    )
    unknown = gql(world, token, EVENTS_QUERY.replace("metadata", "severity"), window(car, t0))
    assert "severity" in unknown["errors"][0]["message"]
    bad_config = SEGMENTS_QUERY.replace("maxGapSeconds: 60", "maxGapSeconds: 0")
    got = gql(world, token, bad_config, {**window(car, t0), "m": "ignitionDetection"})
    assert _code(got) == "BAD_REQUEST"
    assert got["errors"][0]["extensions"]["argument"] == "config.maxGapSeconds"
    # An expired vehicle JWT, on every query.
    world.at(world.clock() * 1000 + 601_000)
    for query, extra in ((EVENTS_QUERY, {}), (SEGMENTS_QUERY, {"m": "recharge"})):
        expired = gql(world, token, query, {**window(car, t0), **extra})
        assert _code(expired) == "UNAUTHENTICATED"
        assert "expired" in expired["errors"][0]["message"]
    assert _code(gql(world, token, ROW_PROOF_QUERY, window(car, t0))) == "UNAUTHENTICATED"
    world.at(head_s() * 1000)
    # Nothing changed.
    again = gql(world, vehicle_jwt(world, stranger, car, [1, 4]), ROW_PROOF_QUERY, window(car, t0))
    assert again == before


def readme_python_block(marker: str) -> str:
    """The README's Python block holding `marker`, verbatim."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    return next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b)


def test_the_readmes_sdk_snippet_reads_a_speed_and_its_proof_verifies_on_chain(
    world: World,
    licensed: Licensed,
    rpc_url: str,
    deployment_record: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README block runs as written; only the local stack's addresses and its vehicle 1
    become this test's (its API, its anvil, its vehicle)."""
    from dimo.environments import dimo_environment

    code = readme_python_block("verify_reading_proof")
    assert len(code.splitlines()) <= 15
    for old, new in (
        ('"http://127.0.0.1:8700"', repr(world.base_url)),
        ('"http://127.0.0.1:8545"', repr(rpc_url)),
        ("token_id=1)", f"token_id={licensed.car})"),
        ("tokenId: 1)", f"tokenId: {licensed.car})"),
    ):
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    (tmp_path / "data" / "deployments").mkdir(parents=True)
    (tmp_path / "data" / "deployments" / "31337.json").write_bytes(deployment_record.read_bytes())
    monkeypatch.chdir(tmp_path)
    saved = dict(dimo_environment["Production"])
    scope: dict[str, Any] = {
        "CLIENT_ID": licensed.client_id,
        "REDIRECT_URI": REDIRECT,
        "SIGNER_KEY": licensed.signer_key,
    }
    try:
        exec(compile(code, "README.md", "exec"), scope)
    finally:
        dimo_environment["Production"].clear()
        dimo_environment["Production"].update(saved)
    speed = licensed.samples[SPEED][-1]
    proof = scope["speed"]["proof"]
    assert (proof["reading"]["t"], proof["reading"]["value"]) == speed
    out = capsys.readouterr().out.splitlines()[-1]  # after the chain fixtures' log lines
    assert out.startswith(f"{speed[1]} {{")
    for shown in (f"'value': {speed[1]}", f"'batch': {proof['batch']['id']}", f"'ts': {speed[0]}"):
        assert shown in out


# --------------------------------------------------------------------------------------------
# the lean executor answers as Strawberry's
# --------------------------------------------------------------------------------------------

_WINDOW_VARS = "query Q($tokenId: Int!, $from: Time!, $to: Time!)"
EQUIVALENCE_QUERIES = (
    SIGNALS_QUERY,
    ROW_PROOF_QUERY,
    f"""{_WINDOW_VARS} {{ signals(tokenId: $tokenId, interval: "2m", from: $from, to: $to) {{
      timestamp a: speed(agg: AVG) speed(agg: MAX)
      powertrainTractionBatteryStateOfChargeCurrent(agg: LAST)
      isIgnitionOn(agg: FIRST) powertrainType(agg: TOP)
      currentLocationCoordinates(agg: FIRST) {{ latitude longitude }}
      ... on SignalAggregations {{ __typename m: speed(agg: MED) }}
      p: proof(signal: "speed", agg: MIN) }} }}""",
    f"""{_WINDOW_VARS} {{ signals(tokenId: $tokenId, interval: "1m", from: $from, to: $to) {{
      timestamp speed(agg: AVG) proof(signal: "speed", agg: AVG) }} }}""",
    f"""{_WINDOW_VARS} {{ signals(tokenId: $tokenId, interval: "1m", from: $from, to: $to) {{
      timestamp speed(agg: AVG) f: speed(agg: AVG, filter: {{gt: 30, or: [{{lt: 40}}, {{eq: 60}}]}})
      g: speed(agg: MED, filter: {{notIn: [20, 21]}}) }} }}""",
    f"""{_WINDOW_VARS} {{ signals(tokenId: $tokenId, interval: "1m", from: $to, to: $from) {{
      timestamp }} }}""",
    """query Q($tokenId: Int!) { signalsLatest(tokenId: $tokenId) { lastSeen
      speed { timestamp value proof } powertrainType { value }
      currentLocationCoordinates { timestamp value { latitude longitude } proof } } }""",
    "query Q($tokenId: Int!) { availableSignals(tokenId: $tokenId) }",
    "query Q($tokenId: Int!) { a: availableSignals(tokenId: $tokenId) b: availableSignals"
    "(tokenId: 999999) }",
)


def test_the_lean_executor_answers_every_query_as_strawberrys_own(
    world: World, shared: tuple[int, int, Any], stranger: Any, owner: Any
) -> None:
    """Every query of a table, asked with tokens that read everything, part of it (location
    refused: null fields with errors naming the privilege), another vehicle's, none and a bad
    one, gets the same answer (data and errors) from the served schema (`LeanExecutor`) and
    from the same schema run by Strawberry's executor."""
    car, t0, _ = shared
    tokens = {
        "owner": wallet_token(world, owner),
        "all": vehicle_jwt(world, stranger, car, [1, 3, 4]),
        "no location": vehicle_jwt(world, stranger, car, [1]),
        "other vehicle": vehicle_jwt(world, stranger, car + 1, [1, 3, 4]),
        "none": None,
        "bad": "not-a-token",
    }
    compared = errors = valued = 0
    for query in EQUIVALENCE_QUERIES:
        variables = {"tokenId": car} if "$from" not in query else window(car, t0)
        for who, token in tokens.items():
            lean = gql(world, token, query, variables)
            reference = gql(world, token, query, variables, path=REFERENCE_PATH)
            assert lean == reference, (who, query)
            compared += 1
            errors += "errors" in lean
            valued += any((lean.get("data") or {}).values())
    # Not vacuous: answers with values and answers with errors were both compared.
    assert compared == len(EQUIVALENCE_QUERIES) * len(tokens)
    assert 0 < errors < compared
    assert valued > len(EQUIVALENCE_QUERIES)


def test_small_queries_run_in_the_loop_thread_and_the_others_in_a_worker(
    world: World, driven: tuple[int, int, Any], owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query of at most `INLINE_COST` cells, each aggregated in SQL, and `signalsLatest` and
    `availableSignals`, run their database work in the event loop's thread; raw-reading
    aggregations, value filters and bigger queries in a worker thread. Both answer alike."""
    car, t0, _ = driven
    synced(world)
    token = wallet_token(world, owner)
    in_loop: list[bool] = []
    read_access = telemetry_graphql._access_of

    def spy(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            in_loop.append(True)
        except RuntimeError:  # a worker thread runs no loop
            in_loop.append(False)
        return read_access(*args)

    monkeypatch.setattr(telemetry_graphql, "_access_of", spy)

    signals = (
        "query Q($tokenId: Int!, $from: Time!, $to: Time!) { signals(tokenId: $tokenId, "
        'interval: "%s", from: $from, to: $to) { timestamp %s } }'
    )

    def where(query: str, variables: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Whether `query` read its rights in the loop's thread, and its answer."""
        in_loop.clear()
        body = gql(world, token, query, variables)
        assert "errors" not in body, body
        assert len(in_loop) == 1
        return in_loop[0], body["data"]

    between = window(car, t0)
    inline, small = where(signals % ("1m", "speed(agg: MAX)"), between)
    assert inline
    proved, _ = where(
        signals % ("1m", 'speed(agg: AVG) p: proof(signal: "speed", agg: MAX)'), between
    )
    assert proved
    threaded, with_med = where(signals % ("1m", "speed(agg: MAX) m: speed(agg: MED)"), between)
    assert not threaded
    assert not where(signals % ("1m", "speed(agg: AVG, filter: {gt: 1})"), between)[0]
    assert INLINE_COST < 300  # 300 one-second intervals of one field: past the bound
    assert not where(signals % ("1s", "speed(agg: AVG)"), between)[0]
    only_car = {"tokenId": car}
    latest = "query L($tokenId: Int!) { signalsLatest(tokenId: $tokenId) { speed { value } } }"
    assert where(latest, only_car)[0]
    assert where("query A($tokenId: Int!) { availableSignals(tokenId: $tokenId) }", only_car)[0]
    # Both paths answer alike, a value an interval.
    assert len(small["signals"]) == 5
    assert all(r["speed"] is not None for r in small["signals"])
    assert [r["speed"] for r in small["signals"]] == [r["speed"] for r in with_med["signals"]]
