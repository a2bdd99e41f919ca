"""Bundles per second the oracle's ingest API accepts and journals, over HTTP on loopback.

A fresh anvil (Ape's `ethereum:local:foundry`) gets the platform deployed and 50 devices
paired; a real uvicorn process serves `oracle.api` on a SQLite journal (WAL, synchronous=FULL);
pre-signed bundles of 10 s of 1 Hz readings (speed, SoC, odometer, pack voltage, current,
temperature) are sent by 8 concurrent httpx clients. Every bundle must be accepted. Windows
follow each other, so the server's `max_future_ms` is raised to let the later windows in;
the checks themselves are unchanged. The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAR = 2**40
_TB = "Vehicle.Powertrain.TractionBattery"
CLAIM_TYPES = [
    {"name": n, "type": t}
    for n, t in [("device", "address"), ("user", "address"), ("deadline", "uint256")]
]
PAIR_TYPES = [
    {"name": n, "type": t}
    for n, t in [
        ("vehicleId", "uint256"),
        ("device", "address"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ]
]


def _sign(chain_id: int, key: Any, contract: Any, primary: str, types: Any, msg: Any) -> bytes:
    domain = {
        "name": "DIMO",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": contract.address,
    }
    return bytes(Account.sign_typed_data(key, domain, {primary: types}, msg).signature)


def pair_fleet(n_devices: int) -> tuple[Any, list[tuple[int, LocalAccount]], int]:
    """Deploys the platform on the active Ape network and pairs `n_devices` devices.

    Returns:
        The deployment record, `(vehicle id, device key)` pairs, and the latest pairing time (s).
    """
    from ape import accounts, chain, project

    from scripts.deploy import deploy

    admin, manufacturer, owner = (accounts.test_accounts[i] for i in (0, 1, 2))
    record = deploy(admin, [accounts.test_accounts[i].address for i in (7, 8, 9)], 2)
    c = {name: project.get_contract(name).at(rec.address) for name, rec in record.contracts.items()}
    c["ManufacturerRegistry"].register(manufacturer, "Acme", 1, sender=admin)
    devices, vehicles = c["DeviceId"], c["VehicleId"]
    keys = [Account.from_key(keccak(f"bench-oracle-device-{i}".encode())) for i in range(n_devices)]
    devices.mintDevices(
        [k.address for k in keys], [keccak(k.address.encode()) for k in keys], sender=manufacturer
    )
    owner_key = owner.private_key
    fleet: list[tuple[int, LocalAccount]] = []
    for i, key in enumerate(keys):
        vehicle = int(
            vehicles.mint(
                "Hyundai", "Kona Electric", 2019, keccak(f"VIN-{i}".encode()), sender=owner
            ).return_value
        )
        claim = {"device": key.address, "user": owner.address, "deadline": FAR}
        devices.claim(
            key.address,
            owner,
            FAR,
            _sign(chain.chain_id, owner_key, devices, "ClaimDevice", CLAIM_TYPES, claim),
            _sign(chain.chain_id, key.key, devices, "ClaimDevice", CLAIM_TYPES, claim),
            sender=owner,
        )
        pair = {"vehicleId": vehicle, "device": key.address, "nonce": 0, "deadline": FAR}
        devices.pair(
            vehicle,
            key.address,
            FAR,
            _sign(chain.chain_id, owner_key, devices, "PairDevice", PAIR_TYPES, pair),
            _sign(chain.chain_id, key.key, devices, "PairDevice", PAIR_TYPES, pair),
            sender=owner,
        )
        fleet.append((vehicle, key))
    return record, fleet, int(chain.blocks.head.timestamp)


def bundle_wire(
    vehicle: int,
    key: bytes,
    device: str,
    sequence: int,
    start_ms: int,
    odometer_km: float,
    domain: Any,
) -> bytes:
    """The wire form of one signed schema-2 10 s bundle of 1 Hz readings (speed, SoC, odometer,
    pack voltage, current, temperature), as a device would send it.

    Args:
        vehicle: The vehicle the device is paired to.
        key: The device's private key (32 bytes).
        device: The device's address.
        sequence: The device's sequence number of this bundle.
        start_ms: The window's start (it lasts 10 s).
        odometer_km: The odometer at the window's start.
        domain: The EIP-712 domain (`protocol.eip712.Eip712Domain`) the bundle is signed in.
    """
    from protocol.bundle import SCHEMA_SIGNALS, Bundle, encode_signed_bundle, sign_bundle

    ts = [start_ms + 1000 * i for i in range(10)]
    readings = {
        "Vehicle.Speed": [(t, 60.0 + (i % 7)) for i, t in enumerate(ts)],
        f"{_TB}.StateOfCharge.Current": [(t, 80.0 - 0.001 * i) for i, t in enumerate(ts)],
        "Vehicle.TraveledDistance": [(t, odometer_km + 0.0167 * i) for i, t in enumerate(ts)],
        f"{_TB}.CurrentVoltage": [(t, 395.0 - 0.01 * i) for i, t in enumerate(ts)],
        f"{_TB}.CurrentCurrent": [(t, 42.0 + 0.5 * (i % 3)) for i, t in enumerate(ts)],
        f"{_TB}.Temperature.Average": [(t, 24.5) for t in ts],
    }
    # Schema 2, as the bridge emits: one salted commitment per signal.
    bundle = Bundle(
        device,
        vehicle,
        sequence,
        start_ms,
        start_ms + 10_000,
        readings,
        schema_version=SCHEMA_SIGNALS,
    )
    return encode_signed_bundle(sign_bundle(bundle, key, domain))


def presign(
    record: Any, fleet: list[tuple[int, LocalAccount]], per_device: int, start_ms: int
) -> list[list[bytes]]:
    """Signs `per_device` consecutive 10 s bundles per device; returns wire forms per device."""
    from protocol.eip712 import dimo_domain

    domain = dimo_domain(record.chain_id, record.contract("AttestationAnchor").address)
    out: list[list[bytes]] = []
    for d, (vehicle, key) in enumerate(fleet):
        wires: list[bytes] = []
        odo = 10_000.0 + d
        for seq in range(1, per_device + 1):
            start = start_ms + (seq - 1) * 10_000
            wires.append(bundle_wire(vehicle, bytes(key.key), key.address, seq, start, odo, domain))
            odo += 0.2
        out.append(wires)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """Starts the oracle API in a uvicorn process (uvloop, httptools) and waits for /healthz."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "oracle.api:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"oracle server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("oracle server did not start within 30 s")
        time.sleep(0.1)


