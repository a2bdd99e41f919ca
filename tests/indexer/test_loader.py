"""The batch loader on anvil: real anchored batches verified, loaded, rejected and rolled back."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine, create_engine, select, text
from web3 import Web3

from indexer.db import make_engine
from indexer.exceptions import BatchContentUnavailable
from indexer.loader import (
    AnchoredBatch,
    BatchLoader,
    PairingHistory,
    PairingInterval,
    Rejection,
    create_tables,
    rollback_after,
)
from indexer.queries import ReadingNotFound, latest_values, raw_readings, reading_proof
from indexer.telemetry import batches, bundles_index, readings, readings_text, signals
from protocol.batch import build_content
from protocol.blobstore import LocalCidStore
from protocol.bundle import (
    Bundle,
    SignedBundle,
    bundle_leaf,
    encode_signed_bundle,
    sign_bundle,
)
from protocol.cid import Cid
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain
from protocol.merkle import StandardMerkleTree
from tests.conftest import private_key

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BATCH_TYPES = [
    {"name": "id", "type": "uint64"},
    {"name": "root", "type": "bytes32"},
    {"name": "cid", "type": "bytes"},
    {"name": "count", "type": "uint32"},
    {"name": "windowStart", "type": "uint64"},
    {"name": "windowEnd", "type": "uint64"},
]
SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
GEAR = "Vehicle.Powertrain.Transmission.CurrentGear"
IGNITION = "Vehicle.LowVoltageSystemState"
PARKING = "Vehicle.Chassis.ParkingBrake.IsEngaged"

Samples = Mapping[str, Sequence[tuple[int, Any]]]


# -------------------------------------------------------------------------------------------
# databases: SQLite file and a fresh PostgreSQL schema
# -------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty index with the telemetry tables, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
        create_tables(eng)
        yield eng
        eng.dispose()
        return
    admin = create_engine(PG_ADMIN_URL)
    schema = f"telemetry_test_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(PG_ADMIN_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        create_tables(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalCidStore:
    return LocalCidStore(tmp_path / "blobs")


@pytest.fixture(scope="session")
def deployment(deployment_record: Path) -> Deployment:
    return Deployment.load(deployment_record)


@pytest.fixture(scope="session")
def domain(deployment: Deployment) -> Eip712Domain:
    return dimo_domain(deployment.chain_id, deployment.contract("AttestationAnchor").address)


# -------------------------------------------------------------------------------------------
# the chain: pairing history from logs, anchoring batches with the quorum
# -------------------------------------------------------------------------------------------


@pytest.fixture
def chain_pairings(rpc_url: str, deployment: Deployment) -> Callable[[], PairingHistory]:
    """Reads `DevicePaired`/`DeviceUnpaired` logs from the chain into a `PairingHistory`."""

    def _read() -> PairingHistory:
        w3 = Web3(Web3.HTTPProvider(rpc_url))
        record = deployment.contract("DeviceId")
        contract = w3.eth.contract(address=Web3.to_checksum_address(record.address), abi=record.abi)
        logs = [
            *contract.events.DevicePaired().get_logs(from_block=0),
            *contract.events.DeviceUnpaired().get_logs(from_block=0),
        ]
        logs.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
        stamps = {
            n: int(w3.eth.get_block(n)["timestamp"]) for n in {e["blockNumber"] for e in logs}
        }
        return PairingHistory.from_events(
            (e["event"], e["args"]["device"], int(e["args"]["vehicleId"]), stamps[e["blockNumber"]])
            for e in logs
        )

    return _read


@pytest.fixture
def now_ms() -> Callable[[], int]:
    """The latest block's timestamp in ms (pairings are dated by it)."""

    def _now() -> int:
        from ape import chain

        return int(chain.blocks.head.timestamp) * 1000

    return _now


@dataclass
class Anchored:
    batch: AnchoredBatch
    bundles: list[SignedBundle]
    tree: StandardMerkleTree


