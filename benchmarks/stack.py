"""How many vehicles the whole platform sustains end to end on this machine, and how long a
reading takes from the oracle's receipt to being served with its proof.

The platform runs as `make run` runs it (`stack.platform.Platform`): anvil mining a block per
transaction, the contracts deployed by `ape run deploy`, three oracle signers (threshold 2),
the oracle (ingest API and batcher, a batch every 10 s), and the indexer with its API, each a
child process with the stack's settings, on free loopback ports, in a temporary data folder.
The oracle journal and the index are SQLite, the stack's defaults (`--postgres`: a fresh
PostgreSQL database each). The only setting changed is the API's rate limit (off, for the
polling below).

A level of N vehicles:
- N vehicles are minted and N devices minted, claimed and paired on-chain, with real
  signatures of the owner and of each device key (`register`: many transactions per block,
  mined with `evm_mine`, then anvil goes back to a block per transaction);
- each vehicle's bundles (10 s of 1 Hz readings of six signals, `oracle_ingest.bundle_wire`)
  are signed before the timed part, one per 10 s per vehicle, the vehicles' windows spread
  evenly over the 10 s; each is sent when its window ends, in CBOR arrays of the bundles due
  together (`--per-request`, at most), open loop: a request waits for no other (it takes an
  idle keep-alive connection, or opens one, up to 512), as independent bridges send;
- before the timed part each device's first bundle of the level is sent and receipted (the
  oracle reads each new device's pairing from the chain once, as a running oracle has);
- a warm-up (the pipeline fills: batches, anchors, loads) is followed by the steady window;
- a sample of bundles (about 4 per second) is polled on the indexer API's proof route
  (`/vehicles/{id}/signals/Vehicle.Speed/readings/{ts}/proof`, signed in as the owner with
  SIWE). A watcher reads the index every 0.25 s; when a batch is newly loaded, each sampled
  bundle in it (`bundles_index`) is asked for on the API at once. `receipt_to_served_s_*` is
  the time from the journal's `received_at` of the bundle to the API's 200 answer with the
  bundle's own leaf (a timeout is asked again at the next look).
  `receipt_to_loaded_db_s_*` covers every bundle of the window: from `received_at` to the
  moment the watcher (polling every 0.25 s) saw the bundle's batch loaded in the index.

A level passes when every bundle offered is accepted (none rejected); the ingest keeps pace:
the journal takes at least 98% of the window's offered bundles within the window, and the p99
of the send-to-receipt lag is within 10 s and does not grow; every sampled bundle of the window
is served; the served-lag p99 is within 60 s and does not grow. "Does not grow": the second
half's p99 is at most 1.5 times the first half's plus 5 s.

The default run climbs 2,000, 5,000, 10,000, 20,000 vehicles until a level fails, then bisects
between the last pass and the first failure while the time budget (`--budget`, 15 minutes)
allows. `--vehicles N` runs one level.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from eth_abi.abi import encode as abi_encode
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from sqlalchemy import Engine, bindparam, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.oracle_ingest import bundle_wire, free_port, fresh_postgres, post_cbor  # noqa: E402
from device_bridge.uploader import cbor_array  # noqa: E402
from protocol.crypto import private_key_to_address, sign_digest  # noqa: E402
from protocol.deployment import Deployment  # noqa: E402
from protocol.eip712 import dimo_domain  # noqa: E402
from stack.chain import rpc  # noqa: E402
from stack.config import StackSettings  # noqa: E402
from stack.platform import Platform  # noqa: E402
from stack.seed import ADMIN, MANUFACTURER, MODEL_IDENTITY, OWNERS, dev_account  # noqa: E402

#: A vehicle sends one bundle per window of this length.
WINDOW_MS = 10_000
#: The ladder of the default search.
LADDER = (2_000, 5_000, 10_000, 20_000)
TARGET_VEHICLES = 10_000
#: Pass criteria (see the module docstring).
MAX_INGEST_LAG_S = 10.0
#: Share of the window's offered bundles the journal must take within the window.
MIN_JOURNALED_SHARE = 0.98
MAX_SERVED_P99_S = 60.0
GROWTH_FACTOR, GROWTH_SLACK_S = 1.5, 5.0
#: Sampled bundles per second polled on the API.
SAMPLES_PER_S = 4.0
#: Most requests in flight at once (each on its own connection).
MAX_CONNECTIONS = 512
FAR = 2**40
SIGNAL = "Vehicle.Speed"
_CLAIM_TYPEHASH = keccak(b"ClaimDevice(address device,address user,uint256 deadline)")
_PAIR_TYPEHASH = keccak(
    b"PairDevice(uint256 vehicleId,address device,uint256 nonce,uint256 deadline)"
)


class BenchError(RuntimeError):
    """The benchmark could not set up or run a level (the message says what to look at)."""


def percentile(values: list[float], q: float) -> float | None:
    """The `q` quantile (0..1) of `values` by nearest rank; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------------------------
# registration on-chain


@dataclass(frozen=True, slots=True)
class Car:
    """A registered vehicle and its paired device."""

    vehicle_id: int
    key: bytes
    device: str


def _selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