def _array(chunk: list[bytes]) -> bytes:
    """A CBOR array of already encoded items (a bare item when there is one)."""
    if len(chunk) == 1:
        return chunk[0]
    n = len(chunk)
    head = (
        bytes([0x80 | n])
        if n < 24
        else (b"\x98" + bytes([n]) if n < 256 else b"\x99" + n.to_bytes(2, "big"))
    )
    return head + b"".join(chunk)


async def post_cbor(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, body: bytes
) -> list[dict[str, Any]]:
    """Posts one CBOR body to `/v1/bundles` over a keep-alive HTTP/1.1 connection.

    Returns:
        The oracle's result per bundle.

    Raises:
        RuntimeError: the oracle answered with another status than 200.
    """
    writer.write(
        b"POST /v1/bundles HTTP/1.1\r\nHost: %s\r\n"
        b"Content-Type: application/cbor\r\nContent-Length: %d\r\n\r\n"
        % (host.encode(), len(body))
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    payload = await reader.readexactly(length)
    if status != 200:
        raise RuntimeError(f"oracle answered {status}: {payload[:300]!r}")
    results: list[dict[str, Any]] = json.loads(payload)["results"]
    return results


async def _send(urls: list[str], per_client: list[list[bytes]]) -> dict[str, int]:
    """Each client posts its own request bodies one after the other; returns outcome counts.

    A lean HTTP/1.1 keep-alive client on asyncio streams: a general-purpose client costs
    as much CPU per request as the oracle does, and on two cores it would measure itself.
    Every response is parsed and every bundle's result counted.
    """
    outcome: dict[str, int] = {}

    async def client(bodies: list[bytes], url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for body in bodies:
                for r in await post_cbor(reader, writer, host, body):
                    key = r["status"] if r["status"] != "rejected" else r["problem"]["reason"]
                    outcome[key] = outcome.get(key, 0) + 1
        finally:
            writer.close()

    # Client c talks to oracle process c mod N, as a load balancer in front of them would.
    await asyncio.gather(
        *(client(bodies, urls[c % len(urls)]) for c, bodies in enumerate(per_client))
    )
    return outcome


@contextlib.contextmanager
def fresh_postgres(
    admin_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    name: str | None = None,
) -> Iterator[str]:
    """A new empty PostgreSQL database for one run, dropped afterwards; yields its URL.

    Args:
        admin_url: A database of the server to connect to while creating and dropping.
        name: The new database's name (default: `bench_ingest_<pid>`).
    """
    from sqlalchemy import create_engine, text

    name = name or f"bench_ingest_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def ingest_bundles_per_s(
    *,
    workers: int = 1,
    processes: int = 1,
    database_url: str | None = None,
    devices: int = 50,
    per_device: int = 400,
    bundles_per_request: int = 10,
    clients: int = 8,
) -> dict[str, Any]:
    """Measures bundles accepted and journaled per second over HTTP.

    Args:
        devices: Devices paired on-chain, each sending its own bundles in sequence order.
        per_device: Bundles signed per device (10 s windows, one after the other).
        bundles_per_request: Bundles per request body (1 = a bare map, more = a CBOR array).
        clients: Concurrent httpx clients.
        workers: uvicorn worker processes of each oracle process (one shared socket).
        processes: separate oracle processes on their own ports over the same journal; the
            clients are spread over them round-robin.
        database_url: the journal; a fresh SQLite file by default. A PostgreSQL URL must
            name an empty database, whose tables are dropped afterwards.

    Returns:
        Figures: `bundles_per_s`, the count, the wall time and the settings used.
    """
    from ape import networks

    with networks.parse_network_choice("ethereum:local:foundry") as provider:
        record, fleet, paired_s = pair_fleet(devices)
        rpc_url = str(provider.uri)
        start_ms = paired_s * 1000 + 1000
        wires = presign(record, fleet, per_device, start_ms)
        # Like real devices, each device's bundles go out in sequence order from one client:
        # client c sends for devices c, c + clients, ..., round-robin, in small arrays.
        per_client: list[list[bytes]] = []
        for c in range(clients):
            mine = range(c, devices, clients)
            ordered = [wires[d][s] for s in range(1, per_device) for d in mine]
            per_client.append(
                [
                    _array(ordered[i : i + bundles_per_request])
                    for i in range(0, len(ordered), bundles_per_request)
                ]
            )
        with tempfile.TemporaryDirectory() as tmp:
            deployment = Path(tmp) / "deployment.json"
            record.save(deployment)
            span_ms = per_device * 10_000 + 600_000
            env = {
                "DIMO_ORACLE_DATABASE_URL": database_url or f"sqlite:///{tmp}/oracle.db",
                "DIMO_ORACLE_RPC_URL": rpc_url,
                "DIMO_ORACLE_DEPLOYMENT": str(deployment),
                "DIMO_ORACLE_BLOB_DIR": f"{tmp}/blobs",
                "DIMO_ORACLE_MAX_FUTURE_MS": str(span_ms),
            }
            ports = [free_port() for _ in range(processes)]
            procs = [start_server(env, port, workers) for port in ports]
            try:
                urls = [f"http://127.0.0.1:{port}" for port in ports]
                # Warm the device caches with each device's first bundle, as a running oracle
                # has them; the journal rejects none of the later bundles as replays.
                asyncio.run(_send(urls[:1], [[wires[d][0]] for d in range(devices)]))
                t0 = time.perf_counter()
                outcome = asyncio.run(_send(urls, per_client))
                elapsed = time.perf_counter() - t0
                accepted = outcome.get("accepted", 0)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(timeout=10)
    expected = devices * (per_device - 1)
    return {
        "bundles_per_s": round(accepted / elapsed),
        "bundles": accepted,
        "outcome": outcome,
        "expected": expected,
        "seconds": round(elapsed, 3),
        "bundles_per_request": bundles_per_request,
        "clients": clients,
        "devices": devices,
        "workers": workers,
        "processes": processes,
        "journal": "postgresql"
        if database_url and database_url.startswith("postgres")
        else "sqlite",
    }


def main() -> None:
    """Runs the benchmark and prints its figures as one JSON line.

    Usage: `oracle_ingest.py [--processes N] [--workers N] [--database-url URL]`.
    """
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--database-url", default=None, help="a journal URL, or `postgres` for a fresh database"
    )
    args = parser.parse_args()
    if args.database_url == "postgres":
        with fresh_postgres() as url:
            figures = ingest_bundles_per_s(
                workers=args.workers, processes=args.processes, database_url=url
            )
    else:
        figures = ingest_bundles_per_s(
            workers=args.workers, processes=args.processes, database_url=args.database_url
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
