"""Indexer figures: backfill throughput of the chain sync against a naive web3.py indexer.

- `backfill_events_per_s_sqlite`, `backfill_events_per_s_postgres`: events indexed per second
  by `indexer.sync.Syncer` (adaptive eth_getLogs over every platform contract, bulk decoding,
  projections, checkpoint per range) from a fresh database to the head. The events are real:
  a manufacturer mints devices in batches of 100 (`mintDevices`: a `Transfer` and a
  `DeviceMinted` per device, 200 events per transaction) on a fresh anvil.
- `backfill_ratio_vs_naive`: the SQLite figure (the median of three backfills, each into a
  fresh database) over a naive indexer on the same chain in the same run: web3.py
  `contract.events.X.get_logs` for each event type, then one INSERT per row.
- Then, each in a fresh interpreter, `benchmarks/indexer_readings.py` (verified readings
  loaded per second into PostgreSQL) and `benchmarks/indexer_api.py` (API latency under an
  open-loop load over 10,000,000 readings, and its CPU per request); their figures join this
  one's (`DIMO_BENCH_INDEXER_BACKFILL_ONLY=1` skips them). With
  `DIMO_BENCH_API_KEEP_DATABASE=NAME` the API benchmark keeps its dataset in database NAME and
  reuses it on the next run. Then `benchmarks/identity.py` (Identity GraphQL, logins) and
  `benchmarks/telemetry_graphql.py` (`telemetry_graphql_p99_ms`, `telemetry_graphql_proof_p99_ms`
  and their server CPU per query, over the same dataset, kept the same way), and
  `benchmarks/attestations.py` (`attestations_per_s`: VIN and odometer credentials, 2-of-3).

The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_utils import keccak, to_checksum_address
from sqlalchemy import create_engine, text

from indexer.config import IndexerSettings
from indexer.migrate import upgrade
from indexer.sync import Syncer
from protocol.deployment import Deployment

EVENTS = int(os.environ.get("DIMO_BENCH_INDEXER_EVENTS", "200000"))
PER_TX = 100
PG_URL = os.environ.get("DIMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def generate(record: Deployment, manufacturer: Any, web3: Any) -> int:
    """Mints EVENTS/2 devices in batches of PER_TX; returns the head block."""
    abi = record.contract("DeviceId").abi
    devices = web3.eth.contract(address=record.contract("DeviceId").address, abi=abi)
    txs = EVENTS // (2 * PER_TX)
    last = None
    web3.provider.make_request("evm_setAutomine", [False])
    for t in range(txs):
        addrs = [
            to_checksum_address(keccak(f"bench-dev-{t}-{i}".encode())[12:]) for i in range(PER_TX)
        ]
        serials = [keccak(a.encode()) for a in addrs]
        last = devices.functions.mintDevices(addrs, serials).transact(
            {"from": manufacturer, "gas": 12_000_000}
        )
        if t % 8 == 7:
            web3.provider.make_request("evm_mine", [])
    web3.provider.make_request("evm_setAutomine", [True])
    web3.provider.make_request("evm_mine", [])
    while web3.eth.get_transaction_count(manufacturer, "pending") != web3.eth.get_transaction_count(
        manufacturer, "latest"
    ):
        web3.provider.make_request("evm_mine", [])
    receipt = web3.eth.wait_for_transaction_receipt(last)
    assert receipt["status"] == 1
    return int(web3.eth.block_number)


def ours(url: str, rpc_url: str, record_path: Path) -> tuple[int, float]:
    """Events and seconds of a backfill into a fresh database at `url`."""
    upgrade(url)
    settings = IndexerSettings(
        database_url=url, rpc_url=rpc_url, deployment=record_path, initial_range=50
    )
    syncer = Syncer(settings)
    started = time.perf_counter()
    n = syncer.backfill()
    elapsed = time.perf_counter() - started
    syncer.close()
    syncer.engine.dispose()
    return n, elapsed


def naive(record: Deployment, web3: Any, path: Path) -> tuple[int, float]:
    """web3.py get_logs per event type, one INSERT per row."""
    rec = record.contract("DeviceId")
    contract = web3.eth.contract(address=rec.address, abi=rec.abi)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE ev (tx_hash TEXT, log_index INT, block INT, name TEXT, args TEXT,"
        " PRIMARY KEY (tx_hash, log_index))"
    )
    started = time.perf_counter()
    head = web3.eth.block_number
    n = 0
    for event in (contract.events.DeviceMinted, contract.events.Transfer):
        for entry in event.get_logs(from_block=0, to_block=head):
            db.execute(
                "INSERT OR IGNORE INTO ev VALUES (?, ?, ?, ?, ?)",
                (
                    entry["transactionHash"].hex(),
                    entry["logIndex"],
                    entry["blockNumber"],
                    entry["event"],
                    json.dumps({k: str(v) for k, v in entry["args"].items()}),
                ),
            )
            n += 1
    db.commit()
    return n, time.perf_counter() - started


def main() -> None:
    """Deploys on a fresh anvil, generates the events and prints the figures."""
    from ape import accounts, chain, networks

    from scripts.deploy import deploy

    # disconnect_after: the backfill's anvil (about 18 GB resident by then) stops before the
    # API benchmarks below start, instead of at exit.
    with networks.parse_network_choice("ethereum:local:foundry", disconnect_after=True):
        admin = accounts.test_accounts[0]
        manufacturer = accounts.test_accounts[1]
        oracles = sorted(
            (accounts.test_accounts[i] for i in (7, 8, 9)), key=lambda a: int(a.address, 16)
        )
        record = deploy(admin, [o.address for o in oracles], 2)
        from ape import project

        registry = project.ManufacturerRegistry.at(record.contracts["ManufacturerRegistry"].address)
        registry.register(manufacturer, "Bench Telematics", 1, sender=admin)
        web3 = chain.provider.web3
        rpc_url = str(chain.provider.uri)
        head = generate(record, manufacturer.address, web3)
        with tempfile.TemporaryDirectory() as tmp:
            record_path = Path(tmp) / "deployment.json"
            record.save(record_path)
            runs = [ours(f"sqlite:///{tmp}/idx{i}.db", rpc_url, record_path) for i in range(3)]
            n_sqlite, t_sqlite = runs[0][0], statistics.median(t for _, t in runs)
            schema = f"idx_bench_{secrets.token_hex(4)}"
            admin_engine = create_engine(PG_URL)
            with admin_engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                n_pg, t_pg = ours(
                    f"{PG_URL}?options=-csearch_path%3D{schema}", rpc_url, record_path
                )
            finally:
                with admin_engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            n_naive, t_naive = naive(record, web3, Path(tmp) / "naive.db")
    sqlite_rate = n_sqlite / t_sqlite
    naive_rate = n_naive / t_naive
    figures = {
        "backfill_events": n_sqlite,
        "backfill_blocks": head,
        "backfill_events_per_s_sqlite": round(sqlite_rate),
        "backfill_events_per_s_postgres": round(n_pg / t_pg),
        "backfill_naive_events_per_s": round(naive_rate),
        "backfill_ratio_vs_naive": round(sqlite_rate / naive_rate, 1),
    }
    if os.environ.get("DIMO_BENCH_INDEXER_BACKFILL_ONLY") != "1":
        for script in ("indexer_readings.py", "indexer_api.py"):
            figures.update(_run(Path(__file__).with_name(script)))
        # DIMO's developer surface (issue 20): Identity GraphQL latency and logins a second.
        figures.update(_run(Path(__file__).with_name("identity.py")))
        # The Telemetry GraphQL (issue 21), with and without proofs, over the API's dataset.
        figures.update(_run(Path(__file__).with_name("telemetry_graphql.py")))
        # Vehicle credentials issued a second by the attestation host, 2-of-3 quorum (issue 21).
        figures.update(_run(Path(__file__).with_name("attestations.py")))
    print(json.dumps(figures))


def _run(script: Path) -> dict[str, Any]:
    """The figures of another benchmark script (its last output line), run in a fresh process."""
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    # The last line that is a JSON object: a script's libraries may log after it (Ape's
    # "Stopping 'anvil' process." goes to stdout).
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{script.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    figures = json.loads(lines[-1])
    if not isinstance(figures, dict):
        raise SystemExit(f"{script.name}: its last JSON line is not an object")
    return figures


if __name__ == "__main__":
    main()