def _calldata(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (_selector(signature) + abi_encode(types, args)).hex()


class _Rpc:
    """JSON-RPC over one keep-alive connection, with batches."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=120)
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        body = []
        for method, params in calls:
            self._id += 1
            body.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        reply = self.client.post(self.url, json=body)
        answers = reply.json()
        if not isinstance(answers, list):  # the node refused the batch as a whole
            raise BenchError(
                f"a batch of {len(body)} calls ({len(reply.request.content)} bytes) was "
                f"refused: {str(answers)[:300]}"
            )
        by_id = {a["id"]: a for a in answers}
        out = []
        for request in body:
            answer = by_id[request["id"]]
            if "error" in answer:
                raise BenchError(f"{request['method']}: {answer['error']}")
            out.append(answer.get("result"))
        return out

    def view(self, to: str, signature: str, types: list[str], args: list[Any]) -> int:
        """The first word of a view call's answer, as an integer."""
        answer = self.call("eth_call", [{"to": to, "data": _calldata(signature, types, args)}])
        return int(answer[2:66] or "0", 16)

    def close(self) -> None:
        self.client.close()


def device_key(index: int) -> bytes:
    """The benchmark's device key number `index` (deterministic, throwaway)."""
    return keccak(f"bench-stack-device-{index}".encode())


def _tx(sender: str, nonce: int, to: str, data: str, gas: int) -> dict[str, Any]:
    """An `eth_sendTransaction` for an unlocked dev account, with its nonce and gas set."""
    return {
        "from": sender,
        "to": to,
        "data": data,
        "gas": hex(gas),
        "gasPrice": hex(3 * 10**9),
        "nonce": hex(nonce),
    }


def _both_sign(digest: bytes, owner_key: bytes, device: bytes) -> list[bytes]:
    return [sign_digest(digest, owner_key), sign_digest(digest, device)]


def register(rpc_url: str, deployment: Deployment, first: int, count: int) -> list[Car]:
    """Mints `count` vehicles (owned by dev account 2) and `count` devices, then claims and
    pairs each device to its vehicle, with the owner's and the device's EIP-712 signatures.

    The transactions are sent without waiting for receipts and mined many to a block
    (`evm_setAutomine false`, `evm_mine`, the base fee held at 1 gwei), then anvil goes back to
    mining a block per transaction. One owner sends the mints in nonce order, so the vehicle
    ids follow `lastVehicleId()`; the count of `DevicePaired` logs is checked afterwards.

    Args:
        rpc_url: anvil's URL.
        deployment: The platform's deployment record.
        first: Index of the first device key (`device_key`); earlier ones are registered.
        count: Vehicles to add.

    Raises:
        BenchError: a transaction was refused, or fewer pairings than sent were mined.
    """
    owner, maker = dev_account(OWNERS[0]), dev_account(MANUFACTURER)
    vehicles = deployment.contract("VehicleId").address
    devices = deployment.contract("DeviceId").address
    chain = _Rpc(rpc_url)
    try:
        _ensure_maker(chain, deployment.contract("ManufacturerRegistry").address)
        last_id = chain.view(vehicles, "lastVehicleId()", [], [])
        keys = [device_key(first + i) for i in range(count)]
        addresses = [private_key_to_address(k) for k in keys]
        ids = [last_id + 1 + i for i in range(count)]
        domain = dimo_domain(deployment.chain_id, devices)
        owner_key = bytes(owner.key)
        models = list(MODEL_IDENTITY.values())
        nonce: dict[str, int] = {
            str(a.address): int(chain.call("eth_getTransactionCount", [a.address, "pending"]), 16)
            for a in (owner, maker)
        }

        def send(sender: str, to: str, data: str, gas: int) -> dict[str, Any]:
            nonce[sender] += 1
            return _tx(sender, nonce[sender] - 1, to, data, gas)

        devices_chunks = [addresses[i : i + 200] for i in range(0, count, 200)]
        mints = [
            send(
                maker.address,
                devices,
                _calldata(
                    "mintDevices(address[],bytes32[])",
                    ["address[]", "bytes32[]"],
                    [chunk, [keccak(a.encode()) for a in chunk]],
                ),
                75_000 * len(chunk),
            )
            for chunk in devices_chunks
        ]
        for i in range(count):
            make, model, year = models[(first + i) % len(models)]
            vin = keccak(f"bench-stack-vin-{first + i}".encode())
            data = _calldata(
                "mint(string,string,uint16,bytes32)",
                ["string", "string", "uint16", "bytes32"],
                [make, model, year, vin],
            )
            mints.append(send(owner.address, vehicles, data, 400_000))
        pairings = []
        for i in range(count):
            claim = [addresses[i], owner.address, FAR]
            digest = domain.digest(
                keccak(_CLAIM_TYPEHASH + abi_encode(["address", "address", "uint256"], claim))
            )
            data = _calldata(
                "claim(address,address,uint256,bytes,bytes)",
                ["address", "address", "uint256", "bytes", "bytes"],
                [*claim, *_both_sign(digest, owner_key, keys[i])],
            )
            pairings.append(send(owner.address, devices, data, 200_000))
        for i in range(count):
            pair = [ids[i], addresses[i], 0, FAR]
            digest = domain.digest(
                keccak(
                    _PAIR_TYPEHASH + abi_encode(["uint256", "address", "uint256", "uint256"], pair)
                )
            )
            data = _calldata(
                "pair(uint256,address,uint256,bytes,bytes)",
                ["uint256", "address", "uint256", "bytes", "bytes"],
                [ids[i], addresses[i], FAR, *_both_sign(digest, owner_key, keys[i])],
            )
            pairings.append(send(owner.address, devices, data, 200_000))
        start_block = int(chain.call("eth_blockNumber", []), 16)
        # Devices and vehicles exist before any claim is mined, claims before pairings.
        _mine(chain, [mints[: len(devices_chunks)], mints[len(devices_chunks) :], pairings])
        _check_pairings(chain, devices, start_block, count)
        mined = chain.view(vehicles, "lastVehicleId()", [], []) - last_id
        if mined != count:
            raise BenchError(f"registration minted {mined} vehicles of {count}")
    finally:
        chain.close()
    return [Car(ids[i], keys[i], addresses[i]) for i in range(count)]


def _ensure_maker(chain: _Rpc, registry: str) -> None:
    """Registers dev account 1 as a device maker (by the local admin), unless it is."""
    maker = dev_account(MANUFACTURER).address
    if chain.view(registry, "manufacturerOf(address)", ["address"], [maker]):
        return
    data = _calldata(
        "register(address,string,uint8)",
        ["address", "string", "uint8"],
        [maker, "Bench Telematics", 1],
    )
    tx = chain.call(
        "eth_sendTransaction", [{"from": dev_account(ADMIN).address, "to": registry, "data": data}]
    )
    deadline = time.monotonic() + 30
    receipt = chain.call("eth_getTransactionReceipt", [tx])
    while receipt is None and time.monotonic() < deadline:  # mined, but not yet receipted
        time.sleep(0.1)
        receipt = chain.call("eth_getTransactionReceipt", [tx])
    if receipt is None or int(receipt["status"], 16) != 1:
        raise BenchError(f"registering the device maker failed: receipt {receipt}")


def _mine(chain: _Rpc, phases: list[list[dict[str, Any]]]) -> None:
    """Sends each phase's transactions and mines until every one has its receipt (the base
    fee held at 1 gwei), phase after phase, with automine off meanwhile. A transaction the
    pool dropped unmined is sent again (anvil drops some that did not fit a block).

    Raises:
        BenchError: a transaction reverted, or was still not mined after three tries.
    """
    chain.call("evm_setAutomine", [False])
    try:
        for phase in phases:
            todo = phase
            for _attempt in range(3):
                hashes: list[str] = []
                calls: list[tuple[str, list[Any]]] = []
                size = 0
                for t in todo:  # batches of at most 250 calls and about 1 MB (anvil's limits)
                    if calls and (len(calls) == 250 or size + len(t["data"]) > 1_000_000):
                        hashes += chain.batch(calls)
                        calls, size = [], 0
                    calls.append(("eth_sendTransaction", [t]))
                    size += len(t["data"])
                if calls:
                    hashes += chain.batch(calls)
                for _ in range(len(todo) + 10):
                    chain.batch(
                        [("anvil_setNextBlockBaseFeePerGas", [hex(10**9)]), ("evm_mine", [])]
                    )
                    status = chain.call("txpool_status", [])
                    if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
                        break
                receipts: list[Any] = []
                for i in range(0, len(hashes), 500):
                    asks: list[tuple[str, list[Any]]] = [
                        ("eth_getTransactionReceipt", [h]) for h in hashes[i : i + 500]
                    ]
                    receipts += chain.batch(asks)
                if any(r is not None and int(r["status"], 16) != 1 for r in receipts):
                    raise BenchError("a registration transaction reverted; see anvil's log")
                todo = [t for t, r in zip(todo, receipts, strict=True) if r is None]
                if not todo:
                    break
            if todo:
                raise BenchError(f"{len(todo)} registration transactions were never mined")
    finally:
        chain.call("evm_setAutomine", [True])


def _check_pairings(chain: _Rpc, devices: str, after_block: int, count: int) -> None:
    """Raises unless `count` `DevicePaired` logs were mined after `after_block`."""
    head = int(chain.call("eth_blockNumber", []), 16)
    query = {
        "address": devices,
        "fromBlock": hex(after_block + 1),
        "toBlock": hex(head),
        "topics": ["0x" + keccak(b"DevicePaired(address,uint256,address)").hex()],
    }
    paired = len(chain.call("eth_getLogs", [query]))
    if paired != count:
        raise BenchError(f"registration mined {paired} pairings of {count}; see anvil's log")


# ------------------------------------------------------------------------------------------
# bundles


@dataclass(slots=True)
class Fleet:
    """Every registered vehicle, with where each device's sequence and odometer stand."""

    cars: list[Car] = field(default_factory=list)
    next_sequence: dict[str, int] = field(default_factory=dict)
    odometer: dict[str, float] = field(default_factory=dict)


def _sign_chunk(
    job: tuple[int, str, list[tuple[Car, int, float, int]], int],
) -> list[list[bytes]]:
    """Signs, for each (car, first sequence, odometer, first window end), `k` bundles."""
    chain_id, anchor, cars, k = job
    domain = dimo_domain(chain_id, anchor)
    out = []
    for car, sequence, odometer, first_end in cars:
        out.append(
            [
                bundle_wire(
                    car.vehicle_id,
                    car.key,
                    car.device,
                    sequence + j,
                    first_end - WINDOW_MS + j * WINDOW_MS,
                    odometer + 0.2 * j,
                    domain,
                )
                for j in range(k)
            ]
        )
    return out


def presign(
    deployment: Deployment, fleet: Fleet, cars: list[Car], k: int, t0_ms: int
) -> list[list[bytes]]:
    """Signs `k` consecutive bundles per car on every core, car `c` of `n` sending at
    `t0_ms + c * 10 s / n` and every 10 s after; advances the fleet's sequences and odometers.
    """
    n = len(cars)
    anchor = deployment.contract("AttestationAnchor").address
    rows = []
    for c, car in enumerate(cars):
        seq = fleet.next_sequence.get(car.device, 1)
        odo = fleet.odometer.get(car.device, 10_000.0 + c)
        rows.append((car, seq, odo, t0_ms + (c * WINDOW_MS) // n))
        fleet.next_sequence[car.device] = seq + k
        fleet.odometer[car.device] = odo + 0.2 * k
    workers = max(1, os.cpu_count() or 1)
    size = max(1, math.ceil(n / (workers * 8)))
    jobs = [(deployment.chain_id, anchor, rows[i : i + size], k) for i in range(0, n, size)]
    if n * k < 2_000:
        return [w for job in jobs for w in _sign_chunk(job)]
    with ProcessPoolExecutor(workers) as pool:
        return [w for chunk in pool.map(_sign_chunk, jobs) for w in chunk]


def signing_rate(deployment: Deployment) -> float:
    """Bundles signed per second on every core (a short calibration on one)."""
    car = Car(1, device_key(10**9), private_key_to_address(device_key(10**9)))
    anchor = deployment.contract("AttestationAnchor").address
    started = time.perf_counter()
    _sign_chunk((deployment.chain_id, anchor, [(car, 1, 0.0, 1_767_225_600_000)], 200))
    return 200 / (time.perf_counter() - started) * max(1, (os.cpu_count() or 1) - 0.3)


# ------------------------------------------------------------------------------------------
# the platform


class BenchPlatform:
    """The stack's platform on free ports in `data`, with the fleet left to the benchmark."""

    def __init__(
        self, data: Path, oracle_db: str | None, indexer_db: str | None, batch_interval_s: float
    ) -> None:
        self.settings = StackSettings(
            data_dir=data,
            anvil_port=free_port(),
            oracle_port=free_port(),
            signer_ports=[free_port() for _ in range(3)],
            indexer_port=free_port(),
            triggers_port=free_port(),
            attestation_port=free_port(),
            fleet_vehicles=0,
            api_rate_limit_per_minute=0,
            oracle_database_url=oracle_db,
            indexer_database_url=indexer_db,
            batch_interval_s=batch_interval_s,
        )
        self.platform = Platform(self.settings, ROOT)
        self.deployment: Deployment | None = None
        self.fleet = Fleet()
        self._journal: Engine | None = None
        self._index: Engine | None = None

    def start(self, say: Callable[[str], None]) -> None:
        """Starts anvil, deploys, and starts the signers, the oracle and the indexer."""
        say(f"anvil at {self.platform.start_chain()}")
        self.deployment, _ = self.platform.deploy()
        say("contracts deployed")
        self.platform.start_services(lambda s: say(f"{s.name} started (pid {s.pid})"))

    def stop(self) -> None:
        """Stops every service, then anvil."""
        for engine in (self._journal, self._index):
            if engine is not None:
                engine.dispose()
        self.platform.stop(lambda _name: None)

    @property
    def journal(self) -> Engine:
        """The oracle's journal, read by the benchmark."""
        if self._journal is None:
            self._journal = create_engine(self.platform.oracle_database_url)
        return self._journal

    @property
    def index(self) -> Engine:
        """The indexer's database, read by the benchmark."""
        if self._index is None:
            s = self.settings
            url = s.indexer_database_url or f"sqlite:///{self.platform.data / 'indexer.db'}"
            self._index = create_engine(url)
        return self._index

    def grow(self, n: int) -> float:
        """Registers vehicles until `n` are; returns the seconds it took."""
        assert self.deployment is not None
        have = len(self.fleet.cars)
        if n <= have:
            return 0.0
        started = time.monotonic()
        cars = register(self.settings.chain_url, self.deployment, have, n - have)
        self.fleet.cars.extend(cars)
        return time.monotonic() - started

    def head(self) -> tuple[int, int]:
        """The chain's head block and its timestamp (s)."""
        block = rpc(self.settings.chain_url, "eth_getBlockByNumber", ["latest", False])
        assert isinstance(block, dict)
        return int(block["number"], 16), int(block["timestamp"], 16)

    def indexed_block(self) -> int:
        """The last block the indexer has indexed (-1 before its first step)."""
        with self.index.connect() as conn:
            value = conn.execute(text("SELECT last_block FROM sync_state WHERE id = 1")).scalar()
        return -1 if value is None else int(value)

    def loaded_batches(self, after: int) -> list[int]:
        """Ids above `after` of batches the index has loaded."""
        with self.index.connect() as conn:
            rows = conn.execute(
                text("SELECT id FROM batches WHERE status = 'loaded' AND id > :a ORDER BY id"),
                {"a": after},
            )
            return [int(r[0]) for r in rows]

    def bundles_of(self, batch_ids: list[int]) -> set[tuple[str, int]]:
        """(device, sequence) of every bundle of the given loaded batches."""
        with self.index.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT device, sequence FROM bundles_index WHERE batch_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": batch_ids},
            )
            return {(r[0], int(r[1])) for r in rows}

    def last_batch(self) -> int:
        """The highest batch id the index holds, in any status (0 when none)."""
        with self.index.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM batches")).scalar_one())

    def journal_position(self) -> int:
        """The journal's last position (0 when empty)."""
        with self.journal.connect() as conn:
            value = conn.execute(
                text("SELECT coalesce(max(position), 0) FROM bundles")
            ).scalar_one()
        return int(value)

    def journal_since(self, position: int) -> list[tuple[str, int, int, int | None]]:
        """(device, sequence, received_at ms, batch id) of the bundles after `position`."""
        with self.journal.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT device, sequence, received_at, batch_id FROM bundles "
                    "WHERE position > :p ORDER BY position"
                ),
                {"p": position},
            )
            return [(r[0], int(r[1]), int(r[2]), r[3]) for r in rows]

    def oracle_status(self) -> dict[str, Any]:
        """The oracle's `/v1/status`."""
        reply = httpx.get(f"{self.settings.oracle_url}/v1/status", timeout=10)
        body: dict[str, Any] = reply.json()
        return body

    def settled(self) -> bool:
        """Whether nothing waits: journal empty, every batch confirmed and decided by the
        indexer (False too while the oracle is too busy to answer)."""
        try:
            status = self.oracle_status()
        except httpx.HTTPError:
            return False
        unconfirmed = sum(n for s, n in status["batches_by_state"].items() if s != "confirmed")
        if status["journal_depth"] or unconfirmed:
            return False
        confirmed = status["batches_by_state"].get("confirmed", 0)
        return (
            self.last_batch() >= confirmed
            and not self.pending_batches()
            and self.indexed_block() >= self.head()[0]
        )

    def pending_batches(self) -> int:
        """How many batches the index holds undecided (content not served yet, retried)."""
        with self.index.connect() as conn:
            value = conn.execute(
                text("SELECT count(*) FROM batches WHERE status = 'pending'")
            ).scalar_one()
        return int(value)

    def wait(self, what: str, probe: Callable[[], bool], timeout: float) -> bool:
        """Polls `probe` every 0.5 s until it holds (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe():
                return True
            time.sleep(0.5)
        return False

    def sign_in(self) -> dict[str, str]:
        """Signs in to the API with Ethereum as the fleet's owner; returns the auth header."""
        from siwe import SiweMessage

        owner = dev_account(OWNERS[0])
        api = self.settings.indexer_url
        authority = api.removeprefix("http://")
        nonce = httpx.get(f"{api}/auth/nonce", timeout=10).json()["nonce"]
        message = SiweMessage(
            domain=authority,
            address=owner.address,
            uri=api,
            version="1",
            chain_id=self.deployment.chain_id if self.deployment else 31337,
            issued_at=datetime.now(UTC).isoformat(),
            nonce=nonce,
            statement="Benchmark the platform end to end.",
        ).prepare_message()
        signature = owner.sign_message(encode_defunct(text=message)).signature.hex()
        reply = httpx.post(
            f"{api}/auth/login",
            json={"message": message, "signature": "0x" + signature.removeprefix("0x")},
            timeout=10,
        )
        if reply.status_code != 200:
            raise BenchError(f"signing in to the indexer API failed: {reply.text}")
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}


