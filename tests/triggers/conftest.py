"""Real parts for the triggers' tests: an oracle journal, the indexer's API over an index that
holds a vehicle and its rights, webhook receivers on 127.0.0.1 that check every signature with
`standardwebhooks`, and the triggers service (its API served by uvicorn, its evaluator and
deliverer driven step by step)."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from indexer import schema as s
from indexer.api.main import create_app as indexer_app
from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.migrate import upgrade
from oracle.tables import bundles, open_journal
from protocol.bundle import Bundle, encode_bundle
from protocol.jwt import encode_jwt
from protocol.privileges import Privilege
from tests.indexer.test_api_basics import Served
from triggers.api import create_app
from triggers.config import TriggersSettings
from triggers.delivery import Deliverer
from triggers.evaluator import Evaluator, Latency
from triggers.journal import JournalReader
from triggers.rights import IndexerRights
from triggers.tables import open_store

JWT_SECRET = "t" * 32
ISSUER = "127.0.0.1:8700"
OWNER = "0x" + "a1" * 20
BUYER = "0x" + "b2" * 20
STRANGER = "0x" + "c3" * 20
DEVICE = "0x" + "d4" * 20
VEHICLE = 7
OTHER_VEHICLE = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -------------------------------------------------------------------------------------------
# the indexer: a vehicle, its owner, grants
# -------------------------------------------------------------------------------------------


@dataclass
class Index:
    """The indexer's database and API; rights change as the chain's projections would."""

    engine: Engine
    url: str
    block: itertools.count[int] = field(default_factory=lambda: itertools.count(2))

    def _advance(self, conn: Any) -> None:
        n = next(self.block)
        conn.execute(update(s.sync_state).values(last_block=n, last_hash="0x" + f"{n:064x}"))

    def grant(self, vehicle: int, grantee: str, scopes: Privilege, expiry_s: int) -> None:
        """`grantee` may read `scopes` of `vehicle` until `expiry_s` (replacing its grant)."""
        with self.engine.begin() as conn:
            conn.execute(
                s.grants.delete().where(
                    s.grants.c.vehicle_id == vehicle, s.grants.c.grantee == grantee.lower()
                )
            )
            conn.execute(
                insert(s.grants).values(
                    vehicle_id=vehicle,
                    grantee=grantee.lower(),
                    owner=OWNER,
                    scopes=int(scopes),
                    expiry=expiry_s,
                    epoch=0,
                    terms_cid="00",
                    granted_at=int(time.time()) - 3600,
                    block_number=1,
                    tx_hash="0x" + "00" * 32,
                    log_index=0,
                )
            )
            self._advance(conn)

    def revoke(self, vehicle: int, grantee: str) -> None:
        """The grant ends now (the contract's revoke sets the expiry to the block time)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(s.grants)
                .where(s.grants.c.vehicle_id == vehicle, s.grants.c.grantee == grantee.lower())
                .values(expiry=int(time.time()) - 1)
            )
            self._advance(conn)

    def sell(self, vehicle: int) -> None:
        """The vehicle is transferred: a new epoch voids every grant of the old owner."""
        with self.engine.begin() as conn:
            conn.execute(
                update(s.vehicles)
                .where(s.vehicles.c.id == vehicle)
                .values(epoch=s.vehicles.c.epoch + 1, owner=STRANGER)
            )
            self._advance(conn)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    url = f"sqlite:///{tmp_path / 'indexer.db'}"
    upgrade(url)
    engine = make_engine(url)
    minted = int(time.time()) - 86_400
    with engine.begin() as conn:
        conn.execute(
            insert(s.sync_state).values(
                id=1, chain_id=31337, fingerprint="0x00", last_block=1, last_hash="0x01"
            )
        )
        for vehicle in (VEHICLE, OTHER_VEHICLE):
            conn.execute(
                insert(s.vehicles).values(
                    id=vehicle,
                    owner=OWNER,
                    model_id=1,
                    year=2024,
                    vin_commitment="0x" + "00" * 32,
                    minter=OWNER,
                    device=DEVICE,
                    epoch=0,
                    minted_block=1,
                    minted_at=minted,
                    block_number=1,
                    tx_hash="0x" + "00" * 32,
                    log_index=vehicle,
                )
            )
    app = indexer_app(
        IndexerSettings(
            siwe_domain=ISSUER,
            siwe_uri="http://" + ISSUER,
            siwe_chain_id=31337,
            jwt_secret=JWT_SECRET,
        ),
        engine,
    )
    with Served(app) as served:
        yield Index(engine, served.url)
    engine.dispose()


# -------------------------------------------------------------------------------------------
# the oracle's journal
# -------------------------------------------------------------------------------------------