@pytest.fixture
def anchor_bundles(
    platform: Any,
    oracle_signers: list[Any],
    sign: Callable[..., bytes],
    store: LocalCidStore,
    admin: Any,
) -> Callable[..., Anchored]:
    """Builds a batch's content from signed bundles, stores it and anchors it with a quorum.

    `root` overrides the anchored root (a tampered anchor); `content` overrides the stored
    document (its CID is what gets anchored).
    """
    anchor = platform["AttestationAnchor"]

    def _anchor(
        bundles: list[SignedBundle], *, root: bytes | None = None, content: bytes | None = None
    ) -> Anchored:
        batch_id = int(anchor.lastBatchId()) + 1
        wires = [encode_signed_bundle(b) for b in bundles]
        raw, tree = build_content(batch_id, wires, [bundle_leaf(b) for b in bundles])
        cid = store.put(content if content is not None else raw)
        message = {
            "id": batch_id,
            "root": root or tree.root,
            "cid": Cid.parse(cid).to_bytes(),
            "count": len(bundles),
            "windowStart": min(b.bundle.window_start for b in bundles),
            "windowEnd": max(b.bundle.window_end for b in bundles),
        }
        signatures = b"".join(
            sign(private_key(s), anchor, "AnchorBatch", BATCH_TYPES, message)
            for s in oracle_signers[:2]
        )
        tx = anchor.anchor(tuple(message[t["name"]] for t in BATCH_TYPES), signatures, sender=admin)
        event = tx.events.filter(anchor.BatchAnchored)[0]
        args = {
            "id": event.id,
            "root": event.root,
            "cid": event.cid,
            "count": event.count,
            "windowStart": event.windowStart,
            "windowEnd": event.windowEnd,
        }
        batch = AnchoredBatch.from_event(args, str(tx.txn_hash), int(tx.block_number))
        return Anchored(batch, bundles, tree)

    return _anchor


def windowed_bundles(
    key: LocalAccount,
    vehicle: int,
    samples: Samples,
    domain: Eip712Domain,
    *,
    window_ms: int = 60_000,
    first_sequence: int = 0,
    signer: LocalAccount | None = None,
    schema: int = 1,
) -> list[SignedBundle]:
    """Cuts samples into `window_ms` bundles (of bundle `schema`) signed by the device (or
    `signer`)."""
    stamps = [ts for series in samples.values() for ts, _ in series]
    start = min(stamps)
    out = []
    seq = first_sequence
    while start <= max(stamps):
        end = start + window_ms
        part = {
            name: [(ts, v) for ts, v in series if start <= ts < end]
            for name, series in samples.items()
        }
        part = {name: s for name, s in part.items() if s}
        if part:
            bundle = Bundle(key.address, vehicle, seq, start, end, part, schema_version=schema)
            out.append(sign_bundle(bundle, bytes((signer or key).key), domain))
            seq += 1
        start = end
    return out


def mixed_samples(t0: int, seconds: int = 150) -> dict[str, list[tuple[int, Any]]]:
    """Floats, integers, booleans and text over `seconds` seconds from `t0`."""
    return {
        SPEED: [(t0 + 1000 * i, 30.0 + (i % 17) * 1.5) for i in range(seconds)],
        SOC: [(t0 + 1000 * i + 500, 80.0 - 0.01 * i) for i in range(0, seconds, 5)],
        GEAR: [(t0 + 1000 * i, 1 + i % 5) for i in range(0, seconds, 10)],
        PARKING: [(t0 + 1000 * i, i % 20 == 0) for i in range(0, seconds, 10)],
        IGNITION: [(t0 + 1000 * i, "ON") for i in range(0, seconds, 30)],
    }


def expected_rows(anchored: Anchored) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """(vehicle, signal name, ts, value, batch, leaf) from the bundles: numeric and text."""
    numeric, texts = set(), set()
    for leaf, signed in enumerate(anchored.bundles):
        b = signed.bundle
        for name, series in b.readings.items():
            for ts, value in series:
                row = (b.vehicle_id, name, ts, value, anchored.batch.id, leaf)
                if isinstance(value, str):
                    texts.add(row)
                else:
                    numeric.add((*row[:3], float(value), *row[4:]))
    return numeric, texts


