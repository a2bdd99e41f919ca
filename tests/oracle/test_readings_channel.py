"""No reading value in a public artifact: the published batch documents, and the oracle route
that hands the values to authorised indexers only (a real uvicorn server, anvil, the loader)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import cbor2
import httpx
import pytest
from sqlalchemy import Engine

from indexer.db import make_engine
from indexer.exceptions import BatchContentUnavailable
from indexer.loader import AnchoredBatch, BatchLoader, OracleReadings, create_tables
from indexer.loader import reading_count as indexed_reading_count
from oracle.anchoring import Anchorer
from oracle.batcher import Batcher, BatcherTuning
from oracle.config import OracleSettings
from oracle.quorum import OracleSigner, Quorum
from oracle.tables import open_journal
from protocol.batch import (
    CONTENT_FORMAT,
    PUBLIC_FORMAT,
    READINGS_HEADER,
    parse_content,
    parse_public,
    readings_request_header,
)
from protocol.blobstore import LocalCidStore
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain
from rewards.activity import read_batch
from tests.conftest import make_device_key, private_key

INDEXER = make_device_key(60)
STRANGER = make_device_key(61)
T0 = 1_767_225_600_000
BUNDLES = 6


@pytest.fixture
def settings(settings: OracleSettings) -> OracleSettings:
    """The conftest's oracle settings, listing one indexer."""
    return settings.model_copy(update={"indexers": [INDEXER.address]})


def _samples(i: int) -> dict[str, list[tuple[int, Any]]]:
    """Readings whose values are distinctive, so that any copy of them can be found."""
    start = T0 + 60_000 * i
    return {
        "Vehicle.Speed": [(start + 1000, 40.125 + i), (start + 2000, 41.375 + i)],
        "Vehicle.CurrentLocation.Latitude": [(start + 1000, 52.519_871 + i / 1000)],
        "Vehicle.CurrentLocation.Longitude": [(start + 1000, 13.404_953 + i / 1000)],
        "Vehicle.IsMoving": [(start + 1000, True)],
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": [(start + 1000, 77 + i)],
    }


class Anchored(NamedTuple):
    """What the `anchored` fixture made: the chain, the blob store, the signed bundles, and the
    first block of this test (the session's anvil is shared: batches anchored before it, by
    other tests or services, are not this test's and their documents are in other stores)."""

    anchorer: Anchorer
    store: LocalCidStore
    signed: list[Any]
    since: int


@pytest.fixture
def anchored(
    settings: OracleSettings,
    rpc_url: str,
    deployment: Deployment,
    domain: Eip712Domain,
    accounts: Any,
    oracle_signers: list[Any],
) -> Anchored:
    """Bundles of both schemas journaled, cut into batches and anchored."""
    from oracle.journal import Journal
    from oracle.verify import VerifiedBundle, leaf_hash
    from protocol.bundle import SCHEMA_SIGNALS, Bundle, bundle_leaf, sign_bundle

    engine = open_journal(settings.database_url)
    journal = Journal(engine)  # once per engine: it makes SQLite's transactions immediate
    key = make_device_key(62)
    signed = [
        sign_bundle(
            Bundle(
                key.address,
                9,
                i,
                T0 + 60_000 * i,
                T0 + 60_000 * (i + 1),
                _samples(i),
                schema_version=SCHEMA_SIGNALS if i % 3 else 1,
            ),
            bytes(key.key),
            domain,
        )
        for i in range(BUNDLES)
    ]
    verified = [VerifiedBundle(s, bundle_leaf(s), leaf_hash(s), None) for s in signed]
    journal.accept(verified, T0)
    anchorer = Anchorer(rpc_url, deployment, str(accounts[0].private_key))
    quorum = Quorum(
        [OracleSigner(private_key(s), domain) for s in oracle_signers],
        *anchorer.oracles(),
        domain,
    )
    store = LocalCidStore(settings.blob_dir)
    since = anchorer.head() + 1
    batcher = Batcher(
        engine, store, quorum, anchorer, BatcherTuning(batch_max_bundles=4, batch_interval_s=3600)
    )
    assert len(batcher.drain()) == 2
    return Anchored(anchorer, store, signed, since)


