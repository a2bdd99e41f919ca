"""The delivery worker: claims due deliveries from the outbox, checks the owner's rights and
the target again, signs each (Standard Webhooks) and POSTs it, at most `per_target_concurrency`
at once per target and `max_in_flight` in all, and records the outcomes.

An attempt succeeds on a 2xx answer. Anything else (an error status, a redirect, which is
never followed, a timeout, an answer over `max_response_bytes`, a refused address) schedules
a retry with exponential backoff and full jitter, until the retry window has passed; then the
delivery is dead-lettered for the owner to list and replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable

import aiohttp
import anyio
from sqlalchemy import Engine

from protocol.privileges import Privilege
from triggers.config import TriggersSettings
from triggers.exceptions import RightsUnavailable, TargetRefused
from triggers.outbox import Claimed, Outcome, backoff_ms, claim, record
from triggers.rights import IndexerRights
from triggers.signing import signed_headers
from triggers.tables import DeliveryState
from triggers.targets import TargetPolicy, check_target

__all__ = ["Deliverer"]

log = logging.getLogger(__name__)
#: Seconds a target's address check is reused.
TARGET_CHECK_TTL_S = 10.0


class Deliverer:
    """Sends the outbox's deliveries."""

    def __init__(
        self,
        store: Engine,
        rights: IndexerRights,
        settings: TriggersSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.rights = rights
        self.settings = settings
        self.policy = TargetPolicy(settings.network == "live", settings.allow_loopback)
        self.clock = clock
        self.rng = rng or random.Random()
        self._targets: dict[str, tuple[float, str | None]] = {}
        self._slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.per_target_concurrency)
        )

    # ---------------------------------------------------------------------------------------

    def _target_refusal(self, url: str) -> str | None:
        now = time.monotonic()
        hit = self._targets.get(url)
        if hit is not None and now - hit[0] < TARGET_CHECK_TTL_S:
            return hit[1]
        try:
            check_target(url, self.policy)
            why = None
        except TargetRefused as exc:
            why = exc.detail
        self._targets[url] = (now, why)
        return why

    def _claim(self) -> tuple[list[Claimed], list[Outcome]]:
        """Claims due deliveries and withholds those whose owner's rights have ended."""
        now_ms = int(self.clock() * 1000)
        claimed = claim(
            self.store, now_ms, self.settings.claim_batch, int(self.settings.lease_s * 1000)
        )
        send: list[Claimed] = []
        withheld: list[Outcome] = []
        # One request per owner; if the indexer is down each delivery asks below, and waits.
        with contextlib.suppress(RightsUnavailable):
            self.rights.prefetch({(c.owner, c.vehicle_id) for c in claimed if c.privilege})
        for c in claimed:
            if not c.privilege:  # a test delivery: no vehicle data, no rights to check
                send.append(c)
                continue
            try:
                access = self.rights.access(c.owner, c.vehicle_id)
            except RightsUnavailable as exc:
                withheld.append(self._retry(c, f"rights unknown: {exc}", now_ms, count=False))
                continue
            if not access.covers(Privilege(c.privilege), c.reading_ms):
                withheld.append(
                    Outcome(
                        c.id,
                        DeliveryState.WITHHELD,
                        c.attempts,
                        now_ms,
                        "the owner's rights on the vehicle ended",
                        now_ms,
                    )
                )
                continue
            send.append(c)
        return send, withheld

    def _retry(self, c: Claimed, error: str, now_ms: int, *, count: bool = True) -> Outcome:
        attempts = c.attempts + 1 if count else c.attempts
        if now_ms - c.created_ms >= self.settings.retry_window_s * 1000:
            return Outcome(c.id, DeliveryState.DEAD, attempts, now_ms, error, now_ms)
        delay = backoff_ms(
            attempts, self.settings.retry_base_s, self.settings.retry_max_delay_s, self.rng
        )
        return Outcome(c.id, DeliveryState.PENDING, attempts, now_ms + delay, error, now_ms)

    async def _send(self, client: aiohttp.ClientSession, c: Claimed) -> Outcome:
        async with self._slots[c.target]:
            now_s = self.clock()
            why = self._target_refusal(c.target_url)
            if why is not None:
                return self._retry(c, why, int(now_s * 1000))
            headers = signed_headers(c.id, c.payload, int(now_s), c.secret, c.previous_secret)
            error: str | None = None
            cap = self.settings.max_response_bytes
            try:
                async with client.post(
                    c.target_url, data=c.payload.encode(), headers=headers, allow_redirects=False
                ) as response:
                    answer = await response.content.read(cap + 1)
                    if len(answer) > cap:
                        error = f"answer over {cap} bytes"
                    elif not 200 <= response.status < 300:
                        error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            done_ms = int(self.clock() * 1000)
            if error is not None:
                return self._retry(c, error, done_ms)
            attempts = c.attempts + 1
            return Outcome(c.id, DeliveryState.DELIVERED, attempts, done_ms, None, done_ms)

    # ---------------------------------------------------------------------------------------

    async def round(self, client: aiohttp.ClientSession) -> int:
        """One claim-send-record round; returns how many deliveries it handled."""
        send, outcomes = await anyio.to_thread.run_sync(self._claim)
        if send:
            results = await asyncio.gather(*(self._send(client, c) for c in send))
            outcomes.extend(results)
        await anyio.to_thread.run_sync(record, self.store, outcomes)
        return len(outcomes)

    def client(self) -> aiohttp.ClientSession:
        """The HTTP client of the worker (aiohttp: httpx's pool costs O(n) per request at
        hundreds in flight): no redirects, the attempt timeout, `max_in_flight` connections."""
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.settings.max_in_flight),
            timeout=aiohttp.ClientTimeout(total=self.settings.delivery_timeout_s),
            trust_env=False,
            auto_decompress=False,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Delivers until `stop` is set."""
        async with self.client() as client:
            while not stop.is_set():
                try:
                    handled = await self.round(client)
                except Exception:  # keep delivering after a database hiccup; log it
                    log.exception("delivery round failed")
                    handled = 0
                if not handled:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.poll_interval_s)
