"""The batcher on anvil: journaled bundles anchored once, proofs verify, stuck and down chains."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from sqlalchemy import Engine, event, select
from web3 import Web3

from oracle.anchoring import Anchorer, BatchHeader
from oracle.batcher import Batcher, BatcherTuning
from oracle.journal import Journal, reading
from oracle.quorum import OracleSigner, Quorum
from oracle.tables import BatchState, batches, bundles, open_journal
from oracle.verify import VerifiedBundle, leaf_hash
from protocol.batch import parse_public
from protocol.blobstore import LocalCidStore
from protocol.bundle import SCHEMA_SIGNALS, Bundle, bundle_leaf, sign_bundle
from protocol.cid import Cid
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain
from tests.conftest import private_key

T0 = 1_767_225_600_000  # 2026-01-01, unix ms


_JOURNALS: dict[int, Journal] = {}


def open_journal_engine(url: str) -> Engine:
    """A journal engine with its `Journal` (made once: it sets SQLite's BEGIN IMMEDIATE)."""
    engine = open_journal(url)
    _JOURNALS[id(engine)] = Journal(engine)
    return engine


def device_keys(n: int) -> list[bytes]:
    return [keccak(f"batcher-device-{i}".encode()) for i in range(n)]


def journal_bundles(
    engine: Engine, domain: Eip712Domain, count: int, start_sequence: int = 0, devices: int = 3
) -> list[bytes]:
    """Journals `count` signed bundles through the Journal; returns their leaf hashes."""
    from protocol.crypto import private_key_to_address

    journal = _JOURNALS.get(id(engine)) or Journal(engine)
    _JOURNALS[id(engine)] = journal
    keys = device_keys(devices)
    verified = []
    for i in range(start_sequence, start_sequence + count):
        key = keys[i % devices]
        start = T0 + 60_000 * i
        bundle = Bundle(
            private_key_to_address(key),
            1 + i % devices,
            i,
            start,
            start + 60_000,
            {"Vehicle.Speed": [(start + 1000, 40.0 + i)]},
            # Both schemas, as the oracle accepts both: odd sequences are schema 2.
            schema_version=SCHEMA_SIGNALS if i % 2 else 1,
        )
        signed = sign_bundle(bundle, key, domain)
        verified.append(VerifiedBundle(signed, bundle_leaf(signed), leaf_hash(signed), None))
    receipts = journal.accept(verified, int(time.time() * 1000) - 3_600_000)
    assert all(getattr(r, "status", None) == "accepted" for r in receipts)
    return [v.leaf_hash for v in verified]


def journal_leaf_hashes(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        return [bytes(r[0]) for r in conn.execute(select(bundles.c.leaf_hash))]


def anchored_contents(anchorer: Anchorer, store: LocalCidStore) -> list[tuple[int, bytes]]:
    """(batch id, content) of every BatchAnchored event on chain, in id order."""
    contract = anchorer.contract
    logs = contract.events.BatchAnchored().get_logs(from_block=0)
    out = []
    for entry in logs:
        cid = str(Cid.from_bytes(bytes(entry["args"]["cid"])))
        out.append((int(entry["args"]["id"]), store.get(cid)))
    return sorted(out)


def anchored_leaf_hashes(
    anchorer: Anchorer, store: LocalCidStore, domain: Eip712Domain
) -> list[bytes]:
    hashes = []
    for batch_id, raw in anchored_contents(anchorer, store):
        content = parse_public(raw, domain, batch_id)
        assert content.tree.root == anchorer.root_of(batch_id)
        hashes += [content.tree.leaf_hash(e.leaf) for e in content.entries]
    return hashes


def assert_anchored_exactly_once(
    engine: Engine, anchorer: Anchorer, store: LocalCidStore, domain: Eip712Domain
) -> None:
    journal = journal_leaf_hashes(engine)
    on_chain = anchored_leaf_hashes(anchorer, store, domain)
    assert len(on_chain) == len(set(on_chain)), "a bundle was anchored twice"
    assert sorted(on_chain) == sorted(journal)
    with engine.connect() as conn:
        rows = list(conn.execute(select(batches.c.id, batches.c.state).order_by(batches.c.id)))
    assert [r.state for r in rows] == [BatchState.CONFIRMED.value] * len(rows)
    assert anchorer.last_batch_id() == len(rows)


@pytest.fixture
def deployment(deployment_record: Path) -> Deployment:
    return Deployment.load(deployment_record)


@pytest.fixture
def domain(deployment: Deployment) -> Eip712Domain:
    return dimo_domain(deployment.chain_id, deployment.contract("AttestationAnchor").address)


@pytest.fixture
def submitter_key(accounts: Any) -> str:
    return private_key(accounts[6])


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_journal_engine(f"sqlite:///{tmp_path / 'oracle.db'}")


@pytest.fixture
def store(tmp_path: Path) -> LocalCidStore:
    return LocalCidStore(tmp_path / "blobs")


@pytest.fixture
def make_batcher(
    rpc_url: str,
    deployment: Deployment,
    domain: Eip712Domain,
    submitter_key: str,
    oracle_signers: list[Any],
    engine: Engine,
    store: LocalCidStore,
) -> Callable[..., Batcher]:
    def _make(**tuning: Any) -> Batcher:
        anchorer = Anchorer(rpc_url, deployment, submitter_key)
        signers = [OracleSigner(private_key(s), domain) for s in oracle_signers]
        quorum = Quorum(signers, *anchorer.oracles(), domain)
        return Batcher(engine, store, quorum, anchorer, BatcherTuning(**tuning))

    return _make


def test_journaled_bundles_are_anchored_once_and_every_reading_verifies(
    make_batcher: Callable[..., Batcher],
    engine: Engine,
    store: LocalCidStore,
    domain: Eip712Domain,
    anchor: Any,
) -> None:
    journal_bundles(engine, domain, 7)
    batcher = make_batcher(batch_max_bundles=4, batch_interval_s=3600)
    assert batcher.drain() == [1, 2]
    assert_anchored_exactly_once(engine, batcher.anchorer, store, domain)
    events = batcher.anchorer.contract.events.BatchAnchored().get_logs(from_block=0)
    assert [(e["args"]["id"], e["args"]["count"]) for e in events] == [(1, 4), (2, 3)]
    for batch_id, raw in anchored_contents(batcher.anchorer, store):
        content = parse_public(raw, domain, batch_id)
        for i, value in content.tree.entries():
            assert anchor.verifyReading(batch_id, list(value), content.tree.proof(i)) is True
        tampered = list(content.tree.at(0))
        tampered[5] = keccak(b"other data")
        assert anchor.verifyReading(batch_id, tampered, content.tree.proof(0)) is False


def test_a_batch_is_cut_when_full_or_when_its_window_has_passed(
    make_batcher: Callable[..., Batcher], engine: Engine, domain: Eip712Domain
) -> None:
    journal_bundles(engine, domain, 2)
    now = [int(time.time() * 1000) - 3_600_000]  # as journaled
    batcher = make_batcher(batch_max_bundles=3, batch_interval_s=60)
    batcher.clock_ms = lambda: now[0]
    assert batcher.step() is False
    now[0] += 60_000
    assert batcher.step() is True
    journal_bundles(engine, domain, 3, start_sequence=2)
    assert batcher.step() is True  # full, though the window has not passed
    assert batcher.anchorer.last_batch_id() == 2


def test_the_python_batch_digest_is_the_contracts(
    make_batcher: Callable[..., Batcher], domain: Eip712Domain
) -> None:
    from oracle.anchoring import batch_digest

    anchorer = make_batcher().anchorer
    header = BatchHeader(
        7, keccak(b"root"), "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", 9, 5, 10
    )
    assert anchorer.contract_digest(header) == batch_digest(header, domain)


def _wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def _state(engine: Engine, batch_id: int) -> Any:
    with reading(engine) as conn:
        return conn.execute(select(batches).where(batches.c.id == batch_id)).first()


def test_a_stuck_anchor_is_resent_with_the_same_nonce_and_fees_bumped(
    make_batcher: Callable[..., Batcher], engine: Engine, store: LocalCidStore, domain: Any
) -> None:
    journal_bundles(engine, domain, 3)
    batcher = make_batcher(batch_interval_s=0.001, tx_timeout_s=1.0, poll_s=0.05)
    w3: Web3 = batcher.anchorer.w3
    stop = threading.Event()
    worker = threading.Thread(target=batcher.run, args=(stop,))
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        worker.start()
        _wait_for(lambda: (row := _state(engine, 1)) is not None and row.tx_hash is not None)
        first = _state(engine, 1)
        _wait_for(lambda: _state(engine, 1).tx_hash != first.tx_hash)
        second = _state(engine, 1)
        assert second.tx_nonce == first.tx_nonce
        assert second.tx_fee_per_gas >= first.tx_fee_per_gas * 1.125
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    _wait_for(lambda: _state(engine, 1).state == BatchState.CONFIRMED.value)
    stop.set()
    worker.join(30)
    assert_anchored_exactly_once(engine, batcher.anchorer, store, domain)


def test_a_chain_down_during_submission_is_retried_and_nothing_is_lost(
    make_batcher: Callable[..., Batcher], engine: Engine, store: LocalCidStore, domain: Any
) -> None:
    journal_bundles(engine, domain, 5)
    batcher = make_batcher(batch_interval_s=0.001, poll_s=0.05, backoff_max_s=0.5)
    batch_id = batcher.build()
    assert batch_id == 1
    batcher.store_content(batch_id)
    batcher.sign(batch_id)
    w3 = batcher.anchorer.w3
    live = w3.provider
    w3.provider = Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 1})
    stop = threading.Event()
    worker = threading.Thread(target=batcher.run, args=(stop,))
    worker.start()
    time.sleep(2.0)
    assert worker.is_alive()
    assert _state(engine, 1).state == BatchState.SIGNED.value
    w3.provider = live
    _wait_for(lambda: _state(engine, 1).state == BatchState.CONFIRMED.value)
    stop.set()
    worker.join(30)
    assert_anchored_exactly_once(engine, batcher.anchorer, store, domain)