def _anchored_batches(anchored: Anchored) -> list[AnchoredBatch]:
    """The batches this test anchored, by id."""
    anchorer = anchored.anchorer
    logs = anchorer.contract.events.BatchAnchored().get_logs(from_block=anchored.since)
    return sorted(
        (
            AnchoredBatch.from_event(
                {**e["args"], "cid": bytes(e["args"]["cid"])},
                "0x" + bytes(e["transactionHash"]).hex(),
                int(e["blockNumber"]),
            )
            for e in logs
        ),
        key=lambda b: b.id,
    )


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)
    else:
        yield node


def test_the_published_batch_documents_hold_no_reading_value(
    anchored: Anchored, domain: Eip712Domain
) -> None:
    anchorer, store, signed, _ = anchored
    values = {v for s in signed for samples in s.bundle.readings.values() for _, v in samples}
    secrets = [
        cbor2.dumps([ts, v], canonical=True).hex()
        for s in signed
        for samples in s.bundle.readings.values()
        for ts, v in samples
    ] + [salt.hex() for s in signed for salt in (s.bundle.salts or {}).values()]
    batches = _anchored_batches(anchored)
    assert [b.count for b in batches] == [4, 2]
    for batch in batches:
        raw = store.get(batch.cid)  # exactly the bytes anyone reads by the anchored CID
        doc = json.loads(raw)
        assert doc["format"] == PUBLIC_FORMAT
        leaves = list(_walk(doc))
        numbers = {x for x in leaves if isinstance(x, int | float) and not isinstance(x, bool)}
        header = {doc["id"], doc["count"], doc["windowStart"], doc["windowEnd"], 1, 2}
        assert not (numbers - header) & values, "a reading value is published"
        text = raw.decode().lower()
        for secret in secrets:
            assert secret not in text, "a sample encoding or a salt is published"
        assert "true" not in text.replace('"', "")  # Vehicle.IsMoving's value
        # ... and yet everything in it checks against the chain, signal names included.
        public = parse_public(raw, domain, batch.id)
        assert public.tree.root == anchorer.root_of(batch.id)
        for entry in public.entries:
            assert set(entry.signals) == set(_samples(0))


def test_rewards_count_signals_from_the_public_documents_alone(
    anchored: Anchored, domain: Eip712Domain
) -> None:
    anchorer, store, signed, _ = anchored
    seen = []
    for batch in _anchored_batches(anchored):
        got = read_batch(store.get(batch.cid), anchorer.root_of(batch.id), domain)
        assert not isinstance(got, str), got
        seen += got
    assert [(v, d, ws, we, set(names)) for v, d, ws, we, names in seen] == [
        (9, s.bundle.device, s.bundle.window_start, s.bundle.window_end, set(_samples(0)))
        for s in signed
    ]


def test_a_public_document_with_an_altered_commitment_counts_for_nothing(
    anchored: Anchored, domain: Eip712Domain
) -> None:
    anchorer, store, _, _ = anchored
    batch = _anchored_batches(anchored)[0]
    doc = json.loads(store.get(batch.cid))
    entry = next(e for e in doc["bundles"] if e["schema"] == 2)
    entry["signals"][0][1] = "0x" + "11" * 32
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    got = read_batch(raw, anchorer.root_of(batch.id), domain)
    assert isinstance(got, str)
    assert "dataHash" in got


@pytest.fixture
def served(anchored: Anchored, oracle_server: str) -> tuple[str, Anchored]:
    return oracle_server, anchored


