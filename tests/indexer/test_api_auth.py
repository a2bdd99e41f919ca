"""Sign-In with Ethereum and JWTs of the indexer API, served by uvicorn on SQLite and PostgreSQL.

Messages are built and signed by independent code: the PyPI `siwe` package and eth-account.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from siwe import SiweMessage as PypiSiweMessage
from sqlalchemy import Engine, create_engine, func, select, text

from indexer.api.auth import encode_jwt, login_nonces, parse_siwe_message
from indexer.api.deps import Caller, DbConn, OptionalCaller
from indexer.api.main import create_app
from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.exceptions import MalformedSiweMessage

PG_URL = os.environ.get("DIMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PROBLEMS = "https://dimo.local/problems/"
DOMAIN = "app.dimo.test"
URI = "https://app.dimo.test"
CHAIN_ID = 31337
SECRET = "s" * 40


class Clock:
    """A settable wall clock the app reads (unix seconds)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def dt(self, delta_s: float = 0) -> datetime:
        return datetime.fromtimestamp(self.now + delta_s, UTC)


class Served:
    """An app served by uvicorn in a thread on 127.0.0.1 (a real HTTP server)."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
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


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    """A fresh database with the nonce table: a temp SQLite file, or a fresh PG schema."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'indexer.db'}")
        login_nonces.create(eng)
        yield eng
        eng.dispose()
        return
    admin = create_engine(PG_URL)
    schema = f"indexer_api_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        login_nonces.create(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(engine: Engine, clock: Clock) -> FastAPI:
    """The API with a protected test route `/test/whoami` using `Caller` and `DbConn`."""
    app_settings = IndexerSettings(
        siwe_domain=DOMAIN,
        siwe_uri=URI,
        siwe_chain_id=CHAIN_ID,
        jwt_secret=SECRET,
        jwt_ttl_s=900,
        nonce_ttl_s=300,
        session_max_s=3600,
        rate_limit_per_minute=0,
    )
    app = create_app(app_settings, engine, clock=clock)
    probe = APIRouter(prefix="/test")

    @probe.get("/whoami")
    def whoami(caller: Caller, conn: DbConn) -> dict[str, Any]:
        used = conn.execute(
            select(func.count()).where(login_nonces.c.used_by == caller)
        ).scalar_one()
        return {"caller": caller, "logins": used}

    @probe.get("/maybe")
    def maybe(caller: OptionalCaller) -> dict[str, Any]:
        return {"caller": caller}

    app.include_router(probe)
    return app


@pytest.fixture
def api(app: FastAPI) -> Iterator[httpx.Client]:
    with Served(app) as served, httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


@pytest.fixture
def wallet() -> LocalAccount:
    return Account.create()


def nonce_of(api: httpx.Client) -> str:
    r = api.get("/auth/nonce")
    assert r.status_code == 200
    return str(r.json()["nonce"])


def siwe_text(wallet: LocalAccount, nonce: str, clock: Clock, **fields: Any) -> str:
    """An EIP-4361 message built by the PyPI siwe package; `fields` override the defaults."""
    values: dict[str, Any] = {
        "domain": DOMAIN,
        "address": wallet.address,
        "uri": URI,
        "version": "1",
        "chain_id": CHAIN_ID,
        "issued_at": clock.dt().isoformat(),
        "nonce": nonce,
        "statement": "Sign in to the DIMO indexer.",
        **fields,
    }
    return str(PypiSiweMessage(**values).prepare_message())


def sign(wallet: LocalAccount, message: str) -> str:
    """The `personal_sign` signature of `message` by `wallet`, as 0x hex (eth-account)."""
    sig = wallet.sign_message(encode_defunct(text=message)).signature.hex()
    return sig if sig.startswith("0x") else "0x" + sig


def login(api: httpx.Client, message: str, signature: str) -> httpx.Response:
    return api.post("/auth/login", json={"message": message, "signature": signature})


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert body["title"]
    return body


def signed_in(api: httpx.Client, wallet: LocalAccount, clock: Clock) -> str:
    message = siwe_text(wallet, nonce_of(api), clock)
    r = login(api, message, sign(wallet, message))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------------------------
# Login
# --------------------------------------------------------------------------------------------


