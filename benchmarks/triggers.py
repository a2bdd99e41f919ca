"""Triggers figures, end to end through `dimo triggers run` (a child process), the indexer's
API (rights), an oracle journal and a webhook receiver on 127.0.0.1.

- `delivery_p99_ms_journaled`: from the oracle's receipt (`received_at` of the journaled
  bundle) to the receiver, at 1,000 vehicles with one webhook (condition `value > 100`) each,
  firing `latency_rate` times a second for `latency_s` seconds; p50 beside it.
- `deliveries_per_s`: signed deliveries a second from a backlog of `burst` firings of one
  webhook (the service is one process: one core for the evaluator and the deliverer); median
  and spread over `runs` runs.
- `lost_after_outage`: firings never delivered after a 60 s receiver outage during which the
  service is killed with SIGKILL and started again (target 0).

Every 20th delivery's signature is checked with `standardwebhooks`. The load average is read
before each phase. The last line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn
from sqlalchemy import insert
from standardwebhooks.webhooks import Webhook

from indexer import schema as s
from indexer.api.main import create_app as indexer_app
from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.migrate import upgrade
from oracle.tables import bundles, open_journal
from protocol.bundle import Bundle, encode_bundle
from protocol.jwt import encode_jwt

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "k" * 32
ISSUER = "127.0.0.1:8700"
OWNER = "0x" + "a1" * 20
DEVICE = "0x" + "d4" * 20
VEHICLES = 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -------------------------------------------------------------------------------------------
# the receiver: HTTP/1.1 keep-alive on asyncio streams, recording arrivals
# -------------------------------------------------------------------------------------------


class Receiver:
    """Records each delivery's id, arrival time and `receivedAt`; checks every 20th signature."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.token = "bench-token"
        self.secrets: dict[str, str] = {}  # webhook id -> secret
        self.arrivals: dict[str, tuple[float, str, str]] = {}  # id -> (time, webhook, receivedAt)
        self.checked = self.bad = 0
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode().split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if "webhook-id" not in headers:
                    answer = self.token.encode()
                else:
                    answer = b""
                    data = json.loads(body)
                    key = headers["webhook-id"]
                    self.arrivals.setdefault(
                        key, (time.time(), data.get("webhookId", ""), data.get("receivedAt", ""))
                    )
                    if len(self.arrivals) % 20 == 0 and data.get("webhookId") in self.secrets:
                        self.checked += 1
                        try:
                            Webhook(self.secrets[data["webhookId"]]).verify(body, headers)
                        except Exception:
                            self.bad += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> None:
        async def go() -> None:
            self.server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

        asyncio.run_coroutine_threadsafe(go(), self.loop).result()

    def stop(self) -> None:
        async def go() -> None:
            assert self.server is not None
            self.server.close()
            if hasattr(self.server, "close_clients"):
                self.server.close_clients()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(go(), self.loop).result()


# -------------------------------------------------------------------------------------------
# the platform around the service
# -------------------------------------------------------------------------------------------


