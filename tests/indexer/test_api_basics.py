"""The indexer API's skeleton over a real uvicorn server: OpenAPI, problems, rate limits, health.

Ends with a schemathesis run over the published OpenAPI document.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import APIRouter, FastAPI
from hypothesis import HealthCheck, settings
from siwe import SiweMessage
from sqlalchemy import Engine

from indexer.api.main import create_app
from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.migrate import upgrade

PROBLEMS = "https://dimo.local/problems/"
DOMAIN = "127.0.0.1:8700"
URI = "http://127.0.0.1:8700"


class Clock:
    """A settable wall clock the app reads (unix seconds)."""

    def __init__(self) -> None:
        self.now = time.time()

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


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'indexer.db'}"
    upgrade(url)  # every table: the routes read chain, telemetry and login tables
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_app(engine: Engine, clock: Clock, limit: int = 0) -> FastAPI:
    """The API with `limit` requests a minute per caller and a route that crashes."""
    app = create_app(
        IndexerSettings(
            siwe_domain=DOMAIN,
            siwe_uri=URI,
            siwe_chain_id=31337,
            jwt_secret="b" * 32,
            rate_limit_per_minute=limit,
        ),
        engine,
        clock=clock,
    )
    crash = APIRouter(prefix="/test", include_in_schema=False)

    @crash.get("/crash")
    def crash_route() -> None:
        raise RuntimeError("boom")

    app.include_router(crash)
    return app


@pytest.fixture
def api(engine: Engine, clock: Clock) -> Iterator[httpx.Client]:
    with (
        Served(make_app(engine, clock)) as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def limited(engine: Engine, clock: Clock) -> Iterator[str]:
    """The base URL of the API limited to 3 requests a minute per caller."""
    with Served(make_app(engine, clock, limit=3)) as served:
        yield served.url


def client_from(url: str, local_ip: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from `local_ip` (any of 127.0.0.0/8 on Linux)."""
    transport = httpx.HTTPTransport(local_address=local_ip)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def sign_in(client: httpx.Client, clock: Clock) -> tuple[str, str]:
    """Sign in a fresh wallet; returns its address and token."""
    wallet = Account.create()
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
    return wallet.address, str(r.json()["access_token"])


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert body["title"]
    return body


# --------------------------------------------------------------------------------------------
# OpenAPI, health and problems
# --------------------------------------------------------------------------------------------


def test_the_openapi_document_is_published(api: httpx.Client) -> None:
    r = api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert {"/healthz", "/auth/nonce", "/auth/login", "/auth/refresh", "/auth/me"} <= set(
        doc["paths"]
    )
    assert "/test/crash" not in doc["paths"]
    assert {"Problem", "ValidationProblem"} <= set(doc["components"]["schemas"])
    assert doc["components"]["securitySchemes"]["SiweJwt"]["scheme"] == "bearer"
    login = doc["paths"]["/auth/login"]["post"]["responses"]
    assert set(login["422"]["content"]) == {"application/problem+json"}
    assert set(login["401"]["content"]) == {"application/problem+json"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert "429" in operation["responses"], f"{method} {path} documents no 429"


def test_health_is_ok_when_the_database_answers(api: httpx.Client) -> None:
    r = api.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_health_is_a_503_problem_when_the_database_is_gone(tmp_path: Path, clock: Clock) -> None:
    gone = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'indexer.db'}")
    with Served(make_app(gone, clock)) as served:
        r = httpx.get(served.url + "/healthz", timeout=30)
    assert_problem(r, 503, "database-unavailable")


def test_an_unknown_path_is_a_404_problem(api: httpx.Client) -> None:
    body = assert_problem(api.get("/no/such/thing"), 404, "not-found")
    assert body["instance"] == "/no/such/thing"


def test_a_wrong_method_is_a_405_problem_naming_the_allowed_ones(api: httpx.Client) -> None:
    r = api.delete("/auth/login")
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "POST"


def test_an_invalid_body_is_a_422_problem_pointing_at_each_field(api: httpx.Client) -> None:
    r = api.post("/auth/login", json={"message": "", "signature": "0x12"})
    body = assert_problem(r, 422, "validation-error")
    assert sorted(e["pointer"] for e in body["errors"]) == ["/body/message", "/body/signature"]