def test_a_message_built_and_signed_with_the_siwe_package_logs_in(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    nonce = nonce_of(api)
    message = siwe_text(
        wallet,
        nonce,
        clock,
        expiration_time=clock.dt(600).isoformat(),
        not_before=clock.dt(-5).isoformat(),
        request_id="req-1",
        resources=["ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"],
    )
    r = login(api, message, sign(wallet, message))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["address"] == wallet.address
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900

    who = api.get("/test/whoami", headers=bearer(body["access_token"]))
    assert who.status_code == 200, who.text
    assert who.json() == {"caller": wallet.address, "logins": 1}


def test_a_message_without_statement_logs_in(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock, statement=None)
    assert "\n\n\nURI: " in message
    r = login(api, message, sign(wallet, message))
    assert r.status_code == 200, r.text


def test_a_signature_with_v_0_or_1_logs_in(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock)
    sig = bytes.fromhex(sign(wallet, message)[2:])
    r = login(api, message, "0x" + (sig[:64] + bytes((sig[64] - 27,))).hex())
    assert r.status_code == 200, r.text


def test_the_nonce_endpoint_says_what_to_sign(api: httpx.Client, clock: Clock) -> None:
    r = api.get("/auth/nonce")
    body = r.json()
    assert body["domain"] == DOMAIN
    assert body["uri"] == URI
    assert body["chain_id"] == CHAIN_ID
    assert len(body["nonce"]) >= 8
    assert body["nonce"].isalnum()
    assert r.headers["cache-control"] == "no-store"
    assert body["nonce"] != nonce_of(api)


@pytest.mark.parametrize(
    ("fields", "slug"),
    [
        ({"domain": "evil.example"}, "siwe-domain-mismatch"),
        ({"scheme": "http"}, "siwe-domain-mismatch"),
        ({"uri": "https://evil.example"}, "siwe-uri-mismatch"),
        ({"chain_id": 1}, "siwe-chain-mismatch"),
    ],
    ids=["domain", "scheme", "uri", "chain-id"],
)
def test_a_message_for_another_relying_party_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock, fields: dict[str, Any], slug: str
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock, **fields)
    assert_problem(login(api, message, sign(wallet, message)), 401, slug)


def test_a_message_with_the_right_scheme_logs_in(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock, scheme="https")
    assert message.startswith(f"https://{DOMAIN} wants you")
    assert login(api, message, sign(wallet, message)).status_code == 200


def test_an_expired_message_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(
        wallet,
        nonce_of(api),
        clock,
        issued_at=clock.dt(-120).isoformat(),
        expiration_time=clock.dt(-1).isoformat(),
    )
    assert_problem(login(api, message, sign(wallet, message)), 401, "siwe-message-expired")


def test_a_message_before_its_not_before_time_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock, not_before=clock.dt(120).isoformat())
    assert_problem(login(api, message, sign(wallet, message)), 401, "siwe-message-not-yet-valid")


def test_a_message_issued_in_the_future_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock, issued_at=clock.dt(3600).isoformat())
    assert_problem(login(api, message, sign(wallet, message)), 401, "siwe-message-not-yet-valid")


def test_a_message_becomes_valid_at_its_not_before_time(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock, not_before=clock.dt(120).isoformat())
    clock.now += 121
    assert login(api, message, sign(wallet, message)).status_code == 200


def test_a_nonce_logs_in_only_once(api: httpx.Client, wallet: LocalAccount, clock: Clock) -> None:
    message = siwe_text(wallet, nonce_of(api), clock)
    signature = sign(wallet, message)
    assert login(api, message, signature).status_code == 200
    assert_problem(login(api, message, signature), 401, "siwe-nonce-reused")


def test_a_nonce_the_api_never_issued_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, "madeUpNonce12345", clock)
    assert_problem(login(api, message, sign(wallet, message)), 401, "siwe-unknown-nonce")


def test_a_nonce_older_than_its_ttl_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    nonce = nonce_of(api)
    clock.now += 301
    message = siwe_text(wallet, nonce, clock)
    assert_problem(login(api, message, sign(wallet, message)), 401, "siwe-nonce-expired")


def test_a_signature_by_another_key_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock)
    body = assert_problem(
        login(api, message, sign(Account.create(), message)), 401, "siwe-bad-signature"
    )
    assert wallet.address in body["detail"]


