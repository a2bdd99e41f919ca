"""Batch content, oracle signers that check it before signing, and the quorum that gathers them.

The batch content stored by CID is the public document (`protocol.batch`, `dimo-batch-v2`),
canonical JSON (keys sorted, no spaces, ASCII)::

    {"bundles": [{"schema": 2, "signature": "0x..", "signals": [[name, "0x<commitment>"], ...]},
                 ...],                       # journal order; no reading value
     "count": n, "format": "dimo-batch-v2", "id": batch id,
     "root": "0x..", "tree": <OZ StandardMerkleTree dump, values in bundle order>,
     "windowEnd": ms, "windowStart": ms}

Its CID is what the batch header carries; anyone can fetch it, check every device signature
and commitment, rebuild the tree and compare the root with the one anchored on-chain. Signers
also accept the older `dimo-batch-v1` document (wire-form bundles).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from oracle.anchoring import BatchHeader, batch_digest
from oracle.exceptions import OracleError
from protocol.batch import (
    CONTENT_FORMAT,
    BatchContent,
    InvalidBatchContent,
    PublicBatch,
    build_content,
    leaf_of_row,
    parse_any,
    parse_content,
    wire_form,
)
from protocol.blobstore import BlobStore, BlobStoreError
from protocol.cid import InvalidCid
from protocol.cid import verify as cid_matches
from protocol.crypto import (
    SignatureError,
    checksum_address,
    private_key_to_address,
    recover_address,
    sign_digest,
)
from protocol.eip712 import Eip712Domain
from protocol.problems import problem_type

__all__ = [
    "CONTENT_FORMAT",
    "BatchContent",
    "BatchRefused",
    "OracleSigner",
    "Quorum",
    "QuorumNotReached",
    "RemoteSigner",
    "SignerUnavailable",
    "build_content",
    "create_signer_app",
    "leaf_of_row",
    "parse_content",
    "problem_json",
    "wire_form",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class BatchRefused(OracleError, ValueError):
    """A signer refuses a batch whose content does not rebuild the header it is asked to sign."""

    def __init__(self, batch_id: int, reason: str) -> None:
        self.batch_id = batch_id
        self.reason = reason
        super().__init__(
            f"refusing to sign batch {batch_id}: {reason}; the batcher must store the content "
            "it built and ask for the header of that very content"
        )


class SignerUnavailable(OracleError, ConnectionError):
    """A remote signer did not answer or answered with something other than a signature."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"oracle signer {url} is unavailable: {reason}; check that it runs")


class QuorumNotReached(OracleError, RuntimeError):
    """Fewer than the threshold of signers signed a batch."""

    def __init__(self, batch_id: int, got: int, threshold: int, problems: Sequence[str]) -> None:
        self.batch_id = batch_id
        self.got = got
        self.threshold = threshold
        self.problems = list(problems)
        super().__init__(
            f"batch {batch_id}: {got} of the {threshold} oracle signatures needed; "
            + "; ".join(problems)
            + ". Start the missing signers (`dimo oracle signer`); the batch waits, signed "
            "again on the next attempt"
        )


# --------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Signers
# --------------------------------------------------------------------------------------------


