"""The oracle's API: `POST /v1/bundles`, `GET /v1/batches/{id}/readings`, status, health."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from oracle.batcher import journal_documents
from oracle.chainview import DeviceDirectory
from oracle.config import OracleSettings
from oracle.exceptions import BundleRejected, ChainUnavailableError, RequestRejected
from oracle.ingest import Journal, Receipt, RejectionCounter
from oracle.journal import open_journal
from oracle.verify import VerifiedBundle, Verifier, split_body
from protocol.batch import READINGS_HEADER, readings_request_signer
from protocol.bundle import SignedBundle
from protocol.crypto import SignatureError
from protocol.deployment import Deployment
from protocol.eip712 import dimo_domain
from protocol.problems import problem_type

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _sqlite_parent(url: str) -> None:
    """Creates the directory of a file-backed SQLite URL, so a fresh machine just runs."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        Path(url[len(prefix) :].split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)


#: Most bundles one group commit journals in one transaction.
MAX_GROUP_BUNDLES = 5_000


class GroupCommitter:
    """Journals the bundles of concurrent requests together (group commit).

    Requests queue their verified bundles; one writer takes what is queued, in arrival order
    and up to `max_group` bundles, and journals it in one transaction (one fsync) in a worker
    thread, then answers each request. A request's bundles are never split across
    transactions, and no receipt is given before its transaction committed.
    """

    def __init__(self, journal: Journal, max_group: int = MAX_GROUP_BUNDLES) -> None:
        """Wraps `journal`; the writer starts with the first request.

        Args:
            journal: The journal to write to.
            max_group: Most bundles one transaction takes (whole requests are never split,
                so a single larger request still goes alone). Bounds the transaction and the
                `IN` lists of its queries (SQLite allows 32,766 parameters) under a backlog.
        """
        self.journal = journal
        self.max_group = max_group
        self._queue: list[tuple[list[VerifiedBundle], int, asyncio.Future[Any]]] = []
        self._writing = False

    async def accept(
        self, verified: list[VerifiedBundle], now_ms: int
    ) -> list[Receipt | BundleRejected]:
        """Journals `verified` (with whatever else is queued) and returns its results."""
        future: asyncio.Future[list[Receipt | BundleRejected]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append((verified, now_ms, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                take, size = 0, 0
                for verified, _, _ in self._queue:
                    if take and size + len(verified) > self.max_group:
                        break
                    take, size = take + 1, size + len(verified)
                group, self._queue = self._queue[:take], self._queue[take:]
                flat = [v for verified, _, _ in group for v in verified]
                try:
                    results = await run_in_threadpool(self.journal.accept, flat, group[0][1])
                except Exception as exc:  # answer every waiting request, then go on
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                at = 0
                for verified, _, future in group:
                    if not future.done():
                        future.set_result(results[at : at + len(verified)])
                    at += len(verified)
        finally:
            self._writing = False


class Ingest:
    """Everything one ingest request needs: verifier, device directory, journal, counters."""

    def __init__(self, settings: OracleSettings) -> None:
        """Loads the deployment and opens the journal (no RPC until the first bundle)."""
        self.settings = settings
        deployment = Deployment.load(settings.deployment)
        anchor = deployment.contract("AttestationAnchor")
        self.domain = dimo_domain(deployment.chain_id, anchor.address)
        self.directory = DeviceDirectory(
            settings.rpc_url, deployment, ttl_s=settings.device_cache_ttl_s
        )
        self.verifier = Verifier(
            self.domain,
            self._lookup,
            max_future_ms=settings.max_future_ms,
            max_age_ms=settings.max_age_ms,
        )
        _sqlite_parent(settings.database_url)
        self.journal = Journal(open_journal(settings.database_url))
        self.rejections = RejectionCounter()
        self.committer = GroupCommitter(self.journal)
        self.started = time.time()

    def _lookup(self, device: str) -> Any:
        info = self.directory.cached(device)
        # `prepare` ran for every device of the request, so this is a cache hit; a device
        # dropped by a concurrent poll meanwhile is read again (an RPC, rarely).
        return info if info is not None else self.directory.lookup(device)

    async def handle(self, body: bytes) -> list[dict[str, Any]]:
        """Verifies and journals every bundle of a request body; one result per bundle.

        Raises:
            RequestRejected: the body as a whole is not acceptable.
            ChainUnavailableError: the device lookups needed the chain and it did not answer.
        """
        items = split_body(body, max_items=self.settings.max_bundles_per_request)
        now_ms = int(time.time() * 1000)
        verifier = self.verifier
        stage: list[SignedBundle | BundleRejected] = []
        for wire in items:
            try:
                stage.append(verifier.decode(wire))
            except BundleRejected as rejection:
                stage.append(rejection)
        wanted = [s.bundle.device for s in stage if isinstance(s, SignedBundle)]
        if wanted and not self.directory.is_fresh(wanted):
            await run_in_threadpool(self.directory.prepare, wanted)
        checked: list[VerifiedBundle | BundleRejected] = []
        for s in stage:
            if isinstance(s, BundleRejected):
                checked.append(s)
                continue
            try:
                checked.append(verifier.check(s, now_ms))
            except BundleRejected as rejection:
                checked.append(rejection)
        good = [c for c in checked if isinstance(c, VerifiedBundle)]
        journaled = await self.committer.accept(good, now_ms) if good else []
        it = iter(journaled)
        results: list[dict[str, Any]] = []
        for c in checked:
            outcome = next(it) if isinstance(c, VerifiedBundle) else c
            if isinstance(outcome, Receipt):
                results.append(outcome.as_json())
            else:
                self.rejections.add(outcome.reason)
                results.append({"status": "rejected", "problem": outcome.problem()})
        return results


async def _read_body(declared: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRejected(
            413,
            "payload-too-large",
            "Payload too large",
            f"the body is {declared} bytes; send at most {limit} bytes per request",
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise RequestRejected(
                413,
                "payload-too-large",
                "Payload too large",
                f"the body exceeds {limit} bytes; send fewer bundles per request",
            )
        parts.append(chunk)
    return b"".join(parts)


def _chain_problem(exc: ChainUnavailableError) -> dict[str, Any]:
    return {
        "type": problem_type("chain-unavailable"),
        "title": "Chain unavailable",
        "status": 503,
        "detail": str(exc),
        "reason": "chain-unavailable",
    }


async def answer_bundles(
    ingest: Ingest, content_type: str | None, declared: str | None, chunks: AsyncIterator[bytes]
) -> tuple[int, bytes, str]:
    """The answer to `POST /v1/bundles`: status, body and media type.

    Args:
        ingest: The oracle's ingest state.
        content_type: The request's Content-Type (None: CBOR assumed).
        declared: The request's Content-Length, if sent.
        chunks: The request body's chunks.
    """
    try:
        if content_type is not None and not content_type.lower().startswith("application/cbor"):
            raise RequestRejected(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                f"Content-Type is {content_type!r}; send application/cbor",
            )
        body = await _read_body(declared, chunks, ingest.settings.max_body_bytes)
        results = await ingest.handle(body)
    except RequestRejected as exc:
        ingest.rejections.add(exc.reason)
        problem = exc.problem()
    except ChainUnavailableError as exc:
        problem = _chain_problem(exc)
    else:
        return 200, _dumps({"results": results}).encode(), "application/json"
    return int(problem["status"]), _dumps(problem).encode(), PROBLEM_JSON


class OracleApp(FastAPI):
    """The ingest API: FastAPI, with `POST /v1/bundles` answered before its routing.

    The ingest route is the oracle's hot path (hundreds of requests a second). Its handler
    reads the raw ASGI messages and answers with `answer_bundles`, skipping FastAPI's
    middleware, routing and request objects, which cost about a quarter of each request.
    The same route is declared on the app too (for the OpenAPI document, and for a mount
    under a prefix), answering through the same `answer_bundles`.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers `POST /v1/bundles` directly; everything else goes to FastAPI."""
        if (
            scope["type"] == "http"
            and scope["path"] == "/v1/bundles"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            await self._post_bundles(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _post_bundles(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type: str | None = None
        declared: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        try:
            status, body, media_type = await answer_bundles(
                self.state.ingest, content_type, declared, chunks()
            )
        except ClientDisconnect:
            return  # nobody to answer; nothing was journaled for an unread body
        except Exception:
            log.exception("POST /v1/bundles failed")
            status, media_type = 500, PROBLEM_JSON
            body = _dumps(
                {
                    "type": problem_type("internal-error"),
                    "title": "Internal error",
                    "status": 500,
                    "detail": "the oracle failed on this request; it is logged",
                    "reason": "internal-error",
                }
            ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", media_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _readings_problem(status: int, reason: str, detail: str) -> tuple[int, dict[str, Any]]:
    titles = {401: "Unauthenticated", 403: "Not an authorised indexer", 404: "Unknown batch"}
    return status, {
        "type": problem_type(reason),
        "title": titles[status],
        "status": status,
        "detail": detail,
        "reason": reason,
    }


def readings_answer(
    ingest: Ingest, batch_id: int, header: str | None, now_ms: int | None = None
) -> tuple[int, bytes | dict[str, Any]]:
    """Answer an indexer's request for a batch's readings document.

    The caller proves who it is with an EIP-712 `ReadBatch(batchId, issuedAt)` signature in
    the DIMO domain, recent within `readings_request_ttl_ms`; only addresses listed in
    `indexers` get the document. The signature is checked before the batch is looked up, so
    an outsider learns nothing about which batches exist.

    Returns:
        `(200, document bytes)` or `(status, problem details)`.
    """
    settings = ingest.settings
    if not header:
        return _readings_problem(401, "unauthenticated", f"send the {READINGS_HEADER} header")
    try:
        signer, issued_ms = readings_request_signer(ingest.domain, header, batch_id)
    except SignatureError as exc:
        return _readings_problem(401, "unauthenticated", str(exc))
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - issued_ms) > settings.readings_request_ttl_ms:
        return _readings_problem(
            401, "unauthenticated", "the request's issuedAt is stale; sign a fresh request"
        )
    allowed = {a.lower() for a in settings.indexers}
    if signer.lower() not in allowed:
        return _readings_problem(
            403,
            "not-an-authorised-indexer",
            f"{signer} is not among this oracle's indexers (DIMO_ORACLE_INDEXERS)",
        )
    try:
        _public, readings, _tree = journal_documents(ingest.journal.engine, batch_id)
    except LookupError:
        return _readings_problem(404, "unknown-batch", f"this oracle has no batch {batch_id}")
    return 200, readings


def create_app(settings: OracleSettings | None = None) -> FastAPI:
    """Builds the oracle's ingest API.

    Args:
        settings: The oracle's settings (default: read from `DIMO_ORACLE_*`).

    Returns:
        The FastAPI app; run it with uvicorn (`oracle.api:app_from_env` as a factory).
    """
    settings = settings or OracleSettings()
    ingest = Ingest(settings)
    app = OracleApp(
        title="DIMO oracle",
        version="1",
        summary="Accepts signed telemetry bundles, journals them and anchors them on-chain.",
    )
    app.state.ingest = ingest

    @app.post(
        "/v1/bundles",
        tags=["ingest"],
        summary="Submit signed bundles (CBOR: one wire-form bundle or an array of them)",
        responses={
            200: {"description": "One result per bundle, in order"},
            400: {"description": "Not CBOR or not bundles (problem details)"},
            413: {"description": "Body or array too large (problem details)"},
        },
    )
    async def post_bundles(request: Request) -> Response:
        status, body, media_type = await answer_bundles(
            ingest,
            request.headers.get("content-type"),
            request.headers.get("content-length"),
            request.stream(),
        )
        return Response(body, status_code=status, media_type=media_type)

    @app.get(
        "/v1/batches/{batch_id}/readings",
        tags=["indexers"],
        summary="A batch's readings document (wire-form bundles), for authorised indexers",
        responses={
            200: {"description": "The `dimo-batch-v1` document; check it against the root"},
            401: {"description": "No valid `X-DIMO-Indexer` signature (problem details)"},
            403: {"description": "The signer is not an authorised indexer (problem details)"},
            404: {"description": "No such batch in this oracle's journal (problem details)"},
        },
    )
    def batch_readings(batch_id: int, request: Request) -> Response:
        status, body = readings_answer(ingest, batch_id, request.headers.get(READINGS_HEADER))
        if status != 200:
            return JSONResponse(body, status_code=status, media_type="application/problem+json")
        assert isinstance(body, bytes)
        return Response(body, media_type="application/json")

    @app.get("/v1/status", tags=["status"], summary="Journal depth, batches and rejections")
    def status() -> dict[str, Any]:
        out = ingest.journal.status()
        out["rejections_by_reason"] = ingest.rejections.snapshot()
        return out

    @app.get("/healthz", tags=["status"], summary="Liveness")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "uptime_s": round(time.time() - ingest.started, 3)})

    return app


def app_from_env() -> FastAPI:
    """The app with settings from the environment (`uvicorn --factory oracle.api:app_from_env`)."""
    return create_app(OracleSettings())


def serve(settings: OracleSettings | None = None) -> None:
    """Runs the ingest API with uvicorn (uvloop and httptools when installed) until stopped."""
    import importlib.util

    import uvicorn

    settings = settings or OracleSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
    )
