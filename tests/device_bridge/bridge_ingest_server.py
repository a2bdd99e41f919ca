"""A small real HTTP server following the oracle's ingest contract, for the bridge's tests.

The real oracle is written separately and the bridge may not import it; this server decodes
with cbor2 (independent of the bridge's encoder), verifies with `protocol.bundle`, journals
leaf hashes, and can be told to answer 503s, reject sequences or hold a request.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cbor2
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    BundleError,
    SignedBundle,
    bundle_leaf,
    decode_signed_bundle,
    verify_bundle,
)
from protocol.crypto import SignatureError
from protocol.eip712 import Eip712Domain
from protocol.merkle import standard_leaf_hash

MAX_BODY = 8 * 1024 * 1024
MAX_ITEMS = 1000


def _problem(reason: str, status: int, detail: str) -> dict[str, Any]:
    return {
        "type": f"https://dimo.local/problems/{reason}",
        "title": reason.replace("-", " "),
        "status": status,
        "detail": detail,
        "reason": reason,
    }


@dataclass
class IngestState:
    """What the server journaled and how it misbehaves on purpose."""

    domain: Eip712Domain
    journal: dict[str, dict[str, Any]] = field(default_factory=dict)
    bundles: dict[str, SignedBundle] = field(default_factory=dict)
    last_sequence: dict[str, int] = field(default_factory=dict)
    posts: int = 0
    bundles_received: int = 0
    fail_next: int = 0  # answer this many requests with 503 before journaling anything
    reject: dict[int, str] = field(default_factory=dict)  # sequence -> reason
    whole_request_reject: set[int] = field(default_factory=set)  # sequences -> 400 whole body
    after_journal: Callable[[int], None] | None = None  # called with the post number
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receipt(self, signed: SignedBundle, status: str) -> dict[str, Any]:
        leaf = "0x" + standard_leaf_hash(BUNDLE_LEAF_ENCODING, bundle_leaf(signed)).hex()
        first = self.journal.get(leaf)
        if first is not None:
            return {**first, "status": "duplicate"}
        entry = {
            "status": status,
            "position": len(self.journal) + 1,
            "leaf_hash": leaf,
            "device": signed.bundle.device,
            "sequence": signed.bundle.sequence,
        }
        self.journal[leaf] = entry
        self.bundles[leaf] = signed
        self.last_sequence[signed.bundle.device] = signed.bundle.sequence
        return entry

    def ingest(self, body: bytes) -> tuple[int, Any]:
        with self.lock:
            self.posts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, _problem("unavailable", 503, "try again")
            if len(body) > MAX_BODY:
                return 413, _problem("payload-too-large", 413, f"{len(body)} bytes")
            try:
                doc = cbor2.loads(body)
            except Exception as exc:
                return 400, _problem("malformed-payload", 400, f"not CBOR: {exc}")
            items = doc if isinstance(doc, list) else [doc]
            if len(items) > MAX_ITEMS:
                return 413, _problem("payload-too-large", 413, f"{len(items)} bundles")
            decoded: list[SignedBundle] = []
            for item in items:
                try:
                    signed = decode_signed_bundle(cbor2.dumps(item, canonical=True))
                except (BundleError, SignatureError) as exc:
                    return 400, _problem("malformed-payload", 400, str(exc))
                if signed.bundle.sequence in self.whole_request_reject:
                    return 400, _problem("malformed-payload", 400, "refused on purpose")
                decoded.append(signed)
            self.bundles_received += len(decoded)
            results = [self._one(signed) for signed in decoded]
            post = self.posts
        if self.after_journal is not None:
            self.after_journal(post)
        return 200, {"results": results}

    def _one(self, signed: SignedBundle) -> dict[str, Any]:
        bundle = signed.bundle
        try:
            verify_bundle(signed, self.domain)
        except SignatureError as exc:
            return {"status": "rejected", "problem": _problem("bad-signature", 422, str(exc))}
        leaf = "0x" + standard_leaf_hash(BUNDLE_LEAF_ENCODING, bundle_leaf(signed)).hex()
        if leaf in self.journal:
            return self.receipt(signed, "duplicate")
        reason = self.reject.get(bundle.sequence)
        if reason is not None:
            return {"status": "rejected", "problem": _problem(reason, 422, "rejected on purpose")}
        if bundle.sequence <= self.last_sequence.get(bundle.device, 0):
            return {
                "status": "rejected",
                "problem": _problem("replayed-sequence", 409, f"sequence {bundle.sequence}"),
            }
        return self.receipt(signed, "accepted")


def make_app(state: IngestState) -> FastAPI:
    """The ingest app over a state."""
    app = FastAPI()

    @app.post("/v1/bundles")
    async def post_bundles(request: Request) -> JSONResponse:
        if request.headers.get("content-type") != "application/cbor":
            problem = _problem("unsupported-media-type", 415, "send application/cbor")
            return JSONResponse(problem, 415, media_type="application/problem+json")
        body = await request.body()
        status, payload = await run_in_threadpool(state.ingest, body)
        media = "application/json" if status == 200 else "application/problem+json"
        return JSONResponse(payload, status, media_type=media)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class IngestServer:
    """The app served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, state: IngestState, app: FastAPI | None = None) -> None:
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app or make_app(state), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> IngestServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("ingest test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
