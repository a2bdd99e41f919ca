"""Tests of the uploader against a real local HTTP server that follows the ingest contract."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from device_bridge.exceptions import IngestContractError, UploadError
from device_bridge.keys import DeviceKey
from device_bridge.queue import BundleQueue
from device_bridge.uploader import Uploader
from device_bridge.window import ClosedWindow, Sealer
from protocol.eip712 import dimo_domain

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bridge_ingest_server import IngestServer, IngestState, free_port

DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = DeviceKey.from_private_key("0x" + "31" * 32)
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
T0 = 1_735_689_600_000
REASONS = (
    "malformed-payload",
    "bad-signature",
    "unknown-device",
    "unpaired-device",
    "replayed-sequence",
    "implausible-value",
    "timestamp-outside-window",
    "window-in-future",
    "window-too-old",
    "unknown-signal",
)


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[BundleQueue]:
    with BundleQueue(tmp_path / "q.sqlite") as q:
        yield q


@pytest.fixture
def server() -> Iterator[IngestServer]:
    with IngestServer(IngestState(DOMAIN)) as s:
        yield s


def _fill(queue: BundleQueue, n: int, key: DeviceKey = KEY) -> None:
    sealer = Sealer(queue, key, DOMAIN, vehicle_id=3)
    for i in range(n):
        start = T0 + i * 10_000
        sealer.seal(ClosedWindow(start, start + 10_000, {SOC: [(start + 1, 40.0 + i)]}))


def _uploader(queue: BundleQueue, url: str, **kw: object) -> Uploader:
    return Uploader(queue, url, retry_base_s=0.01, retry_max_s=0.05, timeout_s=5, **kw)  # type: ignore[arg-type]


def test_accepted_receipts_delete_the_bundles(queue: BundleQueue, server: IngestServer) -> None:
    _fill(queue, 5)
    uploader = _uploader(queue, server.url, batch_size=2)
    assert uploader.drain(timeout_s=10)
    assert uploader.report.accepted == 5
    assert server.state.posts == 3
    assert sorted(e["sequence"] for e in server.state.journal.values()) == [1, 2, 3, 4, 5]
    assert queue.counters()["accepted"] == 5


def test_503s_are_retried_with_backoff_until_accepted(
    queue: BundleQueue, server: IngestServer
) -> None:
    _fill(queue, 3)
    server.state.fail_next = 3
    uploader = _uploader(queue, server.url)
    assert uploader.drain(timeout_s=10)
    assert uploader.report.failures == 3
    assert uploader.report.accepted == 3
    assert server.state.posts == 4
    assert len(server.state.journal) == 3


def test_a_refused_connection_keeps_the_bundles_and_counts_the_attempt(
    queue: BundleQueue,
) -> None:
    _fill(queue, 2)
    uploader = _uploader(queue, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UploadError, match="ConnectError"):
        uploader.upload_once()
    rows = queue.peek(10)
    assert [r.attempts for r in rows] == [1, 1]
    assert not uploader.drain(timeout_s=0.2)
    assert queue.depth() == 2


def test_a_lost_receipt_is_recovered_as_a_duplicate(
    queue: BundleQueue, server: IngestServer
) -> None:
    _fill(queue, 1)
    (row,) = queue.peek(1)
    assert _uploader(queue, server.url).drain(timeout_s=5)
    # the same signed bundle again, as after a crash before the receipt was stored
    queue._db.execute(
        "INSERT INTO outbox(device, sequence, window_start, window_end, leaf_hash, wire, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, 0)",
        (row.device, row.sequence, row.window_start, row.window_end, row.leaf_hash, row.wire),
    )
    queue._depth += 1
    uploader = _uploader(queue, server.url)
    assert uploader.drain(timeout_s=5)
    assert uploader.report.duplicate == 1
    assert len(server.state.journal) == 1


@pytest.mark.parametrize("reason", REASONS)
def test_a_rejected_bundle_is_dead_lettered_with_its_reason(
    queue: BundleQueue, server: IngestServer, reason: str
) -> None:
    _fill(queue, 3)
    server.state.reject[2] = reason
    uploader = _uploader(queue, server.url)
    assert uploader.drain(timeout_s=5)
    (letter,) = queue.dead_letters()
    assert (letter.sequence, letter.reason) == (2, reason)
    assert letter.problem["type"] == f"https://dimo.local/problems/{reason}"
    assert sorted(e["sequence"] for e in server.state.journal.values()) == [1, 3]


def test_a_bundle_signed_by_another_key_is_rejected_as_bad_signature(
    queue: BundleQueue, server: IngestServer
) -> None:
    other = DeviceKey.from_private_key("0x" + "32" * 32)
    sealer = Sealer(queue, KEY, DOMAIN, 3)
    bundle = sealer.build(ClosedWindow(T0, T0 + 10_000, {SOC: [(T0, 1.0)]}), 1)
    from protocol.bundle import sign_bundle

    queue.put(sign_bundle(bundle, other.private_key, DOMAIN))
    assert _uploader(queue, server.url).drain(timeout_s=5)
    assert [d.reason for d in queue.dead_letters()] == ["bad-signature"]


def test_a_whole_request_400_is_narrowed_down_to_the_bad_bundle(
    queue: BundleQueue, server: IngestServer
) -> None:
    _fill(queue, 6)
    server.state.whole_request_reject.add(4)
    uploader = _uploader(queue, server.url, batch_size=6)
    assert uploader.drain(timeout_s=5)
    assert [d.sequence for d in queue.dead_letters()] == [4]
    assert queue.dead_letters()[0].reason == "malformed-payload"
    assert sorted(e["sequence"] for e in server.state.journal.values()) == [1, 2, 3, 5, 6]


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ({"results": []}, "0 results for 1"),
        ({"nope": 1}, "no results"),
        ({"results": [{"status": "accepted", "leaf_hash": "0x00", "sequence": 1}]}, "leaf_hash"),
        ({"results": [{"status": "maybe"}]}, "unknown status"),
        ({"results": [{"status": "rejected"}]}, "no problem object"),
    ],
)
def test_an_answer_breaking_the_contract_deletes_nothing(
    queue: BundleQueue, answer: dict[str, object], match: str
) -> None:
    app = FastAPI()

    @app.post("/v1/bundles")
    async def lie() -> JSONResponse:
        return JSONResponse(answer)

    _fill(queue, 1)
    liar = IngestServer(IngestState(DOMAIN), app)
    with liar, pytest.raises(IngestContractError, match=match):
        _uploader(queue, liar.url).upload_once()
    assert queue.depth() == 1
    assert queue.dead_letters() == []


def test_a_404_is_not_retryable_but_keeps_the_bundles(queue: BundleQueue) -> None:
    app = FastAPI()
    _fill(queue, 1)
    with IngestServer(IngestState(DOMAIN), app) as empty, pytest.raises(UploadError) as info:
        _uploader(queue, empty.url).upload_once()
    assert not info.value.retryable
    assert queue.depth() == 1


def test_backoff_doubles_up_to_the_cap_with_jitter(queue: BundleQueue) -> None:
    uploader = Uploader(
        queue, "http://127.0.0.1:1", retry_base_s=1.0, retry_max_s=8.0, rng=random.Random(1)
    )
    for failures, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {uploader.backoff_delay(failures) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1