class OracleSigner:
    """One oracle key, which signs a batch header only after rebuilding it from the content."""

    def __init__(self, private_key: str | bytes, domain: Eip712Domain) -> None:
        """Hold a key.

        Args:
            private_key: The oracle's secp256k1 key (hex or 32 bytes).
            domain: The DIMO domain of the AttestationAnchor (bundles and batches share it).
        """
        self._key = private_key
        self.domain = domain
        self.address = private_key_to_address(private_key)

    def __repr__(self) -> str:
        return f"OracleSigner({self.address})"

    def check(self, header: BatchHeader, content: bytes) -> BatchContent | PublicBatch:
        """Check that `content` is the batch `header` describes.

        Raises:
            BatchRefused: the CID, root, count, windows or id differ, or a bundle is invalid.
        """
        try:
            if not cid_matches(header.cid, content):
                raise BatchRefused(header.id, f"the content is not what CID {header.cid} names")
        except InvalidCid as exc:
            raise BatchRefused(header.id, str(exc)) from None
        try:
            parsed = parse_any(content, self.domain, header.id)
        except InvalidBatchContent as exc:
            raise BatchRefused(exc.batch_id, exc.reason) from None
        checks = (
            ("id", parsed.batch_id, header.id),
            ("root", parsed.tree.root, header.root),
            ("count", parsed.count, header.count),
            ("windowStart", parsed.window_start, header.window_start),
            ("windowEnd", parsed.window_end, header.window_end),
        )
        for name, actual, claimed in checks:
            if actual != claimed:
                shown = [
                    "0x" + v.hex() if isinstance(v, bytes) else str(v) for v in (actual, claimed)
                ]
                raise BatchRefused(
                    header.id,
                    f"the content rebuilds {name} {shown[0]}, but the header says {shown[1]}",
                )
        return parsed

    def sign_batch(self, header: BatchHeader, content: bytes) -> bytes:
        """Sign the batch's EIP-712 `AnchorBatch` digest after checking the content.

        Args:
            header: The batch header to sign.
            content: The batch document (bytes the CID names).

        Returns:
            65 bytes r || s || v.

        Raises:
            BatchRefused: the content does not rebuild the header.
        """
        self.check(header, content)
        return sign_digest(batch_digest(header, self.domain), self._key)

    def sign_checked(self, digest: bytes) -> bytes:
        """Sign a 32-byte EIP-712 digest that a checker has already rebuilt and approved
        (`oracle.certify`): the caller answers for the check, this method only signs.

        Returns:
            65 bytes r || s || v.
        """
        return sign_digest(digest, self._key)


