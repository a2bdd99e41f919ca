"""The journal (on SQLite and PostgreSQL) and the ingest HTTP API on a real uvicorn server."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import cbor2
import httpx
import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from sqlalchemy import Engine, func, select

from oracle.api import create_app
from oracle.config import OracleSettings
from oracle.exceptions import ImplausibleValue, ReplayedSequence
from oracle.ingest import GroupCommitter
from oracle.journal import Journal, Receipt
from oracle.tables import bundles, devices, odometers, open_journal
from oracle.verify import prepare
from protocol.bundle import SignedBundle, bundle_leaf, decode_bundle, encode_signed_bundle
from tests.conftest import make_device_key

START = 1_750_000_000_000  # journal tests need no chain: any fixed window start will do
CBOR = {"Content-Type": "application/cbor"}


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(bundles)).scalar_one())


# --------------------------------------------------------------------------------------------
# Journal, on both databases
# --------------------------------------------------------------------------------------------


def test_an_accepted_bundle_gets_a_receipt_and_a_journal_row(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    journal = Journal(journal_engine)
    signed = make_signed(make_device_key(1), 1, 5, START)
    [receipt] = journal.accept([prepare(signed)])
    assert isinstance(receipt, Receipt)
    assert receipt.status == "accepted"
    row = journal.get(receipt.position)
    assert row is not None
    assert row["leaf_hash"] == receipt.leaf_hash == prepare(signed).leaf_hash
    # The row rebuilds the signed bundle exactly.
    assert SignedBundle(decode_bundle(row["encoding"]), bytes(row["signature"])) == signed
    assert (row["device"], row["sequence"], row["batch_id"]) == (signed.bundle.device, 5, None)
    with journal_engine.connect() as conn:
        assert conn.execute(select(devices.c.last_sequence)).scalar_one() == 5
        assert conn.execute(select(odometers.c.max_km)).scalar_one() == pytest.approx(1000.126)


def test_an_identical_bundle_sent_again_gets_the_first_receipt_and_no_new_row(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    journal = Journal(journal_engine)
    signed = make_signed(make_device_key(1), 1, 1, START)
    [first] = journal.accept([prepare(signed)])
    [second] = journal.accept([prepare(signed)])
    assert isinstance(first, Receipt)
    assert isinstance(second, Receipt)
    assert second.status == "duplicate"
    assert second.position == first.position
    assert second.leaf_hash == first.leaf_hash
    assert _count(journal_engine) == 1


def test_a_used_sequence_with_other_content_is_a_replay(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    journal = Journal(journal_engine)
    key = make_device_key(1)
    journal.accept([prepare(make_signed(key, 1, 7, START))])
    same = make_signed(key, 1, 7, START + 10_000, odometer_km=1001.0)
    lower = make_signed(key, 1, 6, START + 20_000, odometer_km=1002.0)
    results = journal.accept([prepare(same), prepare(lower)])
    assert all(isinstance(r, ReplayedSequence) for r in results)
    assert [r.reason for r in results] == ["replayed-sequence"] * 2  # type: ignore[union-attr]
    assert _count(journal_engine) == 1


def test_an_odometer_below_the_vehicles_maximum_is_implausible(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    journal = Journal(journal_engine)
    journal.accept([prepare(make_signed(make_device_key(1), 9, 1, START, odometer_km=5000.0))])
    # Another device of the same vehicle (e.g. after a swap) cannot wind the odometer back.
    back = make_signed(make_device_key(2), 9, 1, START + 10_000, odometer_km=4999.0)
    [result] = journal.accept([prepare(back)])
    assert isinstance(result, ImplausibleValue)
    assert result.reason == "implausible-value"
    ahead = make_signed(make_device_key(2), 9, 2, START + 20_000, odometer_km=5000.2)
    [ok] = journal.accept([prepare(ahead)])
    assert isinstance(ok, Receipt)
    assert ok.status == "accepted"


def test_one_request_mixing_new_duplicate_and_replayed_bundles_is_answered_in_order(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    journal = Journal(journal_engine)
    key = make_device_key(1)
    b1 = make_signed(key, 1, 1, START)
    b2 = make_signed(key, 1, 2, START + 10_000, odometer_km=1001.0)
    b2_other = make_signed(key, 1, 2, START + 10_000, odometer_km=1001.5)
    b3 = make_signed(key, 1, 3, START + 20_000, odometer_km=1002.0)
    results = journal.accept([prepare(b) for b in (b1, b2, b2, b2_other, b3)])
    kinds = [r.status if isinstance(r, Receipt) else r.reason for r in results]
    assert kinds == ["accepted", "accepted", "duplicate", "replayed-sequence", "accepted"]
    positions = [r.position for r in results if isinstance(r, Receipt)]
    assert positions[1] == positions[2]
    assert positions[0] < positions[1] < positions[3]
    assert _count(journal_engine) == 3


def test_concurrent_workers_cannot_both_accept_one_sequence(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    key = make_device_key(1)
    rivals = [prepare(make_signed(key, 1, 1, START, odometer_km=1000.0 + i)) for i in range(6)]
    url = journal_engine.url.render_as_string(hide_password=False)
    kwargs: dict[str, Any] = {}
    if journal_engine.dialect.name == "postgresql":
        kwargs["connect_args"] = {"options": _search_path(journal_engine)}
    workers = [Journal(open_journal(url, **kwargs)) for _ in rivals]
    barrier = threading.Barrier(len(rivals))
    results: list[Any] = [None] * len(rivals)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = workers[i].accept([rivals[i]])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(rivals))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.engine.dispose()
    accepted = [r for r in results if isinstance(r, Receipt)]
    assert len(accepted) == 1
    assert sum(isinstance(r, ReplayedSequence) for r in results) == len(rivals) - 1
    assert _count(journal_engine) == 1


def test_group_commits_take_whole_requests_up_to_the_group_limit(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    """A backlog of requests is journaled in transactions of at most `max_group` bundles
    (one larger request alone), never splitting a request, and each request gets exactly
    its own receipts."""
    journal = Journal(journal_engine)
    sizes: list[int] = []
    accept = journal.accept

    def counting(verified: Any, now_ms: Any = None) -> Any:
        sizes.append(len(verified))
        return accept(verified, now_ms)

    journal.accept = counting  # type: ignore[method-assign]
    committer = GroupCommitter(journal, max_group=25)
    requests = [
        [
            prepare(
                make_signed(
                    make_device_key(100 + r), r + 1, 1 + i, START + 10_000 * i, odometer_km=1000 + i
                )
            )
            for i in range(n)
        ]
        for r, n in enumerate([10] * 12 + [40, 3])
    ]

    async def send_all() -> list[list[Any]]:
        return list(await asyncio.gather(*(committer.accept(req, START) for req in requests)))

    answers = asyncio.run(send_all())
    assert max(sizes) == 40  # the request of 40 went alone
    assert all(size <= 25 for size in sizes if size != 40)
    assert sum(sizes) == sum(len(r) for r in requests)
    for request, receipts in zip(requests, answers, strict=True):
        assert [(r.device, r.sequence, r.status) for r in receipts] == [
            (v.device, v.sequence, "accepted") for v in request
        ]
    assert _count(journal_engine) == sum(len(r) for r in requests)


def _search_path(engine: Engine) -> str:
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    return f"-csearch_path={schema}"


def test_status_counts_unbatched_bundles(
    journal_engine: Engine, make_signed: Callable[..., SignedBundle]
) -> None:
    journal = Journal(journal_engine)
    key = make_device_key(1)
    journal.accept(
        [
            prepare(make_signed(key, 1, s, START + s * 10_000, odometer_km=1000.0 + s))
            for s in range(1, 4)
        ]
    )
    status = journal.status()
    assert status["journal_depth"] == 3
    assert status["batches_by_state"]["confirmed"] == 0
    assert status["last_anchor"] is None


# --------------------------------------------------------------------------------------------
# HTTP API on a real uvicorn server and anvil
# --------------------------------------------------------------------------------------------


@pytest.fixture
def paired_one(
    paired_vehicle: Callable[[int], tuple[int, Any]], chain_now_ms: Callable[[], int]
) -> tuple[int, Any, int]:
    vehicle, key = paired_vehicle(1)
    return vehicle, key, chain_now_ms() + 1000


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/v1/bundles", content=body, headers=CBOR, timeout=30)


def test_a_posted_bundle_is_accepted_journaled_and_a_resend_is_a_duplicate(
    oracle_server: str,
    settings: OracleSettings,
    paired_one: tuple[int, Any, int],
    make_signed: Callable[..., SignedBundle],
) -> None:
    vehicle, key, start = paired_one
    signed = make_signed(key, vehicle, 1, start)
    first = _post(oracle_server, encode_signed_bundle(signed))
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    [receipt] = first.json()["results"]
    leaf = prepare(signed).leaf_hash
    assert receipt == {
        "status": "accepted",
        "position": receipt["position"],
        "leaf_hash": "0x" + leaf.hex(),
        "device": key.address,
        "sequence": 1,
    }
    engine = open_journal(settings.database_url)
    row = Journal(engine).get(receipt["position"])
    assert row is not None
    assert row["leaf_hash"] == leaf
    assert bundle_leaf(signed)[5] == row["data_hash"]

    [again] = _post(oracle_server, encode_signed_bundle(signed)).json()["results"]
    assert again == {**receipt, "status": "duplicate"}
    assert _count(engine) == 1
    engine.dispose()


def test_a_mixed_array_gets_one_result_per_bundle_in_order(
    oracle_server: str,
    paired_one: tuple[int, Any, int],
    make_signed: Callable[..., SignedBundle],
) -> None:
    vehicle, key, start = paired_one
    good1 = make_signed(key, vehicle, 1, start)
    forged = make_signed(key, vehicle, 2, start + 10_000, signer=make_device_key(66))
    unknown = make_signed(make_device_key(4242), vehicle, 1, start)
    good2 = make_signed(key, vehicle, 3, start + 20_000, odometer_km=1001.0)
    replay = make_signed(key, vehicle, 3, start + 30_000, odometer_km=1002.0)
    items = [encode_signed_bundle(b) for b in (good1, forged, unknown, good2, replay)]
    items.insert(2, cbor2.dumps({"bundle": b"nope", "signature": b"\x00" * 65}))
    body = b"\x86" + b"".join(items)
    response = _post(oracle_server, body)
    assert response.status_code == 200
    results = response.json()["results"]
    outcome = [
        r["status"] if r["status"] != "rejected" else r["problem"]["reason"] for r in results
    ]
    assert outcome == [
        "accepted",
        "bad-signature",
        "malformed-payload",
        "unknown-device",
        "accepted",
        "replayed-sequence",
    ]
    problem = results[1]["problem"]
    assert problem["type"] == "https://dimo.local/problems/bad-signature"
    assert problem["status"] == 401
    assert problem["title"]
    assert problem["detail"]
    status = httpx.get(f"{oracle_server}/v1/status").json()
    assert status["journal_depth"] == 2
    assert status["rejections_by_reason"] == {
        "bad-signature": 1,
        "malformed-payload": 1,
        "unknown-device": 1,
        "replayed-sequence": 1,
    }


def test_an_unpairing_on_chain_rejects_the_next_bundle(
    oracle_server: str,
    device_id: Any,
    owner: Any,
    paired_one: tuple[int, Any, int],
    make_signed: Callable[..., SignedBundle],
) -> None:
    vehicle, key, start = paired_one
    [ok] = _post(oracle_server, encode_signed_bundle(make_signed(key, vehicle, 1, start))).json()[
        "results"
    ]
    assert ok["status"] == "accepted"
    device_id.unpair(key.address, sender=owner)
    nxt = make_signed(key, vehicle, 2, start + 10_000, odometer_km=1001.0)
    [rejected] = _post(oracle_server, encode_signed_bundle(nxt)).json()["results"]
    assert rejected["status"] == "rejected"
    assert rejected["problem"]["reason"] == "unpaired-device"
    assert rejected["problem"]["status"] == 403


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\x00garbage", cbor2.dumps("a string"), b"\x82\xa0"],
    ids=["empty", "not-cbor", "not-a-map", "truncated-array"],
)
def test_a_body_that_is_not_cbor_bundles_is_a_400_problem(oracle_server: str, body: bytes) -> None:
    response = _post(oracle_server, body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://dimo.local/problems/malformed-payload"
    assert problem["status"] == 400
    assert problem["reason"] == "malformed-payload"


def test_an_array_of_more_than_1000_bundles_is_a_413_problem(oracle_server: str) -> None:
    response = _post(oracle_server, cbor2.dumps([{}] * 1001))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_health_and_status_answer(oracle_server: str) -> None:
    assert httpx.get(f"{oracle_server}/healthz").json()["status"] == "ok"
    status = httpx.get(f"{oracle_server}/v1/status").json()
    assert status == {
        "journal_depth": 0,
        "batches_by_state": {s: 0 for s in ("built", "stored", "signed", "submitted", "confirmed")},
        "last_anchor": None,
        "rejections_by_reason": {},
    }


def test_a_body_that_is_not_cbor_is_a_415_problem_and_counted(oracle_server: str) -> None:
    response = httpx.post(
        f"{oracle_server}/v1/bundles",
        content=b'{"bundle": 1}',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "unsupported-media-type"
    status = httpx.get(f"{oracle_server}/v1/status").json()
    assert status["rejections_by_reason"] == {"unsupported-media-type": 1}


def test_a_body_over_the_limit_is_a_413_problem_declared_or_streamed(
    oracle_server: str, settings: OracleSettings
) -> None:
    too_big = b"\x80" * (settings.max_body_bytes + 1)
    declared = _post(oracle_server, too_big)
    assert declared.status_code == 413
    assert declared.json()["reason"] == "payload-too-large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit applies as it streams
        for at in range(0, len(too_big), 1 << 16):
            yield too_big[at : at + (1 << 16)]

    streamed = httpx.post(
        f"{oracle_server}/v1/bundles", content=chunked(), headers=CBOR, timeout=30
    )
    assert streamed.status_code == 413
    assert "exceeds" in streamed.json()["detail"]
    # The server still answers on the next request.
    assert httpx.get(f"{oracle_server}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xff\x00garbage", "application/cbor"),
        (b"\x80", "text/plain"),
        (cbor2.dumps([{}] * 1001), "application/cbor"),
    ],
    ids=["not-cbor", "not-cbor-media", "too-many"],
)
def test_the_declared_route_answers_as_the_fast_path(
    settings: OracleSettings, body: bytes, content_type: str
) -> None:
    """`POST /v1/bundles` through FastAPI's own routing (the declared route) answers byte for
    byte as the raw ASGI path the app takes first."""
    app = create_app(settings)

    async def declared_route(scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    async def both() -> list[httpx.Response]:
        out = []
        for asgi in (app, declared_route):
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://oracle") as c:
                headers = {"content-type": content_type}
                out.append(await c.post("/v1/bundles", content=body, headers=headers))
        return out

    fast, routed = asyncio.run(both())
    assert fast.status_code == routed.status_code >= 400
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert fast.content == routed.content
    assert app.state.ingest.rejections.snapshot() == {fast.json()["reason"]: 2}


def test_run_refuses_to_run_neither_the_api_nor_the_batcher() -> None:
    from typer.testing import CliRunner

    from oracle.cli import app as oracle_cli

    result = CliRunner().invoke(oracle_cli, ["run", "--no-api", "--no-batcher"])
    assert result.exit_code == 1
    assert "nothing runs" in result.output


# --------------------------------------------------------------------------------------------
# The OpenAPI document, the docs pages and schemathesis over the ingest route
# --------------------------------------------------------------------------------------------


def test_the_openapi_document_describes_the_cbor_body_and_the_receipts_it_answers(
    oracle_server: str,
    paired_one: tuple[int, Any, int],
    make_signed: Callable[..., SignedBundle],
) -> None:
    doc = httpx.get(f"{oracle_server}/openapi.json").json()
    operation = doc["paths"]["/v1/bundles"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/cbor"]["schema"]["format"] == "binary"
    assert set(body["content"]) == {"application/cbor"}
    for status in ("400", "413", "415", "503"):
        assert set(operation["responses"][status]["content"]) == {"application/problem+json"}

    # A real answer (a receipt, then a rejection) is what the document says it is.
    vehicle, key, start = paired_one
    good = make_signed(key, vehicle, 1, start)
    forged = make_signed(key, vehicle, 2, start + 10_000, signer=make_device_key(66))
    answer = _post(
        oracle_server, b"\x82" + encode_signed_bundle(good) + encode_signed_bundle(forged)
    )
    assert answer.status_code == 200
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema_rs.validate({**schema, "components": doc["components"]}, answer.json())
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "rejected"]
    receipt = doc["components"]["schemas"]["ReceiptOut"]["properties"]
    assert set(receipt) == {"status", "position", "leaf_hash", "device", "sequence"}
    refused = _post(oracle_server, b"\xff")
    problem = operation["responses"]["400"]["content"]["application/problem+json"]["schema"]
    jsonschema_rs.validate(problem, refused.json())


def test_swagger_ui_and_redoc_are_served_from_the_oracle_itself(oracle_server: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{oracle_server}{page}")
        assert html.status_code == 200, page
        assert not re.search(r"https?://", html.text), f"{page} names another host"
        scripts = re.findall(r"""src=["']([^"']+\.js)["']""", html.text)
        assert scripts, page
        for script in scripts:
            asset = httpx.get(f"{oracle_server}{script}", headers={"Accept-Encoding": "gzip"})
            assert asset.status_code == 200, script
            assert asset.headers["content-encoding"] == "gzip", script


@schemathesis.serializer("application/cbor")
def _cbor_bytes(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """Generated bodies of the binary CBOR schema go out as they are."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    return bytes(cbor2.dumps(value))


@pytest.fixture
def oracle_schema(oracle_server: str) -> Any:
    """The oracle's OpenAPI document as loaded by schemathesis from the running server."""
    return schemathesis.openapi.from_url(oracle_server + "/openapi.json")


oracle_openapi = schemathesis.pytest.from_fixture("oracle_schema")


@oracle_openapi.parametrize()
@hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_the_ingest_api_conforms_to_its_openapi_document(case: Any) -> None:
    # Excluded: "schema-valid data is accepted". Any bytes are a schema-valid body, and
    # bytes that are not signed bundles are rightly a 400 problem.
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])