def serve_indexer(tmp: Path) -> str:
    """The indexer's API over an index of `VEHICLES` vehicles owned by `OWNER`."""
    url = f"sqlite:///{tmp / 'indexer.db'}"
    upgrade(url)
    engine = make_engine(url)
    minted = int(time.time()) - 86_400
    with engine.begin() as conn:
        conn.execute(
            insert(s.sync_state).values(
                id=1, chain_id=31337, fingerprint="0x00", last_block=1, last_hash="0x01"
            )
        )
        conn.execute(
            insert(s.vehicles),
            [
                {
                    "id": v,
                    "owner": OWNER,
                    "model_id": 1,
                    "year": 2024,
                    "vin_commitment": "0x" + "00" * 32,
                    "minter": OWNER,
                    "device": DEVICE,
                    "epoch": 0,
                    "minted_block": 1,
                    "minted_at": minted,
                    "block_number": 1,
                    "tx_hash": "0x" + "00" * 32,
                    "log_index": v,
                }
                for v in range(VEHICLES + 1)
            ],
        )
    settings = IndexerSettings(
        siwe_domain=ISSUER,
        siwe_uri="http://" + ISSUER,
        siwe_chain_id=31337,
        jwt_secret=JWT_SECRET,
        rate_limit_per_minute=0,  # the triggers' rights lookups are measured, not throttled
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(indexer_app(settings, engine), log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


class Journal:
    """The oracle's journal, written as the ingest writes it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_journal(url)
        self.sequence = itertools.count(1)

    def put(self, items: list[tuple[int, list[tuple[int, float]]]]) -> None:
        """Journals one bundle per `(vehicle, speed samples)`, in one transaction."""
        rows = []
        now = int(time.time() * 1000)
        for vehicle, samples in items:
            bundle = Bundle(
                device=DEVICE,
                vehicle_id=vehicle,
                sequence=next(self.sequence),
                window_start=samples[0][0],
                window_end=samples[-1][0] + 1,
                readings={"Vehicle.Speed": samples},
            )
            rows.append(
                {
                    "device": bundle.device,
                    "sequence": bundle.sequence,
                    "vehicle_id": vehicle,
                    "window_start": bundle.window_start,
                    "window_end": bundle.window_end,
                    "data_hash": secrets.token_bytes(32),
                    "signature": secrets.token_bytes(65),
                    "leaf_hash": secrets.token_bytes(32),
                    "encoding": encode_bundle(bundle),
                    "received_at": now,
                }
            )
        with self.engine.begin() as conn:
            conn.execute(insert(bundles), rows)


class Service:
    """`dimo triggers run` as a child process."""

    def __init__(self, tmp: Path, journal_url: str, indexer_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DIMO_TRIGGERS_DATABASE_URL": f"sqlite:///{tmp / 'triggers.db'}",
            "DIMO_TRIGGERS_JOURNAL_URL": journal_url,
            "DIMO_TRIGGERS_INDEXER_URL": indexer_url,
            "DIMO_TRIGGERS_PORT": str(self.port),
            "DIMO_TRIGGERS_JWT_SECRET": JWT_SECRET,
            "DIMO_TRIGGERS_JWT_ISSUER": ISSUER,
            "DIMO_TRIGGERS_NETWORK": "local",
            "DIMO_TRIGGERS_ALLOW_LOOPBACK": "true",
            "DIMO_TRIGGERS_RETRY_BASE_S": "0.5",
            "DIMO_TRIGGERS_RETRY_MAX_DELAY_S": "5",
            "DIMO_TRIGGERS_LEASE_S": "5",
            "DIMO_TRIGGERS_PER_TARGET_CONCURRENCY": "64",
        }
        self.log = tmp / "triggers.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stack", "triggers", "run", "--no-verbose"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def token() -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": OWNER, "iat": now, "exp": now + 86_400, "auth_time": now}
    return encode_jwt(claims, JWT_SECRET.encode())


def register(client: httpx.Client, receiver: Receiver, vehicle: int, condition: str) -> str:
    r = client.post(
        "/v1/webhooks",
        json={
            "service": "signals",
            "metricName": "speed",
            "condition": condition,
            "coolDownPeriod": 0,
            "targetURL": receiver.url,
            "verificationToken": receiver.token,
        },
    )
    r.raise_for_status()
    hook = str(r.json()["id"])
    receiver.secrets[hook] = r.json()["secret"]
    for attempt in range(20):  # a 503 problem when the indexer is slow to answer: try again
        r = client.post(f"/v1/webhooks/{hook}/subscribe/{vehicle}")
        if r.status_code != 503:
            break
        time.sleep(0.2 * (attempt + 1))
    r.raise_for_status()
    return hook


def wait_until(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        indexer_url = serve_indexer(tmp)
        journal = Journal(f"sqlite:///{tmp / 'oracle.db'}")
        receiver = Receiver()
        receiver.start()
        service = Service(tmp, journal.url, indexer_url)
        service.start()
        try:
            measure(out, service, journal, receiver)
        finally:
            service.stop()
    print(json.dumps(out))


def measure(out: dict[str, Any], service: Service, journal: Journal, receiver: Receiver) -> None:
    """Runs the three phases against a started service, filling `out`."""
    latency_s, latency_rate = 20.0, 200
    burst, runs = 6000, 3
    client = httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {token()}"}, timeout=60
    )
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:  # registrations verify their target: overlap them
        made = pool.map(
            lambda v: (register(client, receiver, v, "value > 100"), v), range(1, VEHICLES + 1)
        )
        hooks = dict(made)
    out["register_s_1000"] = round(time.monotonic() - started, 1)
    print(json.dumps(out), flush=True)

    # latency: 1,000 vehicles, one condition each
    out["load_before_latency"] = os.getloadavg()
    t0 = time.time()
    sent = 0
    cycle = itertools.cycle(range(1, VEHICLES + 1))
    while time.time() - t0 < latency_s:
        tick = time.time()
        n = latency_rate // 20
        now_ms = int(tick * 1000)
        journal.put([(next(cycle), [(now_ms, 150.0)]) for _ in range(n)])
        sent += n
        time.sleep(max(0.0, 0.05 - (time.time() - tick)))
    wait_until(lambda: len(receiver.arrivals) >= sent, 60)
    latencies = [
        (at - datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp()) * 1000
        for at, hook, received in list(receiver.arrivals.values())
        if hook in hooks
    ]
    out["delivery_p99_ms_journaled"] = round(pct(latencies, 0.99), 1)
    out["delivery_p50_ms_journaled"] = round(pct(latencies, 0.50), 1)
    out["latency_deliveries"] = len(latencies)
    out["latency_firings"] = sent
    print(json.dumps(out), flush=True)

    # throughput: a backlog of one webhook's firings
    hot = register(client, receiver, 0, "true")
    rates = []
    loads = []
    for run in range(runs):
        loads.append(os.getloadavg())
        before = {k for k, v in list(receiver.arrivals.items()) if v[1] == hot}
        base = int(time.time() * 1000) - burst - 1000 * (runs - run)
        samples = [(base + i, 120.0) for i in range(burst)]
        journal.put([(0, samples[i : i + 500]) for i in range(0, burst, 500)])
        wait_until(
            lambda b=before: (
                sum(1 for v in list(receiver.arrivals.values()) if v[1] == hot) >= len(b) + burst
            ),
            120,
        )
        times = sorted(
            v[0] for k, v in list(receiver.arrivals.items()) if v[1] == hot and k not in before
        )
        rates.append((len(times) - 1) / (times[-1] - times[0]))
    out["deliveries_per_s"] = round(statistics.median(rates), 1)
    out["deliveries_per_s_runs"] = [round(r, 1) for r in rates]
    out["load_before_throughput"] = loads
    print(json.dumps(out), flush=True)

    # outage: the receiver down 60 s, the service killed -9 in the middle
    out["load_before_outage"] = os.getloadavg()
    known = set(receiver.arrivals)
    receiver.stop()
    down = time.monotonic()
    expected = 0
    killed = False
    while time.monotonic() - down < 60:
        now_ms = int(time.time() * 1000)
        journal.put([(v, [(now_ms, 150.0)]) for v in range(1, 21)])
        expected += 20
        if not killed and time.monotonic() - down > 30:
            service.kill9()
            service.start()
            killed = True
        time.sleep(1.0)
    receiver.start()
    wait_until(lambda: len(set(receiver.arrivals) - known) >= expected, 120)
    out["lost_after_outage"] = expected - len(set(receiver.arrivals) - known)
    out["outage_firings"] = expected
    out["signatures_checked"] = receiver.checked
    out["signatures_bad"] = receiver.bad
    client.close()


if __name__ == "__main__":
    main()
