"""Verified readings a second the batch loader puts into PostgreSQL: `readings_load_per_s_postgres`.

Real batch contents are made first (not timed): 200 devices each sign bundles of one minute of
1 Hz readings of ten signals (600 readings a bundle), `protocol.batch.build_content` turns
each 50 bundles into a `dimo-batch-v1` document stored in a `LocalCidStore`. Then, timed, a
`BatchLoader` loads every batch into a fresh PostgreSQL schema with the telemetry tables and
indexes: fetch by CID (hash-checked), parse, verify every device signature, rebuild the root
and compare, check pairings, write the bundles and COPY the readings, one transaction a batch.
The anchors are not sent to a chain: the loader only reads the anchored header it is given.
Usage: `python -m benchmarks.indexer_readings [batches]`; the last line printed is JSON.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from eth_utils.crypto import keccak
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.db import make_engine  # noqa: E402
from indexer.loader import (  # noqa: E402
    AnchoredBatch,
    BatchLoader,
    PairingHistory,
    PairingInterval,
    create_tables,
    reading_count,
)
from protocol.batch import build_content  # noqa: E402
from protocol.blobstore import LocalCidStore  # noqa: E402
from protocol.bundle import (  # noqa: E402
    Bundle,
    bundle_leaf,
    encode_signed_bundle,
    sign_bundle,
)
from protocol.crypto import private_key_to_address  # noqa: E402
from protocol.eip712 import Eip712Domain, dimo_domain  # noqa: E402

PG_URL = os.environ.get("DIMO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = 1_767_225_600_000
DEVICES = 200
BUNDLES_PER_BATCH = 50
_TB = "Vehicle.Powertrain.TractionBattery"
SIGNALS = (
    "Vehicle.Speed",
    "Vehicle.TraveledDistance",
    f"{_TB}.StateOfCharge.Current",
    f"{_TB}.CurrentVoltage",
    f"{_TB}.CurrentCurrent",
    f"{_TB}.Temperature.Average",
    "Vehicle.Exterior.AirTemperature",
    "Vehicle.OBD.EngineSpeed",
    "Vehicle.Powertrain.Transmission.CurrentGear",
    "Vehicle.Chassis.ParkingBrake.IsEngaged",
)


def make_batches(
    n_batches: int, store: LocalCidStore, domain: Eip712Domain
) -> tuple[list[AnchoredBatch], PairingHistory]:
    """Signs the bundles, stores each batch's content, returns the anchored headers."""
    keys = [keccak(f"bench-reading-device-{i}".encode()) for i in range(DEVICES)]
    addresses = [private_key_to_address(k) for k in keys]
    history = PairingHistory(
        PairingInterval(addresses[i], i + 1, T0 // 1000 - 60) for i in range(DEVICES)
    )
    out = []
    n = 0
    for batch_id in range(1, n_batches + 1):
        signed = []
        for _ in range(BUNDLES_PER_BATCH):
            d, minute = n % DEVICES, n // DEVICES
            start = T0 + 60_000 * minute
            readings: dict[str, list[tuple[int, float | int | bool | str]]] = {}
            for j, name in enumerate(SIGNALS):
                if name.endswith("IsEngaged"):
                    readings[name] = [(start + 1000 * s, s % 2 == 0) for s in range(60)]
                elif name.endswith("CurrentGear"):
                    readings[name] = [(start + 1000 * s, 1 + s % 5) for s in range(60)]
                else:
                    readings[name] = [
                        (start + 1000 * s, 10.0 + j + 0.25 * s + 0.001 * d) for s in range(60)
                    ]
            bundle = Bundle(addresses[d], d + 1, minute, start, start + 60_000, readings)
            signed.append(sign_bundle(bundle, keys[d], domain))
            n += 1
        wires = [encode_signed_bundle(s) for s in signed]
        leaves = [bundle_leaf(s) for s in signed]
        raw, tree = build_content(batch_id, wires, leaves)
        cid = store.put(raw)
        out.append(
            AnchoredBatch(
                id=batch_id,
                root=tree.root,
                cid=cid,
                count=len(signed),
                window_start=min(leaf[3] for leaf in leaves),
                window_end=max(leaf[4] for leaf in leaves),
                tx_hash="0x" + keccak(str(batch_id).encode()).hex(),
                block_number=batch_id,
            )
        )
    return out, history


def main() -> None:
    """Builds the batches, loads them into PostgreSQL, prints the figures."""
    n_batches = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    domain = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    admin = create_engine(PG_URL)
    schema = f"bench_readings_{secrets.token_hex(4)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalCidStore(Path(tmp))
            t = time.perf_counter()
            batches, history = make_batches(n_batches, store, domain)
            print(f"made {len(batches)} batches in {time.perf_counter() - t:.1f} s", flush=True)
            engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
            create_tables(engine)
            loader = BatchLoader(engine, store, domain, history)
            t = time.perf_counter()
            outcomes = [loader.load(b) for b in batches]
            elapsed = time.perf_counter() - t
            assert all(o.loaded for o in outcomes), [o for o in outcomes if not o.loaded][:1]
            with engine.connect() as conn:
                stored = reading_count(conn)
            loaded = sum(o.reading_count for o in outcomes)
            assert stored == loaded, (stored, loaded)
            engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    figures = {
        "readings_load_per_s_postgres": round(loaded / elapsed),
        "readings_loaded": loaded,
        "batches": len(batches),
        "bundles_per_batch": BUNDLES_PER_BATCH,
        "load_s": round(elapsed, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