def stored_rows(engine: Engine) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    out = []
    with engine.connect() as conn:
        for table in (readings, readings_text):
            rows = conn.execute(
                select(
                    table.c.vehicle_id,
                    signals.c.name,
                    table.c.ts,
                    table.c.value,
                    table.c.batch_id,
                    table.c.leaf_index,
                ).join(signals, signals.c.id == table.c.signal)
            )
            out.append({tuple(r) for r in rows})
    return out[0], out[1]


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: len(conn.execute(select(t)).all())
            for t in (batches, bundles_index, readings, readings_text)
        }


_FLEET_NUMBERS = itertools.count(1000, 2)


@pytest.fixture
def fleet(
    paired_vehicle: Callable[[int], tuple[int, LocalAccount]], now_ms: Callable[[], int]
) -> tuple[list[tuple[int, LocalAccount]], int]:
    """Two paired vehicles and a time after both pairings.

    Each test gets new vehicle and device numbers, so that no test depends on the chain
    having been reverted after the one before: run after `tests/device_bridge`, Ape's
    per-test revert was seen not to undo these tests' mints (cause not yet found).
    """
    base = next(_FLEET_NUMBERS)
    cars = [paired_vehicle(base), paired_vehicle(base + 1)]
    return cars, now_ms() + 1000


@pytest.fixture
def loader(
    engine: Engine,
    store: LocalCidStore,
    domain: Eip712Domain,
    chain_pairings: Callable[[], PairingHistory],
) -> Callable[[], BatchLoader]:
    """A loader whose pairing history is read from the chain when it is made."""
    return lambda: BatchLoader(engine, store, domain, chain_pairings())


# -------------------------------------------------------------------------------------------
# loading
# -------------------------------------------------------------------------------------------


def test_loaded_readings_equal_the_bundles_readings(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car_a, key_a), (car_b, key_b) = fleet[0]
    t0 = fleet[1]
    bundles = windowed_bundles(key_a, car_a, mixed_samples(t0), domain) + windowed_bundles(
        key_b, car_b, mixed_samples(t0 + 7, 90), domain
    )
    anchored = anchor_bundles(bundles)
    outcome = loader().load(anchored.batch)
    assert outcome.loaded
    want_numeric, want_text = expected_rows(anchored)
    assert outcome.reading_count == len(want_numeric) + len(want_text)
    assert stored_rows(engine) == (want_numeric, want_text)
    with engine.connect() as conn:
        row = conn.execute(select(batches)).one()
        stored_bundles = conn.execute(
            select(bundles_index.c.wire).order_by(bundles_index.c.leaf_index)
        ).all()
    assert (row.status, bytes(row.root), row.block_number) == (
        "loaded",
        anchored.tree.root,
        anchored.batch.block_number,
    )
    assert [bytes(r.wire) for r in stored_bundles] == [encode_signed_bundle(b) for b in bundles]


def test_loading_the_same_batch_twice_changes_nothing(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car, key), t0 = fleet[0][0], fleet[1]
    anchored = anchor_bundles(windowed_bundles(key, car, mixed_samples(t0), domain))
    first = loader().load(anchored.batch)
    before = (stored_rows(engine), table_counts(engine))
    again = loader()
    assert again.load(anchored.batch) == first
    with engine.begin() as conn:
        assert again.write(conn, again.check(anchored.batch)) == first
    assert (stored_rows(engine), table_counts(engine)) == before


# -------------------------------------------------------------------------------------------
# rejections
# -------------------------------------------------------------------------------------------