# ------------------------------------------------------------------------------------------
# one level


@dataclass(slots=True)
class Sample:
    """A bundle whose proof is polled on the API."""

    device: str
    sequence: int
    vehicle_id: int
    ts: int
    scheduled: float
    receipted: bool = False
    served_at: float | None = None


@dataclass(slots=True)
class Drive:
    """What the sender saw."""

    outcome: dict[str, int] = field(default_factory=dict)
    lags: list[tuple[float, float]] = field(default_factory=list)  # (scheduled, lag s)
    errors: list[str] = field(default_factory=list)
    connections: int = 0


#: One bundle to send: when (unix s), its wire form, its device, and its sample if polled.
Due = tuple[float, bytes, str, "Sample | None"]
#: Seconds an idle connection is kept (the oracle's uvicorn closes them after 5 s).
KEEP_IDLE_S = 3.0


async def _drive(url: str, schedule: list[Due], per_request: int) -> Drive:
    """Sends each bundle when it is due, the bundles due together in arrays of at most
    `per_request`, open loop: each request goes out on an idle keep-alive connection, or on a
    new one when every connection is busy (up to `MAX_CONNECTIONS`), as independent bridges
    would send, so that a slow answer holds back no other device. Like a bridge, a device's
    bundle goes out only once its previous one has its answer (sequences stay in order)."""
    drive = Drive()
    host, port = url.removeprefix("http://").split(":")
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    opened = 0
    slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def exchange(body: bytes) -> list[dict[str, Any]]:
        nonlocal opened
        while idle:
            reader, writer, since = idle.pop()
            if time.monotonic() - since < KEEP_IDLE_S:
                break
            writer.close()
        else:
            reader, writer = await asyncio.open_connection(host, int(port))
            opened += 1
        try:
            results = await post_cbor(reader, writer, host, body)
        except BaseException:
            writer.close()
            raise
        idle.append((reader, writer, time.monotonic()))
        return results

    async def post(chunk: list[Due], after: set[asyncio.Task[None]]) -> None:
        if after:
            await asyncio.wait(after)
        body = cbor_array([c[1] for c in chunk])
        async with slots:
            try:
                try:
                    results = await exchange(body)
                except (OSError, asyncio.IncompleteReadError):
                    # The server closed a kept connection: send again on a new one (the oracle
                    # answers a bundle it already journaled with the same receipt).
                    results = await exchange(body)
            except (RuntimeError, OSError, asyncio.IncompleteReadError) as exc:
                drive.errors.append(str(exc)[:300])
                return
        drive.lags.append((chunk[0][0], time.time() - chunk[0][0]))
        for result, (_, _, _, sample) in zip(results, chunk, strict=True):
            status = result["status"]
            key = status if status != "rejected" else result["problem"]["reason"]
            drive.outcome[key] = drive.outcome.get(key, 0) + 1
            if sample is not None and status in ("accepted", "duplicate"):
                sample.receipted = True

    last: dict[str, asyncio.Task[None]] = {}
    at = 0
    while at < len(schedule):
        now = time.time()
        due = at
        while due < len(schedule) and schedule[due][0] <= now:
            due += 1
        for i in range(at, due, per_request):
            chunk = schedule[i : min(due, i + per_request)]
            after = {last[c[2]] for c in chunk if c[2] in last and not last[c[2]].done()}
            task = asyncio.create_task(post(chunk, after))
            for c in chunk:
                last[c[2]] = task
        at = due
        if at < len(schedule):
            await asyncio.sleep(min(0.05, max(0.0, schedule[at][0] - time.time())))
    await asyncio.gather(*set(last.values()))
    drive.connections = opened
    for _, writer, _ in idle:
        writer.close()
    return drive