def test_a_signature_of_other_text_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    nonce = nonce_of(api)
    message = siwe_text(wallet, nonce, clock)
    other = siwe_text(wallet, nonce, clock, statement="Something else.")
    assert_problem(login(api, message, sign(wallet, other)), 401, "siwe-bad-signature")


def test_an_unrecoverable_signature_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock)
    assert_problem(login(api, message, "0x" + "00" * 64 + "1b"), 401, "siwe-bad-signature")


def test_a_refused_login_does_not_use_up_the_nonce(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock)
    assert login(api, message, sign(Account.create(), message)).status_code == 401
    assert login(api, message, sign(wallet, message)).status_code == 200


def _malformed(good: str) -> dict[str, str]:
    lines = good.split("\n")
    at = {line.split(": ", 1)[0]: i for i, line in enumerate(lines)}
    swapped = list(lines)
    swapped[at["Version"]], swapped[at["Chain ID"]] = lines[at["Chain ID"]], lines[at["Version"]]
    short_nonce = list(lines)
    short_nonce[at["Nonce"]] = "Nonce: abc"
    return {
        "not-siwe": "hello",
        "crlf": good.replace("\n", "\r\n"),
        "lowercase-address": good.replace(lines[1], lines[1].lower()),
        "no-uri": "\n".join(line for line in lines if not line.startswith("URI: ")),
        "fields-out-of-order": "\n".join(swapped),
        "version-2": good.replace("Version: 1", "Version: 2"),
        "bad-issued-at": good.replace("Issued At: ", "Issued At: yesterday "),
        "short-nonce": "\n".join(short_nonce),
        "trailing-line": good + "\n",
        "unknown-field": good + "\nColour: blue",
    }


@pytest.mark.parametrize(
    "variant",
    [
        "not-siwe",
        "crlf",
        "lowercase-address",
        "no-uri",
        "fields-out-of-order",
        "version-2",
        "bad-issued-at",
        "short-nonce",
        "trailing-line",
        "unknown-field",
    ],
)
def test_a_malformed_message_is_a_400_problem(
    api: httpx.Client, wallet: LocalAccount, clock: Clock, variant: str
) -> None:
    good = siwe_text(wallet, nonce_of(api), clock)
    bad = _malformed(good)[variant]
    assert bad != good
    body = assert_problem(login(api, bad, sign(wallet, bad)), 400, "siwe-malformed-message")
    assert body["detail"]