def assert_rejected_and_serves_nothing(
    engine: Engine, loader: BatchLoader, anchored: Anchored, reason: Rejection
) -> None:
    outcome = loader.load(anchored.batch)
    assert (outcome.status, outcome.reason, outcome.reading_count) == ("rejected", reason, 0)
    assert outcome.detail
    with engine.connect() as conn:
        row = conn.execute(select(batches).where(batches.c.id == anchored.batch.id)).one()
        assert (row.status, row.reason) == ("rejected", reason.value)
        vehicle = anchored.bundles[0].bundle.vehicle_id
        assert latest_values(conn, vehicle) == {}
        ts = anchored.bundles[0].bundle.readings[SPEED][0][0]
        assert raw_readings(conn, vehicle, SPEED, 0, 2**62) == []
        with pytest.raises(ReadingNotFound):
            reading_proof(conn, vehicle, SPEED, ts)
    counts = table_counts(engine)
    assert counts == {"batches": 1, "bundles_index": 0, "readings": 0, "readings_text": 0}


def test_a_batch_whose_stored_content_does_not_match_its_cid_is_rejected(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    store: LocalCidStore,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car, key), t0 = fleet[0][0], fleet[1]
    anchored = anchor_bundles(windowed_bundles(key, car, mixed_samples(t0), domain))
    block = store.block_path(Cid.parse(anchored.batch.cid))
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0x01
    block.write_bytes(bytes(data))
    assert_rejected_and_serves_nothing(engine, loader(), anchored, Rejection.CID_MISMATCH)


def test_a_batch_anchored_with_another_root_is_rejected(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car, key), t0 = fleet[0][0], fleet[1]
    bundles = windowed_bundles(key, car, mixed_samples(t0), domain)
    anchored = anchor_bundles(bundles, root=keccak(b"another tree"))
    assert_rejected_and_serves_nothing(engine, loader(), anchored, Rejection.ROOT_MISMATCH)


def test_a_batch_with_a_badly_signed_bundle_is_rejected(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car, key), t0 = fleet[0][0], fleet[1]
    impostor = Account.from_key(keccak(b"not the device"))
    good = windowed_bundles(key, car, mixed_samples(t0), domain)
    forged = windowed_bundles(
        key, car, mixed_samples(t0 + 600_000, 30), domain, first_sequence=9, signer=impostor
    )
    anchored = anchor_bundles(good + forged)
    assert_rejected_and_serves_nothing(engine, loader(), anchored, Rejection.BAD_SIGNATURE)