class Watcher(threading.Thread):
    """Notes when each batch is loaded in the index and polls the samples' proofs."""

    def __init__(self, bench: BenchPlatform, samples: list[Sample], after_batch: int) -> None:
        super().__init__(name="bench-watcher", daemon=True)
        self.bench = bench
        self.samples = samples
        self.loaded_at: dict[int, float] = {}
        self.last_batch = after_batch
        self.depths: list[tuple[float, int]] = []
        self.stop_event = threading.Event()
        self.mismatches: list[str] = []
        self.failures: list[str] = []
        self.timeouts = 0
        self.headers = bench.sign_in()
        self.client = httpx.Client(base_url=bench.settings.indexer_url, timeout=10)

    def run(self) -> None:
        last_status = 0.0
        to_sweep: list[int] = []
        while not self.stop_event.wait(0.25):
            try:
                fresh = self.bench.loaded_batches(self.last_batch)
                now = time.time()
                for batch_id in fresh:
                    self.loaded_at[batch_id] = now
                if fresh:
                    self.last_batch = fresh[-1]
                    to_sweep += fresh
                if to_sweep:
                    self.sweep(self.bench.bundles_of(to_sweep))
                    to_sweep = []
                if now - last_status >= 1.0:
                    last_status = now
                    self.depths.append((now, int(self.bench.oracle_status()["journal_depth"])))
            except httpx.TimeoutException:
                self.timeouts += 1  # a busy service; looked at again in 0.25 s
            except Exception as exc:  # noted, and the level fails on it
                self.failures.append(f"{type(exc).__name__}: {exc}"[:300])

    def sweep(self, only: set[tuple[str, int]] | None = None) -> None:
        """Asks for the proof of each sample not yet served: those in `only` (bundles of
        loaded batches), else every receipted one."""
        for s in self.samples:
            if s.served_at is not None:
                continue
            if (s.device, s.sequence) not in only if only is not None else not s.receipted:
                continue
            try:
                reply = self.client.get(
                    f"/vehicles/{s.vehicle_id}/signals/{SIGNAL}/readings/{s.ts}/proof",
                    headers=self.headers,
                )
            except httpx.TimeoutException:
                self.timeouts += 1  # not served yet; asked again at the next sweep
                continue
            if reply.status_code == 404:
                continue
            if reply.status_code != 200:
                self.failures.append(f"proof of {s.device}#{s.sequence}: {reply.text[:200]}")
                continue
            s.served_at = time.time()
            leaf = reply.json()["leaf"]
            if (leaf["device"], int(leaf["sequence"])) != (s.device, s.sequence):
                self.mismatches.append(f"{s.device}#{s.sequence} served {leaf}")

    def close(self) -> None:
        """Stops the thread, then notes the batches loaded since its last look (a batch
        loaded in the last quarter second before the platform settled would be missed)."""
        self.stop_event.set()
        self.join(10)
        now = time.time()
        for batch_id in self.bench.loaded_batches(self.last_batch):
            self.loaded_at.setdefault(batch_id, now)
        self.client.close()