def test_a_signature_that_is_not_65_bytes_of_hex_is_a_validation_problem(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    message = siwe_text(wallet, nonce_of(api), clock)
    body = assert_problem(login(api, message, "0x1234"), 422, "validation-error")
    assert [e["pointer"] for e in body["errors"]] == ["/body/signature"]


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def test_a_protected_route_without_a_token_is_a_401_problem(api: httpx.Client) -> None:
    r = api.get("/test/whoami")
    assert_problem(r, 401, "token-missing")
    assert r.headers["www-authenticate"] == "Bearer"


def test_an_anonymous_caller_is_none_where_allowed(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    assert api.get("/test/maybe").json() == {"caller": None}
    token = signed_in(api, wallet, clock)
    assert api.get("/test/maybe", headers=bearer(token)).json() == {"caller": wallet.address}


def test_a_token_stops_working_when_it_expires(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    token = signed_in(api, wallet, clock)
    clock.now += 899
    assert api.get("/auth/me", headers=bearer(token)).status_code == 200
    clock.now += 1
    r = api.get("/auth/me", headers=bearer(token))
    assert_problem(r, 401, "token-expired")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert_problem(api.get("/test/maybe", headers=bearer(token)), 401, "token-expired")


def test_a_refreshed_token_outlives_the_first(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    token = signed_in(api, wallet, clock)
    clock.now += 600
    r = api.post("/auth/refresh", headers=bearer(token))
    assert r.status_code == 200, r.text
    fresh = r.json()["access_token"]
    clock.now += 600
    assert_problem(api.get("/auth/me", headers=bearer(token)), 401, "token-expired")
    me = api.get("/auth/me", headers=bearer(fresh))
    assert me.status_code == 200
    assert me.json()["address"] == wallet.address


def test_a_session_older_than_the_limit_cannot_refresh(
    api: httpx.Client, wallet: LocalAccount, clock: Clock
) -> None:
    token = signed_in(api, wallet, clock)
    for _ in range(4):  # 4 x 800 s = 3200 s: refreshes within session_max_s (3600 s)
        clock.now += 800
        r = api.post("/auth/refresh", headers=bearer(token))
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
    clock.now += 800
    assert_problem(api.post("/auth/refresh", headers=bearer(token)), 401, "session-expired")


def _claims(address: str, clock: Clock) -> dict[str, Any]:
    iat = int(clock.now)
    return {"iss": DOMAIN, "sub": address, "iat": iat, "exp": iat + 900, "auth_time": iat}


@pytest.mark.parametrize(
    "forge",
    ["other-secret", "alg-none", "tampered-sub", "other-issuer", "garbage"],
)
def test_a_token_the_api_did_not_issue_is_refused(
    api: httpx.Client, wallet: LocalAccount, clock: Clock, forge: str
) -> None:
    real = signed_in(api, wallet, clock)
    other = Account.create().address
    forged = {
        "other-secret": lambda: encode_jwt(_claims(other, clock), b"x" * 32),
        "alg-none": lambda: (
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
            + encode_jwt(_claims(other, clock), b"k").split(".")[1]
            + "."
        ),
        "tampered-sub": lambda: ".".join(
            [
                real.split(".")[0],
                encode_jwt(_claims(other, clock), b"k").split(".")[1],
                real.split(".")[2],
            ]
        ),
        "other-issuer": lambda: encode_jwt(
            {**_claims(other, clock), "iss": "evil.example"}, SECRET.encode()
        ),
        "garbage": lambda: "not.a.jwt!",
    }[forge]()
    assert_problem(api.get("/auth/me", headers=bearer(forged)), 401, "token-invalid")


# --------------------------------------------------------------------------------------------
# The parser agrees with the siwe package
# --------------------------------------------------------------------------------------------

_alnum = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32).filter(lambda b: int.from_bytes(b, "big") > 0),
    scheme=st.sampled_from([None, "https", "http"]),
    domain=st.sampled_from(["localhost:3000", "app.dimo.test", "sub.example.com"]),
    statement=st.one_of(st.none(), st.from_regex(r"[A-Za-z][A-Za-z .,!]{0,60}", fullmatch=True)),
    chain_id=st.integers(min_value=1, max_value=2**40),
    nonce=_alnum.filter(lambda s: len(s) <= 40),
    issued_at=_times,
    expiry=st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(1e4))),
    request_id=st.one_of(st.none(), st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True)),
    resources=st.lists(st.sampled_from(["ipfs://bafy", "https://example.com/a"]), max_size=3),
)
def test_the_parser_reads_every_siwe_package_message_as_it_does(
    key: bytes,
    scheme: str | None,
    domain: str,
    statement: str | None,
    chain_id: int,
    nonce: str,
    issued_at: datetime,
    expiry: timedelta | None,
    request_id: str | None,
    resources: list[str],
) -> None:
    try:
        wallet = Account.from_key(key)
    except ValueError:  # a key at or above the curve order
        return
    theirs = PypiSiweMessage(
        scheme=scheme,
        domain=domain,
        address=wallet.address,
        uri="https://app.dimo.test/login",
        version="1",
        chain_id=chain_id,
        issued_at=issued_at.isoformat(),
        nonce=nonce,
        statement=statement,
        expiration_time=None if expiry is None else (issued_at + expiry).isoformat(),
        request_id=request_id,
        resources=resources or None,
    )
    text_ = theirs.prepare_message()
    ours = parse_siwe_message(text_)
    back = PypiSiweMessage.from_message(text_)
    assert (ours.scheme, ours.domain, ours.address) == (back.scheme, back.domain, back.address)
    assert (ours.statement, ours.uri, ours.chain_id) == (back.statement, back.uri, back.chain_id)
    assert (ours.nonce, ours.issued_at) == (back.nonce, back.issued_at)
    assert ours.issued_at_dt == issued_at
    assert ours.expiration_time == back.expiration_time
    assert ours.request_id == back.request_id
    assert list(ours.resources) == (back.resources or [])


def test_the_parser_names_the_line_it_stops_at() -> None:
    with pytest.raises(MalformedSiweMessage, match="line 1"):
        parse_siwe_message("\n".join(["x"] * 10))