class Journal:
    """The oracle's journal; `put` journals a bundle as the ingest would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_journal(url)
        self.sequence = itertools.count(1)

    def put(
        self, vehicle: int, readings: Mapping[str, Sequence[tuple[int, Any]]], device: str = DEVICE
    ) -> int:
        """Journals one bundle of `readings`; returns its position."""
        stamps = [ts for samples in readings.values() for ts, _ in samples]
        bundle = Bundle(
            device=device,
            vehicle_id=vehicle,
            sequence=next(self.sequence),
            window_start=min(stamps),
            window_end=max(stamps) + 1,
            readings={k: list(v) for k, v in readings.items()},
        )
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(bundles).values(
                    device=bundle.device,
                    sequence=bundle.sequence,
                    vehicle_id=vehicle,
                    window_start=bundle.window_start,
                    window_end=bundle.window_end,
                    data_hash=secrets.token_bytes(32),
                    signature=secrets.token_bytes(65),
                    leaf_hash=secrets.token_bytes(32),
                    encoding=encode_bundle(bundle),
                    received_at=int(time.time() * 1000),
                )
            )
        return int(result.inserted_primary_key[0])


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(f"sqlite:///{tmp_path / 'oracle.db'}")


# -------------------------------------------------------------------------------------------
# webhook receivers
# -------------------------------------------------------------------------------------------


class Receiver:
    """A webhook target on 127.0.0.1 that checks each delivery's signature; it can go down
    and come back on the same port."""

    def __init__(self, token: str = "verify-me") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.token = token
        self.secrets: list[str] = []
        self.received: list[dict[str, Any]] = []  # verified deliveries, in arrival order
        self.bad_signatures = 0
        self.status = 200
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                if "webhook-id" not in self.headers:  # the verification request
                    data = json.loads(body)
                    answer = receiver.token.encode() if data == {"verification": "test"} else b""
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                verified = None
                for secret in receiver.secrets:
                    try:
                        verified = Webhook(secret).verify(body, dict(self.headers))
                        break
                    except WebhookVerificationError:
                        continue
                with receiver.lock:
                    if verified is None:
                        receiver.bad_signatures += 1
                    elif receiver.status == 200:
                        receiver.received.append(
                            {"id": self.headers["webhook-id"], "body": verified}
                        )
                self.send_response(receiver.status if verified is not None else 401)
                self.end_headers()

        return Handler

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ids(self) -> set[str]:
        with self.lock:
            return {r["id"] for r in self.received}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


# -------------------------------------------------------------------------------------------
# the triggers service
# -------------------------------------------------------------------------------------------


def token_for(address: str, *, ttl_s: int = 3600) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": address, "iat": now, "exp": now + ttl_s, "auth_time": now}
    return encode_jwt(claims, JWT_SECRET.encode())


@dataclass
class Triggers:
    """The triggers service over a journal and an index: its API, evaluators, deliverer."""

    settings: TriggersSettings
    store: Engine
    rights: IndexerRights
    api: httpx.Client
    evaluators: dict[str, Evaluator]
    deliverer: Deliverer

    def as_(self, address: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(address)}"}

    def register(self, receiver: Receiver, owner: str = OWNER, **fields: Any) -> str:
        """Registers a webhook on `receiver` (which learns its secret); returns its id."""
        body = {
            "service": "signals",
            "metricName": "speed",
            "condition": "value > 100",
            "coolDownPeriod": 0,
            "targetURL": receiver.url,
            "verificationToken": receiver.token,
            **fields,
        }
        r = self.api.post("/v1/webhooks", json=body, headers=self.as_(owner))
        assert r.status_code == 201, r.text
        receiver.secrets.append(r.json()["secret"])
        return str(r.json()["id"])

    def subscribe(self, webhook_id: str, vehicle: int, owner: str = OWNER) -> httpx.Response:
        return self.api.post(
            f"/v1/webhooks/{webhook_id}/subscribe/{vehicle}", headers=self.as_(owner)
        )

    def evaluate(self, latency: Latency = "journaled") -> None:
        """Evaluates every journal row there is."""
        while self.evaluators[latency].step():
            pass

    def deliver(self, rounds: int = 1) -> int:
        """Runs delivery rounds; returns the deliveries handled."""

        async def go() -> int:
            total = 0
            async with self.deliverer.client() as client:
                for _ in range(rounds):
                    total += await self.deliverer.round(client)
            return total

        return asyncio.run(go())


def make_settings(tmp_path: Path, journal: Journal, index: Index, **extra: Any) -> TriggersSettings:
    fields: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'triggers.db'}",
        "journal_url": journal.url,
        "indexer_url": index.url,
        "jwt_secret": JWT_SECRET,
        "jwt_issuer": ISSUER,
        "developer_jwt_issuer": "http://" + ISSUER,
        "network": "local",
        "allow_loopback": True,
        "rights_ttl_s": 0,
        "retry_base_s": 0.05,
        "retry_max_delay_s": 0.2,
    }
    return TriggersSettings(**{**fields, **extra})


@pytest.fixture
def triggers(tmp_path: Path, journal: Journal, index: Index) -> Iterator[Triggers]:
    settings = make_settings(tmp_path, journal, index)
    store = open_store(settings.database_url)
    rights = IndexerRights(index.url, settings.rights_ttl_s)
    reader = JournalReader(journal.url)
    evaluators = {
        latency: Evaluator(
            store,
            reader,
            rights,
            latency,
            chain_id=31337,
            vehicle_contract=settings.vehicle_contract,
            max_cost=settings.max_condition_cost,
            batch=100,
        )
        for latency in ("journaled", "anchored")
    }
    with (
        Served(create_app(settings, store, rights)) as served,
        httpx.Client(base_url=served.url, timeout=30) as api,
    ):
        yield Triggers(settings, store, rights, api, evaluators, Deliverer(store, rights, settings))
    rights.close()
    store.dispose()


def problem_of(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + slug), body
    return body