def test_a_body_that_is_not_json_is_a_422_problem(api: httpx.Client) -> None:
    r = api.post("/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(r, 422, "validation-error")


def test_a_crash_is_a_500_problem_that_leaks_nothing(api: httpx.Client) -> None:
    body = assert_problem(api.get("/test/crash"), 500, "internal-error")
    assert "boom" not in str(body)


# --------------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------------


def test_responses_count_down_the_callers_budget(limited: str) -> None:
    with client_from(limited) as client:
        seen = [client.get("/auth/nonce").headers for _ in range(3)]
    assert [h["ratelimit-limit"] for h in seen] == ["3", "3", "3"]
    assert [h["ratelimit-remaining"] for h in seen] == ["2", "1", "0"]
    assert [h["ratelimit-reset"] for h in seen] == ["60", "60", "60"]
    assert seen[0]["ratelimit-policy"] == "3;w=60"


def test_the_request_past_the_limit_is_a_429_problem(limited: str, clock: Clock) -> None:
    with client_from(limited) as client:
        for _ in range(3):
            assert client.get("/auth/nonce").status_code == 200
        clock.now += 20
        r = client.get("/auth/nonce")
    body = assert_problem(r, 429, "rate-limited")
    assert r.headers["retry-after"] == "40"
    assert r.headers["ratelimit-remaining"] == "0"
    assert r.headers["ratelimit-reset"] == "40"
    assert body["retry_after"] == 40


def test_the_budget_refills_when_the_window_ends(limited: str, clock: Clock) -> None:
    with client_from(limited) as client:
        for _ in range(4):
            client.get("/auth/nonce")
        clock.now += 60
        r = client.get("/auth/nonce")
    assert r.status_code == 200
    assert r.headers["ratelimit-remaining"] == "2"


def test_each_client_address_has_its_own_budget(limited: str) -> None:
    with client_from(limited, "127.0.0.2") as one, client_from(limited, "127.0.0.3") as two:
        for _ in range(3):
            one.get("/auth/nonce")
        assert one.get("/auth/nonce").status_code == 429
        assert two.get("/auth/nonce").status_code == 200


def test_a_signed_in_wallet_has_its_own_budget_wherever_it_calls_from(
    limited: str, clock: Clock
) -> None:
    with client_from(limited, "127.0.0.4") as home, client_from(limited, "127.0.0.5") as away:
        _, token = sign_in(home, clock)  # uses 2 of home's 3 requests
        auth = {"Authorization": f"Bearer {token}"}
        assert home.get("/auth/me", headers=auth).headers["ratelimit-remaining"] == "2"
        assert away.get("/auth/me", headers=auth).headers["ratelimit-remaining"] == "1"
        assert home.get("/auth/me", headers=auth).headers["ratelimit-remaining"] == "0"
        assert_problem(away.get("/auth/me", headers=auth), 429, "rate-limited")
        assert home.get("/auth/nonce").status_code == 200  # the IP's own budget is apart


def test_health_probes_are_never_limited(limited: str) -> None:
    with client_from(limited, "127.0.0.6") as client:
        codes = {client.get("/healthz").status_code for _ in range(5)}
        assert "ratelimit-limit" not in client.get("/healthz").headers
    assert codes == {200}


def test_swagger_ui_and_redoc_load_only_local_assets_which_are_served_gzipped(
    api: httpx.Client,
) -> None:
    for page in ("/docs", "/redoc"):
        html = api.get(page)
        assert html.status_code == 200, page
        assert not re.search(r"https?://", html.text), f"{page} names another host"
        urls = re.findall(
            r"""(?:src|href|spec-url)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html.text
        )
        linked = [a or b for a, b in urls]
        assert "/openapi.json" in linked, page
        assert any(u.endswith(".js") for u in linked), page
        for url in linked:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            with api.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as asset:
                body = asset.read()
                assert asset.status_code == 200, url
                if url.endswith(".js"):
                    assert asset.headers["content-encoding"] == "gzip", url
                    assert asset.num_bytes_downloaded < len(body) / 2, url


# --------------------------------------------------------------------------------------------
# Bounds and empty parameters (found by schemathesis over the running stack)
# --------------------------------------------------------------------------------------------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _unbounded_integers(doc: dict[str, Any], schema: Any, where: str, seen: set[str]) -> list[str]:
    """Where `schema` lets an integer through without a lower and an upper bound."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        return _unbounded_integers(doc, _resolve(doc, schema), f"{where}<{name}>", seen | {name})
    out = []
    if schema.get("type") == "integer" and not (
        ("maximum" in schema or "exclusiveMaximum" in schema)
        and ("minimum" in schema or "exclusiveMinimum" in schema)
    ):
        out.append(where)
    for key, sub in schema.items():
        if key in ("properties", "$defs"):
            for name, item in sub.items():
                out += _unbounded_integers(doc, item, f"{where}.{name}", seen)
        elif key in ("items", "additionalProperties", "not"):
            out += _unbounded_integers(doc, sub, f"{where}[]", seen)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for i, item in enumerate(sub):
                out += _unbounded_integers(doc, item, f"{where}[{i}]", seen)
    return out


def test_every_integer_a_caller_sends_is_bounded_in_the_openapi_document(
    api: httpx.Client,
) -> None:
    doc = api.get("/openapi.json").json()
    unbounded = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                where = f"{method.upper()} {path} {param['in']} {param['name']}"
                unbounded += _unbounded_integers(doc, param.get("schema", {}), where, set())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                where = f"{method.upper()} {path} body"
                unbounded += _unbounded_integers(doc, media.get("schema", {}), where, set())
    assert unbounded == []


def test_an_input_past_64_bits_is_a_422_problem_not_a_500(api: httpx.Client, clock: Clock) -> None:
    _, token = sign_in(api, clock)
    r = api.post(
        "/apps/proofs",
        json={"vehicle_id": 1, "inputs": [[1 << 63, 0]]},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = assert_problem(r, 422, "validation-error")
    assert "inputs" in str(body)


def test_an_account_access_query_bounds_each_vehicle_id_and_leaves_unknown_ones_out(
    api: httpx.Client,
) -> None:
    account = "0x" + "ab" * 20
    for bad in (-1, 1 << 63):
        r = api.get(f"/accounts/{account}/access", params={"vehicle": [1, bad]})
        assert_problem(r, 422, "validation-error")
    r = api.get(f"/accounts/{account}/access", params={"vehicle": [987_654]})
    assert r.status_code == 200, r.text
    assert r.json() == []


def _list_routes(doc: dict[str, Any]) -> list[str]:
    return [
        path
        for path, item in doc["paths"].items()
        if any(p["name"] == "cursor" for p in item.get("get", {}).get("parameters", []))
    ]


def test_an_empty_cursor_means_the_first_page_on_every_list_route(
    api: httpx.Client, clock: Clock
) -> None:
    doc = api.get("/openapi.json").json()
    _, token = sign_in(api, clock)
    auth = {"Authorization": f"Bearer {token}"}
    routes = _list_routes(doc)
    assert len(routes) >= 17
    answered = 0
    for route in routes:
        # Path parameters: vehicle 1, product 1, epoch 0, an address or a signal name.
        path = route
        for param in doc["paths"][route]["get"]["parameters"]:
            if param["in"] != "path":
                continue
            schema = _resolve(doc, param.get("schema", {}))
            value = "1" if schema.get("type") == "integer" else "Vehicle.Speed"
            if "address" in param["name"] or "owner" in param["name"]:
                value = "0x" + "11" * 20
            path = path.replace("{" + param["name"] + "}", value)
        first = api.get(path, params={"limit": 5}, headers=auth)
        empty = api.get(path, params={"limit": 5, "cursor": ""}, headers=auth)
        assert (empty.status_code, empty.json()) == (first.status_code, first.json()), route
        answered += first.status_code == 200
    assert answered >= 10, "most list routes answer a first page on an empty index"


# --------------------------------------------------------------------------------------------
# Schemathesis over the published OpenAPI document
# --------------------------------------------------------------------------------------------


@pytest.fixture
def served_url(engine: Engine, clock: Clock) -> Iterator[str]:
    with Served(make_app(engine, clock)) as served:
        yield served.url


@pytest.fixture
def served_schema(served_url: str) -> Any:
    """The API's OpenAPI document as loaded by schemathesis from the running server."""
    return schemathesis.openapi.from_url(served_url + "/openapi.json")


@pytest.fixture
def signed_in_headers(served_url: str, clock: Clock) -> dict[str, str]:
    with client_from(served_url) as client:
        _, token = sign_in(client, clock)
    return {"Authorization": f"Bearer {token}"}


schema = schemathesis.pytest.from_fixture("served_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_conforms_to_its_openapi_document(
    case: Any, signed_in_headers: dict[str, str]
) -> None:
    # Excluded: "schema-valid data is accepted". JSON Schema cannot say what an EIP-4361
    # message is, so a schema-valid string that is not one is rightly a 400 problem.
    excluded = [schemathesis.checks.positive_data_acceptance]
    case.call_and_validate(excluded_checks=excluded)
    case.call_and_validate(headers=signed_in_headers, excluded_checks=excluded)


def test_the_published_methods_are_the_applications_own_rules(api: httpx.Client) -> None:
    """`/method` publishes the rules of the pure application (`apps`), not the indexer's I/O."""
    import apps.energy
    import apps.insurance

    energy = api.get("/apps/energy/method")
    assert energy.status_code == 200, energy.text
    assert energy.json()["method"] == apps.energy.__doc__
    assert '"10 of 10" baseline' in energy.json()["method"]
    insurance = api.get("/apps/insurance/method")
    assert insurance.status_code == 200, insurance.text
    assert insurance.json()["formula"].strip()
    assert insurance.json()["formula"] in (apps.insurance.__doc__ or "") + "".join(
        f.__doc__ or "" for f in vars(apps.insurance).values() if callable(f)
    )