def run_level(
    bench: BenchPlatform,
    vehicles: int,
    *,
    warmup_s: float,
    window_s: float,
    per_request: int,
    drain_s: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Runs one level of `vehicles` and returns its figures and verdict."""
    assert bench.deployment is not None
    registration_s = bench.grow(vehicles)
    if registration_s:
        say(f"registered up to {vehicles} vehicles in {registration_s:.1f} s")
    head, head_ts = bench.head()
    if not bench.wait("the indexer", lambda: bench.indexed_block() >= head, 300):
        raise BenchError("the indexer did not index the registrations within 300 s")
    cars = bench.fleet.cars[:vehicles]
    # Prime: each device's first bundle of the level, sent and receipted before the timed
    # part, so that the oracle has read every device's pairing from the chain, as a running
    # oracle has (and the odometer and sequence checks have a history to check against).
    prime_end_ms = (max(time.time(), head_ts + 1.0) + WINDOW_MS / 1000) * 1000
    started = time.monotonic()
    primes = presign(bench.deployment, bench.fleet, cars, 1, int(prime_end_ms))
    primed = asyncio.run(
        _drive(
            bench.settings.oracle_url,
            [(0.0, w[0], car.device, None) for w, car in zip(primes, cars, strict=True)],
            100,
        )
    )
    prime_s = time.monotonic() - started
    if primed.errors or primed.outcome.get("accepted", 0) != vehicles:
        raise BenchError(f"priming the oracle: {primed.outcome} {primed.errors[:1]}")
    say(f"primed the oracle with {vehicles} devices' first bundles in {prime_s:.1f} s")
    k = math.ceil((warmup_s + window_s) * 1000 / WINDOW_MS)
    estimate = vehicles * k / signing_rate(bench.deployment)
    # Every timed window starts after the device's prime window, once the signing is done.
    t0 = max(time.time() + estimate * 1.2 + 2.0, prime_end_ms / 1000 + WINDOW_MS / 1000)
    t0_ms = int(t0 * 1000)
    started = time.monotonic()
    wires = presign(bench.deployment, bench.fleet, cars, k, t0_ms)
    say(f"signed {vehicles * k} bundles in {time.monotonic() - started:.1f} s")
    stride = max(1, round(vehicles / (WINDOW_MS / 1000) / SAMPLES_PER_S))
    schedule: list[Due] = []
    samples: list[Sample] = []
    first_seq = {car.device: bench.fleet.next_sequence[car.device] - k for car in cars}
    for j in range(k):
        for c, car in enumerate(cars):
            end_ms = t0_ms + (c * WINDOW_MS) // vehicles + j * WINDOW_MS
            sample = None
            if (j * vehicles + c) % stride == 0:
                sample = Sample(
                    car.device,
                    first_seq[car.device] + j,
                    car.vehicle_id,
                    end_ms - WINDOW_MS,
                    end_ms / 1000,
                )
                samples.append(sample)
            schedule.append((end_ms / 1000, wires[c][j], car.device, sample))
    schedule.sort(key=lambda item: item[0])
    del wires
    position = bench.journal_position()
    watcher = Watcher(bench, samples, bench.last_batch())
    watcher.start()
    if t0 - time.time() > 0:
        time.sleep(t0 - time.time())
    say(f"{vehicles} vehicles: {vehicles / 10:.0f} bundles/s for {warmup_s + window_s:.0f} s")
    try:
        drive = asyncio.run(_drive(bench.settings.oracle_url, schedule, per_request))
        window_start = t0 + warmup_s
        window_end = window_start + window_s
        in_window = [s for s in samples if window_start <= s.scheduled < window_end]
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and any(s.served_at is None for s in in_window):
            time.sleep(0.5)
        drained = bench.wait("the platform to settle", bench.settled, max(drain_s, 60.0))
        watcher.sweep()
    finally:
        watcher.close()
    rows = bench.journal_since(position)
    return _verdict(
        vehicles=vehicles,
        schedule=schedule,
        drive=drive,
        watcher=watcher,
        rows=rows,
        samples=in_window,
        window=(window_start, window_end),
        drained=drained,
        registration_s=registration_s,
        prime_s=prime_s,
    )


def _grows(first: float | None, second: float | None) -> bool:
    """Whether a lag's second-half p99 exceeds `GROWTH_FACTOR` times the first's plus
    `GROWTH_SLACK_S` (a backlog that builds up)."""
    if first is None or second is None:
        return False
    return second > GROWTH_FACTOR * first + GROWTH_SLACK_S


def _verdict(
    *,
    vehicles: int,
    schedule: list[Due],
    drive: Drive,
    watcher: Watcher,
    rows: list[tuple[str, int, int, int | None]],
    samples: list[Sample],
    window: tuple[float, float],
    drained: bool,
    registration_s: float,
    prime_s: float,
) -> dict[str, Any]:
    """The figures of a level and whether it passes (see the module docstring)."""
    start, end = window
    middle = (start + end) / 2
    received = {(d, s): at / 1000 for d, s, at, _ in rows}
    served: list[tuple[float, float]] = []  # (scheduled, lag)
    for s in samples:
        if s.served_at is not None and (s.device, s.sequence) in received:
            served.append((s.scheduled, s.served_at - received[(s.device, s.sequence)]))
    lags = [lag for _, lag in served]
    first = [lag for at, lag in served if at < middle]
    second = [lag for at, lag in served if at >= middle]
    db_lags = []
    db_missing = 0
    for _device, _seq, at, batch in rows:
        scheduled_window = start * 1000 <= at < end * 1000 + 5_000
        if not scheduled_window:
            continue
        loaded = watcher.loaded_at.get(batch) if batch is not None else None
        if loaded is None:
            db_missing += 1
        else:
            db_lags.append(loaded - at / 1000)
    ingest = [lag for at, lag in drive.lags if start <= at < end]
    offered = len(schedule)
    accepted = drive.outcome.get("accepted", 0) + drive.outcome.get("duplicate", 0)
    depths = [d for at, d in watcher.depths if start <= at < end]
    p99, p99_first, p99_second = (percentile(x, 0.99) for x in (lags, first, second))
    why = []
    if accepted != offered:
        why.append(f"{offered - accepted} of {offered} bundles not accepted: {drive.outcome}")
    if drive.errors:
        why.append(f"{len(drive.errors)} requests failed: {drive.errors[0]}")
    ingest_p99 = percentile(ingest, 0.99)
    ingest_halves = [
        percentile([lag for at, lag in drive.lags if lo <= at < hi], 0.99)
        for lo, hi in ((start, middle), (middle, end))
    ]
    if ingest_p99 is None or ingest_p99 > MAX_INGEST_LAG_S:
        why.append(f"ingest lag p99 {_r(ingest_p99)} s > {MAX_INGEST_LAG_S} s")
    if _grows(*ingest_halves):
        why.append(f"ingest lag grows: p99 {_r(ingest_halves[0])} s then {_r(ingest_halves[1])} s")
    journaled = sum(1 for _, _, at, _ in rows if start * 1000 <= at < end * 1000)
    offered_in_window = sum(1 for at, _, _, _ in schedule if start <= at < end)
    if journaled < MIN_JOURNALED_SHARE * offered_in_window:
        why.append(f"the journal took {journaled} of {offered_in_window} bundles in the window")
    unserved = sum(1 for s in samples if s.served_at is None)
    if not samples or unserved:
        why.append(f"{unserved} of {len(samples)} sampled bundles not served")
    if p99 is None or p99 > MAX_SERVED_P99_S:
        why.append(f"served lag p99 {_r(p99)} s > {MAX_SERVED_P99_S} s")
    if _grows(p99_first, p99_second):
        why.append(f"served lag grows: p99 {p99_first:.1f} s then {p99_second:.1f} s")
    if db_missing:
        why.append(f"{db_missing} bundles of the window not loaded by the indexer")
    if watcher.mismatches:
        why.append(f"the API served another leaf: {watcher.mismatches[0]}")
    if watcher.failures:
        why.append(f"watcher: {watcher.failures[0]}")
    return {
        "vehicles": vehicles,
        "passed": not why,
        "why": why,
        "offered_bundles_per_s": round(vehicles * 1000 / WINDOW_MS, 1),
        "offered": offered,
        "accepted": accepted,
        "outcome": drive.outcome,
        "connections": drive.connections,
        "ingest_lag_s_p99": _r(ingest_p99),
        "ingest_lag_s_p99_halves": [_r(x) for x in ingest_halves],
        "offered_in_window": offered_in_window,
        "journaled_in_window": journaled,
        "receipt_to_served_s_p50": _r(percentile(lags, 0.5)),
        "receipt_to_served_s_p99": _r(p99),
        "receipt_to_served_s_p99_first_half": _r(p99_first),
        "receipt_to_served_s_p99_second_half": _r(p99_second),
        "receipt_to_served_s_max": _r(max(lags) if lags else None),
        "samples": len(samples),
        "api_timeouts": watcher.timeouts,
        "receipt_to_loaded_db_s_p50": _r(percentile(db_lags, 0.5)),
        "receipt_to_loaded_db_s_p99": _r(percentile(db_lags, 0.99)),
        "bundles_in_window": len(db_lags) + db_missing,
        "journal_depth_max": max(depths) if depths else None,
        "batches_loaded": len(watcher.loaded_at),
        "settled_after": drained,
        "registration_s": round(registration_s, 1),
        "prime_s": round(prime_s, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# ------------------------------------------------------------------------------------------
# the search


def _level_estimate(results: list[dict[str, Any]], level: int, timed_s: float) -> float:
    """Seconds a level of `level` vehicles will take, from what the last level cost per vehicle
    registered and primed (`timed_s`: warm-up and window)."""
    signing = level * math.ceil(timed_s * 1000 / WINDOW_MS) / 1_000
    if not results:
        return timed_s + 60 + signing
    last = results[-1]
    added = max(0, level - max(int(r["vehicles"]) for r in results))
    per_vehicle = float(last["registration_s"] + last["prime_s"]) / int(last["vehicles"])
    return timed_s + 60 + signing + added * per_vehicle


def _next_level(results: list[dict[str, Any]]) -> int | None:
    """The next level of the default search: up the ladder, then bisect."""
    passed = [int(r["vehicles"]) for r in results if r["passed"]]
    failed = [int(r["vehicles"]) for r in results if not r["passed"]]
    lo = max(passed, default=0)
    if not failed:
        higher = [n for n in LADDER if n > lo]
        return higher[0] if higher else None
    hi = min(failed)
    if lo and hi - lo <= max(500, lo // 5):
        return None
    if not lo and hi <= 250:
        return None
    return max(250, round((lo + hi) / 2 / 250) * 250)


@contextlib.contextmanager
def _databases(postgres: bool) -> Iterator[tuple[str | None, str | None]]:
    if not postgres:
        yield None, None
        return
    pid = os.getpid()
    with (
        fresh_postgres(name=f"bench_stack_oracle_{pid}") as oracle,
        fresh_postgres(name=f"bench_stack_indexer_{pid}") as index,
    ):
        yield oracle, index


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def bench(
    *,
    vehicles: int | None,
    window_s: float = 60.0,
    warmup_s: float = 20.0,
    per_request: int = 10,
    budget_s: float = 900.0,
    postgres: bool = False,
    batch_interval_s: float = 10.0,
    data_dir: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Starts the platform, runs one level (`vehicles`) or the search, stops everything.

    Returns:
        The figures (the JSON object the script prints).
    """
    started = time.monotonic()
    if say is None:

        def say(message: str) -> None:
            print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    results: list[dict[str, Any]] = []
    try:
        with (
            _databases(postgres) as (oracle_db, indexer_db),
            tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp,
        ):
            data = Path(tmp) if data_dir is None else data_dir
            if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
                raise BenchError(f"{data_dir} is not empty: give a new or empty folder")
            platform = BenchPlatform(data, oracle_db, indexer_db, batch_interval_s)
            try:
                platform.start(say)
                level: int | None = vehicles if vehicles is not None else LADDER[0]
                while level is not None:
                    elapsed = time.monotonic() - started
                    expected = _level_estimate(results, level, warmup_s + window_s)
                    if results and elapsed + expected > budget_s:
                        say(f"skipping {level} vehicles (about {expected:.0f} s): over budget")
                        break
                    result = run_level(
                        platform,
                        level,
                        warmup_s=warmup_s,
                        window_s=window_s,
                        per_request=per_request,
                        drain_s=max(60.0, 3 * batch_interval_s + 30),
                        say=say,
                    )
                    results.append(result)
                    say(json.dumps(result))
                    if vehicles is not None or not result["settled_after"]:
                        break
                    level = _next_level(results)
            finally:
                platform.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    passed = [r for r in results if r["passed"]]
    best = max(passed, key=lambda r: r["vehicles"]) if passed else None
    shown = best or (results[-1] if results else {})
    return {
        "sustained_vehicles": best["vehicles"] if best else 0,
        "target_vehicles": TARGET_VEHICLES,
        "receipt_to_served_s_p50": shown.get("receipt_to_served_s_p50"),
        "receipt_to_served_s_p99": shown.get("receipt_to_served_s_p99"),
        "receipt_to_loaded_db_s_p50": shown.get("receipt_to_loaded_db_s_p50"),
        "receipt_to_loaded_db_s_p99": shown.get("receipt_to_loaded_db_s_p99"),
        "latency_level_vehicles": shown.get("vehicles"),
        "levels": results,
        "window_s": window_s,
        "warmup_s": warmup_s,
        "bundles_per_request_max": per_request,
        "readings_per_bundle": 60,
        "batch_interval_s": batch_interval_s,
        "databases": "postgresql" if postgres else "sqlite (the stack's defaults)",
        "chain": "anvil, a block per transaction (the stack's default)",
        "served_measured_by": (
            "API proof route asked for each sampled bundle as soon as the index shows its "
            "batch loaded (index read every 0.25 s); *_db figures: every bundle of the window, "
            "its batch's load as seen in the index"
        ),
        "total_s": round(time.monotonic() - started, 1),
        "cpus": os.cpu_count(),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    """Parses the command line, runs, prints the figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=None, help="run this one level")
    parser.add_argument("--window", type=float, default=60.0, help="steady window, seconds")
    parser.add_argument("--warmup", type=float, default=20.0, help="warm-up, seconds")
    parser.add_argument("--per-request", type=int, default=10, help="most bundles per request")
    parser.add_argument("--budget", type=float, default=900.0, help="search time budget, s")
    parser.add_argument("--batch-interval", type=float, default=10.0, help="oracle batches, s")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL journal and index")
    parser.add_argument(
        "--data", type=Path, default=None, help="keep the data folder (and logs) here"
    )
    args = parser.parse_args()
    if args.vehicles is not None and args.vehicles < 1:
        parser.error("--vehicles must be at least 1")
    if args.window < 10 or args.warmup < 0 or args.per_request < 1:
        parser.error("--window is at least 10 s, --warmup at least 0, --per-request at least 1")
    figures = bench(
        vehicles=args.vehicles,
        window_s=args.window,
        warmup_s=args.warmup,
        per_request=args.per_request,
        budget_s=args.budget,
        postgres=args.postgres,
        batch_interval_s=args.batch_interval,
        data_dir=args.data,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