def test_a_journal_locked_by_writers_is_waited_out_and_nothing_is_lost(
    make_batcher: Callable[..., Batcher],
    engine: Engine,
    store: LocalCidStore,
    domain: Any,
    tmp_path: Path,
) -> None:
    """Ingest writers can hold SQLite's write lock past the busy timeout under a backlog.
    Meanwhile the batcher's reads go on (they never take the write lock), and its writes fail
    with `database is locked`: it backs off and retries, and anchors once the lock is free."""
    journal_bundles(engine, domain, 5)

    @event.listens_for(engine, "connect")
    def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=200")

    engine.dispose()  # pooled connections pick up the shorter timeout
    batcher = make_batcher(batch_interval_s=0.001, poll_s=0.05, backoff_max_s=0.5)
    holder = sqlite3.connect(tmp_path / "oracle.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a writer holding the lock
    stop = threading.Event()
    worker = threading.Thread(target=batcher.run, args=(stop,))
    try:
        try:
            assert batcher.unfinished() == []
            assert batcher.due() is True
            assert _JOURNALS[id(engine)].status()["journal_depth"] == 5
            worker.start()
            time.sleep(1.5)  # several build attempts, each refused after 0.2 s
            assert worker.is_alive()
            assert _state(engine, 1) is None
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        _wait_for(lambda: (row := _state(engine, 1)) is not None and row.state == "confirmed")
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(30)
    assert not worker.is_alive()
    assert_anchored_exactly_once(engine, batcher.anchorer, store, domain)
