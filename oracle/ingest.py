"""Ingest of bundle requests: verify each bundle, then journal it by group commit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from oracle.chainview import DeviceDirectory
from oracle.config import OracleSettings
from oracle.exceptions import BundleRejected
from oracle.journal import Journal, Receipt, RejectionCounter
from oracle.tables import open_journal
from oracle.verify import VerifiedBundle, Verifier, split_body
from protocol.bundle import SignedBundle
from protocol.deployment import Deployment
from protocol.eip712 import dimo_domain

__all__ = ["MAX_GROUP_BUNDLES", "GroupCommitter", "Ingest"]


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