class RemoteSigner:
    """A signer service reached over HTTP (`dimo oracle signer`)."""

    def __init__(self, url: str, timeout_s: float = 120.0) -> None:
        """Point at a signer service's base URL, through one kept-alive client (a new client
        per batch would build a TLS context each time, about 0.1 s of CPU)."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.Client(timeout=timeout_s)

    def __repr__(self) -> str:
        return f"RemoteSigner({self.url})"

    def sign_batch(self, header: BatchHeader, content: bytes) -> bytes:
        """Ask the service to sign; it fetches the content itself by CID.

        Raises:
            BatchRefused: the service refused the batch (HTTP 422).
            SignerUnavailable: no answer, or an answer that is not a signature.
        """
        del content  # the service checks the content it fetches itself
        try:
            resp = self._client.post(self.url + "/v1/sign", json={"batch": header.as_json()})
        except httpx.HTTPError as exc:
            raise SignerUnavailable(self.url, str(exc) or type(exc).__name__) from None
        if resp.status_code == 422:
            detail = resp.json().get("detail", resp.text)
            raise BatchRefused(header.id, f"remote signer {self.url}: {detail}")
        if resp.status_code != 200:
            raise SignerUnavailable(self.url, f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return bytes.fromhex(str(resp.json()["signature"]).removeprefix("0x"))
        except (KeyError, ValueError) as exc:
            raise SignerUnavailable(self.url, f"no signature in the answer ({exc})") from None


class Quorum:
    """Gathers at least `threshold` signatures of the oracle set, sorted by signer address."""

    def __init__(
        self,
        signers: Sequence[OracleSigner | RemoteSigner],
        oracle_set: Sequence[str],
        threshold: int,
        domain: Eip712Domain,
    ) -> None:
        """Set up a quorum.

        Args:
            signers: Local and remote signers to ask.
            oracle_set: The addresses the contract accepts (`oracles()`).
            threshold: How many signatures the contract needs.
            domain: The DIMO domain of the AttestationAnchor.
        """
        self.signers = list(signers)
        self.oracle_set = {checksum_address(a) for a in oracle_set}
        self.threshold = threshold
        self.domain = domain

    def collect(self, header: BatchHeader, content: bytes | Callable[[], bytes]) -> bytes:
        """Ask signers until `threshold` valid signatures of oracle-set members are in.

        `content` is the batch document, or a function that loads it: then it is loaded once,
        and only if a local signer is asked (a remote one fetches the content itself).

        Each signer re-checks the whole batch before it signs, so only as many are asked at
        once as signatures are still missing: `threshold` first (starting at a signer that
        rotates with the batch id, to share the work), then, for each one that is down,
        refuses or returns a bad signature (logged and skipped), another.

        Returns:
            Exactly `threshold` signatures, 65 bytes each, concatenated in ascending signer
            address order (what `anchor` requires; extra signatures would only cost gas).

        Raises:
            QuorumNotReached: fewer than `threshold` valid signatures from all signers.
        """
        digest = batch_digest(header, self.domain)
        got: dict[int, bytes] = {}
        problems: list[str] = []

        loaded: list[bytes] = [content] if isinstance(content, bytes) else []
        loading = threading.Lock()

        def document() -> bytes:
            with loading:
                if not loaded:
                    assert callable(content)
                    loaded.append(content())
                return loaded[0]

        def ask(signer: OracleSigner | RemoteSigner) -> bytes:
            if isinstance(signer, RemoteSigner):
                return signer.sign_batch(header, b"")
            return signer.sign_batch(header, document())

        start = header.id % len(self.signers) if self.signers else 0
        waiting = [*self.signers[start:], *self.signers[:start]]
        with ThreadPoolExecutor(max_workers=max(1, len(self.signers))) as pool:
            while waiting and len(got) < self.threshold:
                wave, waiting = (
                    waiting[: self.threshold - len(got)],
                    waiting[self.threshold - len(got) :],
                )
                futures = {pool.submit(ask, s): s for s in wave}
                for fut in as_completed(futures):
                    signer = futures[fut]
                    try:
                        sig = fut.result()
                        who = recover_address(digest, sig)
                    except (OracleError, SignatureError, ValueError) as exc:
                        problems.append(f"{signer!r}: {exc}")
                        log.warning("signer %r did not sign batch %s: %s", signer, header.id, exc)
                        continue
                    if who not in self.oracle_set or int(who, 16) in got:
                        problems.append(f"{signer!r} signed as {who}, not another oracle")
                        continue
                    got[int(who, 16)] = sig
        if len(got) < self.threshold:
            raise QuorumNotReached(header.id, len(got), self.threshold, problems)
        chosen = sorted(got)[: self.threshold]
        return b"".join(got[a] for a in chosen)


# --------------------------------------------------------------------------------------------
# Signer service
# --------------------------------------------------------------------------------------------


def problem_json(status: int, reason: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response of the oracle's signer services (`reason` is its slug)."""
    return JSONResponse(
        {
            "type": problem_type(reason),
            "title": reason.replace("-", " ").capitalize(),
            "status": status,
            "detail": detail,
            "reason": reason,
            **extra,
        },
        status_code=status,
        media_type="application/problem+json",
    )


class SignRequest(BaseModel):
    """Body of `POST /v1/sign`: the header to sign (id, root, cid, count, windowStart/End)."""

    batch: dict[str, Any]


def create_signer_app(signer: OracleSigner, store: BlobStore) -> FastAPI:
    """The HTTP signer service: `POST /v1/sign {"batch": header}` -> `{signer, signature}`.

    The service fetches the content from `store` by the header's CID and checks it itself;
    a refusal is a 422 RFC 9457 problem with reason `batch-refused`, a missing blob a 404.
    """
    app = FastAPI(title="DIMO oracle signer", version="1")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "signer": signer.address}

    @app.post("/v1/sign", response_model=None)
    def sign(body: SignRequest) -> dict[str, str] | JSONResponse:
        try:
            header = BatchHeader.from_json(body.batch)
        except (KeyError, TypeError, ValueError) as exc:
            return problem_json(400, "malformed-request", f"expected {{batch: header}}: {exc}")
        try:
            content = store.get(header.cid)
        except InvalidCid as exc:
            return problem_json(422, "batch-refused", str(exc))
        except BlobStoreError as exc:
            return problem_json(404, "content-not-found", str(exc))
        try:
            sig = signer.sign_batch(header, content)
        except BatchRefused as exc:
            return problem_json(422, "batch-refused", str(exc))
        return {"signer": signer.address, "signature": "0x" + sig.hex()}

    return app
