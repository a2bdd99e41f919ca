"""The oracle's API: `POST /v1/bundles`, `GET /v1/batches/{id}/readings`, status, health."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final, Literal

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from oracle.batcher import journal_documents
from oracle.config import OracleSettings
from oracle.exceptions import ChainUnavailableError, RequestRejected
from oracle.ingest import Ingest
from protocol.apidocs import serve_docs
from protocol.batch import READINGS_HEADER, readings_request_signer
from protocol.crypto import SignatureError
from protocol.problems import problem_details, problem_type

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_dumps = json.JSONEncoder(separators=(",", ":")).encode


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


class ProblemOut(BaseModel):
    """RFC 9457 problem details, with the oracle's stable reason code."""

    type: str = Field(description="Stable URI of the problem type")
    title: str = Field(description="Short summary of the problem type")
    status: int = Field(description="HTTP status of the problem")
    detail: str = Field(description="What was wrong with this request or bundle, and the fix")
    reason: str = Field(description="Reason code, e.g. bad-signature, replayed-sequence")


class ReceiptOut(BaseModel):
    """The receipt of a journaled bundle: the bridge may drop it from its queue."""

    status: Literal["accepted", "duplicate"] = Field(
        description="accepted: journaled now; duplicate: the identical bundle was journaled "
        "before (then `position` is the original one)"
    )
    position: int = Field(description="The bundle's position in the oracle's journal")
    leaf_hash: str = Field(description="Its Merkle leaf hash, 0x hex (32 bytes)")
    device: str = Field(description="The signing device (EIP-55)")
    sequence: int = Field(description="The device's sequence number of the bundle")


class RejectedOut(BaseModel):
    """A bundle the oracle refused; nothing of it was journaled."""

    status: Literal["rejected"] = Field(description="Always rejected")
    problem: ProblemOut = Field(description="Why, as problem details")


class BundleResultsOut(BaseModel):
    """One result per bundle of the request, in the request's order."""

    results: list[ReceiptOut | RejectedOut] = Field(description="A receipt or a rejection each")


#: The request body of `POST /v1/bundles` (the route reads raw bytes, so it is declared here).
BUNDLES_REQUEST_BODY: Final[dict[str, Any]] = {
    "required": True,
    "description": (
        "Canonical CBOR: one wire-form signed bundle, the map "
        '`{"bundle": bstr (the bundle\'s canonical CBOR encoding), "signature": bstr (65 '
        "bytes, the device's EIP-712 signature)}`, or a CBOR array of such maps (at most "
        "`DIMO_ORACLE_MAX_BUNDLES_PER_REQUEST`). protocol/bundle.py `encode_signed_bundle` "
        "writes it; the device bridge sends arrays."
    ),
    "content": {
        "application/cbor": {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "The CBOR bytes of a signed bundle or an array of them",
            }
        }
    },
}


def _problem(description: str) -> dict[str, Any]:
    """An OpenAPI response of problem details (application/problem+json)."""
    schema = ProblemOut.model_json_schema()
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


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
    return status, problem_details(reason, titles[status], status, detail, reason=reason)


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
        _, readings, _tree = journal_documents(ingest.journal.engine, batch_id, public=False)
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
        docs_url=None,
        redoc_url=None,
    )
    serve_docs(app)  # Swagger UI at /docs and ReDoc at /redoc, from local assets
    app.state.ingest = ingest

    @app.post(
        "/v1/bundles",
        tags=["ingest"],
        summary="Submit signed bundles (CBOR: one wire-form bundle or an array of them)",
        description=(
            "Verifies each bundle (device signature in the oracle's EIP-712 domain, device "
            "registered and paired on-chain, new sequence, plausible values) and journals the "
            "good ones before answering. The answer holds one result per bundle, in order: a "
            "receipt (the bridge may drop the bundle) or a rejection with its problem details. "
            "A request refused as a whole answers with problem details instead."
        ),
        openapi_extra={"requestBody": BUNDLES_REQUEST_BODY},
        response_model=BundleResultsOut,
        responses={
            200: {"description": "One result per bundle, in order"},
            400: _problem("Not CBOR, or not bundles"),
            413: _problem("Body or array too large"),
            415: _problem("Content-Type is not application/cbor"),
            503: _problem("The chain did not answer the device lookups; send again later"),
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
    def batch_readings(
        batch_id: Annotated[int, Path(ge=0, le=(1 << 63) - 1, description="The batch id")],
        request: Request,
    ) -> Response:
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
