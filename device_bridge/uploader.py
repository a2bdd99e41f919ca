"""Uploads queued bundles to the oracle's `POST /v1/bundles` and applies its receipts."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from device_bridge.config import BridgeSettings
from device_bridge.exceptions import IngestContractError, UploadError
from device_bridge.queue import BundleQueue, QueuedBundle
from protocol.problems import problem_type

__all__ = ["UploadReport", "Uploader", "cbor_array"]

log = logging.getLogger(__name__)

_CBOR = "application/cbor"
_JOURNALED = ("accepted", "duplicate")


def cbor_array(items: Sequence[bytes]) -> bytes:
    """Return a CBOR array (definite length) of already encoded CBOR items."""
    n = len(items)
    if n < 24:
        head = bytes((0x80 | n,))
    elif n < 0x100:
        head = bytes((0x98, n))
    elif n < 0x10000:
        head = b"\x99" + n.to_bytes(2, "big")
    else:
        head = b"\x9a" + n.to_bytes(4, "big")
    return head + b"".join(items)


@dataclass
class UploadReport:
    """What uploads achieved.

    Attributes:
        requests: POSTs answered with 200.
        accepted: bundles journaled for the first time.
        duplicate: bundles the oracle had journaled before (an earlier receipt was lost).
        rejected: bundles moved to the dead-letter table.
        failures: attempts that failed (connection, 5xx, contract breaks), retried later.
    """

    requests: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    failures: int = 0

    def add(self, other: UploadReport) -> None:
        """Add another report's counts to this one."""
        self.requests += other.requests
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.rejected += other.rejected
        self.failures += other.failures