def test_a_bundle_from_a_device_not_paired_to_its_vehicle_is_rejected(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (_, key_a), (car_b, _) = fleet[0]
    t0 = fleet[1]
    # Correctly signed by device A, but claiming vehicle B, which A was never paired to.
    anchored = anchor_bundles(windowed_bundles(key_a, car_b, mixed_samples(t0), domain))
    assert_rejected_and_serves_nothing(engine, loader(), anchored, Rejection.DEVICE_NOT_PAIRED)


def test_a_bundle_from_before_the_pairing_is_rejected(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car, key), t0 = fleet[0][0], fleet[1]
    day_before = t0 - 86_400_000
    anchored = anchor_bundles(windowed_bundles(key, car, mixed_samples(day_before), domain))
    assert_rejected_and_serves_nothing(engine, loader(), anchored, Rejection.DEVICE_NOT_PAIRED)


def test_a_batch_whose_content_is_absent_is_not_decided(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    store: LocalCidStore,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car, key), t0 = fleet[0][0], fleet[1]
    anchored = anchor_bundles(windowed_bundles(key, car, mixed_samples(t0), domain))
    store.block_path(Cid.parse(anchored.batch.cid)).unlink()
    with pytest.raises(BatchContentUnavailable) as info:
        loader().load(anchored.batch)
    assert info.value.batch_id == anchored.batch.id
    assert table_counts(engine)["batches"] == 0


# -------------------------------------------------------------------------------------------
# reorgs
# -------------------------------------------------------------------------------------------


def test_rollback_removes_batches_anchored_above_the_block_and_their_readings(
    engine: Engine,
    fleet: tuple[list[tuple[int, LocalAccount]], int],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    (car, key), t0 = fleet[0][0], fleet[1]
    first = anchor_bundles(windowed_bundles(key, car, mixed_samples(t0), domain))
    second = anchor_bundles(
        windowed_bundles(key, car, mixed_samples(t0 + 600_000), domain, first_sequence=10)
    )
    load = loader()
    load.load(first.batch)
    only_first = (stored_rows(engine), table_counts(engine))
    load.load(second.batch)
    assert table_counts(engine)["batches"] == 2
    with engine.begin() as conn:
        removed = rollback_after(conn, first.batch.block_number)
    assert removed == [second.batch.id]
    assert (stored_rows(engine), table_counts(engine)) == only_first
    assert load.load(second.batch).loaded
    assert table_counts(engine)["batches"] == 2


# -------------------------------------------------------------------------------------------
# the pairing rule
# -------------------------------------------------------------------------------------------


DEVICE = "0x9E120061Cf003fB75E0eBD8c08E8438209C25791"


@pytest.mark.parametrize(
    ("window", "covered"),
    [
        ((100_000, 160_000), True),  # from the pairing second on
        ((99_999, 160_000), False),  # starts before the pairing
        ((150_000, 200_999), True),  # ends within the unpairing's second
        ((150_000, 201_001), False),  # runs past the unpairing
        ((300_000, 360_000), True),  # the second pairing, still open
        ((199_000, 310_000), False),  # straddles the gap between the pairings
    ],
)
def test_a_window_is_covered_only_inside_one_pairing(
    window: tuple[int, int], covered: bool
) -> None:
    history = PairingHistory.from_events(
        [
            ("DevicePaired", DEVICE, 7, 100),
            ("DeviceUnpaired", DEVICE, 7, 200),
            ("DevicePaired", DEVICE, 7, 300),
        ]
    )
    assert history(DEVICE.lower(), 7, *window) is covered
    assert history(DEVICE, 8, *window) is False


def test_pairing_to_another_vehicle_ends_the_first_pairing() -> None:
    history = PairingHistory.from_events(
        [("DevicePaired", DEVICE, 1, 100), ("DevicePaired", DEVICE, 2, 200)]
    )
    assert history(DEVICE, 1, 150_000, 160_000)
    assert not history(DEVICE, 1, 250_000, 260_000)
    assert history(DEVICE, 2, 250_000, 260_000)
    assert PairingHistory([PairingInterval(DEVICE, 1, 5)])(DEVICE, 1, 5_000, 6_000)


def test_prefetched_pairings_answer_as_one_query_per_pair_does(engine: Engine) -> None:
    from indexer.loader import IndexedPairings
    from indexer.schema import pairings

    a, b, c = ("0x" + d * 40 for d in "abc")
    rows = [  # device, vehicle, paired_at, unpaired_at (unix seconds)
        (a, 1, 100, 200),
        (a, 2, 300, None),
        (a, 1, 400, None),  # paired again to vehicle 1
        (b, 1, 50, None),
    ]
    pairings.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(
            pairings.insert(),
            [
                {
                    "device": d,
                    "vehicle_id": v,
                    "owner": "0x" + "0" * 40,
                    "paired_block": i,
                    "paired_at": p,
                    "unpaired_block": None if u is None else i,
                    "unpaired_at": u,
                    "block_number": i,
                    "tx_hash": "0x" + f"{i:064x}",
                    "log_index": 0,
                }
                for i, (d, v, p, u) in enumerate(rows)
            ],
        )
    windows = [(w * 1000, w * 1000 + 10_000) for w in (60, 150, 195, 250, 350, 450)]
    asks = [
        (device, vehicle, start, end)
        for device in (a, b, c, Web3.to_checksum_address(a))
        for vehicle in (1, 2, 3)
        for start, end in windows
    ]
    with engine.connect() as conn:
        one_by_one = [IndexedPairings(conn)(*ask) for ask in asks]
        prefetched = IndexedPairings(conn)
        prefetched.prefetch((device, vehicle) for device, vehicle, _, _ in asks)
        assert [prefetched(*ask) for ask in asks] == one_by_one
    # Paired windows come out paired, and the rest not: the test can tell them apart.
    assert one_by_one.count(True) == 14