def _get(url: str, batch_id: int, header: str | None) -> httpx.Response:
    headers = {READINGS_HEADER: header} if header is not None else {}
    return httpx.get(f"{url}/v1/batches/{batch_id}/readings", headers=headers, timeout=30)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def test_an_authorised_indexer_reads_the_values_and_they_rebuild_the_anchored_root(
    served: tuple[str, Anchored], domain: Eip712Domain
) -> None:
    url, anchored = served
    anchorer, _, signed, _ = anchored
    first = _anchored_batches(anchored)[0].id
    response = _get(url, first, readings_request_header(domain, INDEXER.key, first, _now_ms()))
    assert response.status_code == 200
    content = parse_content(response.content, domain, first)
    assert json.loads(response.content)["format"] == CONTENT_FORMAT
    assert content.tree.root == anchorer.root_of(first)
    assert [s.bundle for s in content.signed] == [s.bundle for s in signed[:4]]


@pytest.mark.parametrize("batch_id", [1, 99], ids=["existing", "unknown"])
def test_anyone_else_is_refused_alike_whether_or_not_the_batch_exists(
    served: tuple[str, Anchored], domain: Eip712Domain, batch_id: int
) -> None:
    url = served[0]
    assert _get(url, batch_id, None).status_code == 401
    assert _get(url, batch_id, "1.0x00").status_code == 401
    stale = readings_request_header(domain, INDEXER.key, batch_id, _now_ms() - 3_600_000)
    assert _get(url, batch_id, stale).status_code == 401
    other_batch = readings_request_header(domain, INDEXER.key, batch_id + 1, _now_ms())
    assert _get(url, batch_id, other_batch).status_code == 403  # recovers to someone else
    stranger = readings_request_header(domain, STRANGER.key, batch_id, _now_ms())
    response = _get(url, batch_id, stranger)
    assert response.status_code == 403
    problem = response.json()
    assert problem["reason"] == "not-an-authorised-indexer"
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("batch_id", [-1, 1 << 64], ids=["negative", "past-int64"])
def test_a_batch_id_out_of_range_is_a_typed_error_not_a_crash(
    served: tuple[str, Anchored], batch_id: int
) -> None:
    response = _get(served[0], batch_id, "1.0x00")
    assert response.status_code == 422, response.text
    assert "batch_id" in response.text


def test_an_authorised_indexer_gets_404_for_an_unknown_batch(
    served: tuple[str, Anchored], domain: Eip712Domain
) -> None:
    url = served[0]
    response = _get(url, 99, readings_request_header(domain, INDEXER.key, 99, _now_ms()))
    assert response.status_code == 404


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    create_tables(engine)
    yield engine
    engine.dispose()


def _every_device_paired(*_: Any) -> bool:
    # Pairing is the loader's own check, tested in tests/indexer/test_loader.py.
    return True


def test_the_loader_reads_values_through_the_channel_and_checks_them_against_the_root(
    served: tuple[str, Anchored], domain: Eip712Domain, index: Engine
) -> None:
    url, anchored = served
    _, store, signed, _ = anchored
    channel = OracleReadings(url, INDEXER.key.hex(), domain)
    loader = BatchLoader(index, store, domain, _every_device_paired, channel)
    for batch in _anchored_batches(anchored):
        assert loader.load(batch).status == "loaded"
    with index.connect() as conn:
        assert indexed_reading_count(conn) == sum(s.bundle.reading_count for s in signed)
    channel.close()


def test_an_indexer_not_listed_cannot_load_a_public_batch(
    served: tuple[str, Anchored], domain: Eip712Domain, index: Engine
) -> None:
    url, anchored = served
    _, store, _, _ = anchored
    outsider = OracleReadings(url, STRANGER.key.hex(), domain)
    batch = _anchored_batches(anchored)[0]
    with pytest.raises(BatchContentUnavailable):
        BatchLoader(index, store, domain, _every_device_paired, outsider).check(batch)
    with pytest.raises(BatchContentUnavailable):
        BatchLoader(index, store, domain, _every_device_paired).check(batch)
    outsider.close()