class Uploader:
    """Sends the queue's oldest bundles in arrays, retrying with exponential backoff + jitter."""

    def __init__(
        self,
        queue: BundleQueue,
        oracle_url: str,
        *,
        batch_size: int = 100,
        timeout_s: float = 30.0,
        retry_base_s: float = 0.5,
        retry_max_s: float = 60.0,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """Bind a queue to an oracle.

        Args:
            queue: the bundle queue.
            oracle_url: the oracle's base URL (`/v1/bundles` is appended).
            batch_size: bundles per request (at most 1000 by the ingest contract).
            timeout_s: timeout of one request.
            retry_base_s: first backoff delay; doubles per consecutive failure.
            retry_max_s: longest backoff delay.
            client: an httpx client to use (one is made if None).
            rng: randomness of the jitter.
            sleep: how to wait between retries in `drain` (`time.sleep` by default).
        """
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be within 1..1000 (the ingest contract's limit)")
        self.queue = queue
        self.url = oracle_url.rstrip("/") + "/v1/bundles"
        self.batch_size = batch_size
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.client = client or httpx.Client(timeout=timeout_s)
        self._rng = rng or random.Random()
        self._sleep = sleep or time.sleep
        self.report = UploadReport()
        self.failures_in_row = 0
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_settings(cls, queue: BundleQueue, settings: BridgeSettings) -> Uploader:
        """Build from the bridge settings."""
        return cls(
            queue,
            settings.oracle_url,
            batch_size=settings.upload_batch_size,
            timeout_s=settings.upload_timeout_s,
            retry_base_s=settings.retry_base_s,
            retry_max_s=settings.retry_max_s,
        )

    def close(self) -> None:
        """Stop the background thread (if any) and close the HTTP client."""
        self.stop()
        self.client.close()

    # -- one request -----------------------------------------------------------------------

    def backoff_delay(self, failures: int) -> float:
        """Delay before retry number `failures` (1-based): capped exponential, equal jitter."""
        cap = min(self.retry_max_s, self.retry_base_s * 2 ** max(failures - 1, 0))
        return float(cap / 2 + self._rng.uniform(0, cap / 2))

    def _post(self, rows: Sequence[QueuedBundle]) -> httpx.Response:
        try:
            return self.client.post(
                self.url,
                content=cbor_array([r.wire for r in rows]),
                headers={"Content-Type": _CBOR, "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise UploadError(self.url, f"{type(exc).__name__}: {exc}") from None

    def send(self, rows: Sequence[QueuedBundle]) -> UploadReport:
        """POST these bundles and apply the receipts to the queue.

        A whole-request 400/413 splits the array in halves until the offending bundle is
        alone; a lone bundle the oracle refuses that way is dead-lettered with the problem.

        Raises:
            UploadError: connection error, timeout, 5xx or an unexpected status; nothing
                was deleted for the rows of that request.
            IngestContractError: a 200 answer that breaks the contract.
        """
        report = UploadReport()
        if not rows:
            return report
        response = self._post(rows)
        status = response.status_code
        if status == 200:
            report.add(self._apply(rows, response))
            return report
        if status in (400, 413):
            problem = _problem(response)
            if len(rows) > 1:
                half = len(rows) // 2
                report.add(self.send(rows[:half]))
                report.add(self.send(rows[half:]))
                return report
            self.queue.dead_letter(rows[0].id, problem)
            log.warning(
                "bundle rejected whole-request",
                extra={"sequence": rows[0].sequence, "problem": problem},
            )
            report.rejected += 1
            return report
        detail = response.text[:200]
        raise UploadError(self.url, f"HTTP {status}: {detail}", retryable=status >= 500)

    def _apply(self, rows: Sequence[QueuedBundle], response: httpx.Response) -> UploadReport:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise IngestContractError(self.url, "the body is not JSON") from None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(rows):
            count = len(results) if isinstance(results, list) else "no"
            raise IngestContractError(self.url, f"{count} results for {len(rows)} bundles")
        for row, item in zip(rows, results, strict=True):
            _check_item(self.url, row, item)
        report = UploadReport(requests=1)
        for row, item in zip(rows, results, strict=True):
            status = item["status"]
            if status in _JOURNALED:
                self.queue.acknowledge(row.id, status)
                if status == "accepted":
                    report.accepted += 1
                else:
                    report.duplicate += 1
            else:
                self.queue.dead_letter(row.id, item["problem"])
                log.warning(
                    "bundle rejected",
                    extra={"sequence": row.sequence, "problem": item["problem"]},
                )
                report.rejected += 1
        return report

    def upload_once(self) -> UploadReport:
        """Send the oldest `batch_size` bundles once (no retry).

        Raises:
            UploadError: see `send`; the attempt is recorded on the rows.
        """
        rows = self.queue.peek(self.batch_size)
        try:
            report = self.send(rows)
        except UploadError as exc:
            self.queue.record_attempt([r.id for r in rows], exc.reason)
            raise
        return report

    # -- loops -----------------------------------------------------------------------------

    def _step(self) -> float:
        """One upload with bookkeeping; returns how long to wait before the next one."""
        try:
            report = self.upload_once()
        except UploadError as exc:
            self.failures_in_row += 1
            self.report.failures += 1
            self.last_error = exc.reason
            delay = self.backoff_delay(self.failures_in_row)
            log.warning("upload failed, retrying in %.2fs: %s", delay, exc.reason)
            return delay
        self.failures_in_row = 0
        self.last_error = None
        self.report.add(report)
        return 0.0

    def drain(self, *, timeout_s: float | None = None) -> bool:
        """Upload until the queue is empty, backing off on failures.

        Args:
            timeout_s: give up after this long (None = never).

        Returns:
            Whether the queue is empty.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.queue.depth():
            delay = self._step()
            if deadline is not None and time.monotonic() + delay > deadline:
                break
            if delay:
                self._sleep(delay)
        return self.queue.depth() == 0

    def run(self) -> None:
        """Upload in the calling thread until `stop()`: wait for bundles, send, back off."""
        while not self._stop.is_set():
            if not self.queue.wait_for_bundles(0.5):
                continue
            delay = self._step()
            if delay:
                self._stop.wait(delay)

    def start(self) -> threading.Thread:
        """Run `run()` in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="bridge-uploader", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the background loop to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop.clear()


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        return body
    reason = "payload-too-large" if response.status_code == 413 else "malformed-payload"
    return {
        "type": problem_type(reason),
        "title": response.reason_phrase,
        "status": response.status_code,
        "detail": response.text[:500],
        "reason": reason,
    }


def _check_item(url: str, row: QueuedBundle, item: object) -> None:
    if not isinstance(item, dict):
        raise IngestContractError(url, f"result for sequence {row.sequence} is not an object")
    status = item.get("status")
    if status in _JOURNALED:
        leaf = item.get("leaf_hash")
        if not isinstance(leaf, str) or leaf.lower() != "0x" + row.leaf_hash.hex():
            raise IngestContractError(
                url, f"receipt leaf_hash {leaf!r} is not sequence {row.sequence}'s"
            )
        if item.get("sequence") != row.sequence:
            raise IngestContractError(url, f"receipt for sequence {item.get('sequence')!r}")
    elif status == "rejected":
        if not isinstance(item.get("problem"), dict):
            raise IngestContractError(url, "a rejected result carries no problem object")
    else:
        raise IngestContractError(url, f"unknown status {status!r}")
