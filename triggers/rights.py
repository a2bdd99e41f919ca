"""A subscriber's rights on a vehicle, asked of the indexer's API (`GET /vehicles/{id}/access/
{account}`: ownership, grants and licences, all public chain facts) and reused for
`rights_ttl_s`. A webhook fires, and a delivery is attempted, only while its owner may read
the privilege it needs at the reading's time and now."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from protocol.privileges import Privilege
from triggers.exceptions import RightsUnavailable

__all__ = ["Access", "IndexerRights"]


@dataclass(frozen=True, slots=True)
class Access:
    """An account's rights on a vehicle at `now_ms`: per privilege name, sorted intervals."""

    now_ms: int
    spans: dict[str, tuple[tuple[int, int], ...]]

    def covers(self, privilege: Privilege, at_ms: int) -> bool:
        """Whether every bit of `privilege` covers a reading at `at_ms` and is live now."""
        for bit in Privilege:
            if not privilege & bit:
                continue
            spans = self.spans.get(str(bit.name), ())
            if not spans or spans[-1][1] < self.now_ms:
                return False  # not live now (revoked, expired, sold)
            if at_ms >= self.now_ms:
                continue  # a reading after the answer: the live period runs on to it
            i = bisect.bisect_right(spans, at_ms, key=lambda s: s[0]) - 1
            if i < 0 or not (spans[i][0] <= at_ms < max(spans[i][1], self.now_ms + 1)):
                return False
        return True

    def live(self, privilege: Privilege) -> bool:
        """Whether every bit of `privilege` is live now (it covers the latest readings)."""
        return self.covers(privilege, self.now_ms - 1)

    def any_live(self) -> bool:
        """Whether the account may read anything of the vehicle now."""
        return any(s and s[-1][1] >= self.now_ms for s in self.spans.values())


class IndexerRights:
    """Rights answers from the indexer's API, cached per (account, vehicle) for `ttl_s`."""

    def __init__(
        self, base_url: str, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self._clock = clock
        self._client = httpx.Client(timeout=15.0)
        self._cache: dict[tuple[str, int], tuple[float, Access]] = {}
        self._lock = threading.Lock()

    def access(self, account: str, vehicle_id: int) -> Access:
        """`account`'s rights on `vehicle_id` (none for a vehicle the indexer does not know).

        Raises:
            RightsUnavailable: the indexer did not answer.
        """
        key = (account.lower(), vehicle_id)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        url = f"{self.base_url}/vehicles/{vehicle_id}/access/{key[0]}"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise RightsUnavailable(url, str(exc)) from exc
        if response.status_code == 404:
            found = Access(int(time.time() * 1000), {})
        elif response.status_code == 200:
            found = self._parse(response.json())
        else:
            raise RightsUnavailable(url, f"HTTP {response.status_code}")
        with self._lock:
            self._cache[key] = (now, found)
        return found

    def prefetch(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Fetches the answers of `(account, vehicle)` pairs not fresh in the cache, one
        request per account and 500 vehicles (`GET /accounts/{account}/access`).

        Raises:
            RightsUnavailable: the indexer did not answer.
        """
        now = self._clock()
        stale: dict[str, list[int]] = {}
        with self._lock:
            for account, vehicle in pairs:
                key = (account.lower(), vehicle)
                hit = self._cache.get(key)
                if hit is None or now - hit[0] >= self.ttl_s:
                    stale.setdefault(key[0], []).append(vehicle)
        for account, vehicles in stale.items():
            wanted = sorted(set(vehicles))
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                url = f"{self.base_url}/accounts/{account}/access"
                try:
                    response = self._client.get(url, params={"vehicle": chunk})
                except httpx.HTTPError as exc:
                    raise RightsUnavailable(url, str(exc)) from exc
                if response.status_code != 200:
                    raise RightsUnavailable(url, f"HTTP {response.status_code}")
                found = {int(item["vehicle_id"]): self._parse(item) for item in response.json()}
                nobody = Access(int(time.time() * 1000), {})
                with self._lock:
                    for vehicle in chunk:
                        self._cache[(account, vehicle)] = (now, found.get(vehicle, nobody))

    @staticmethod
    def _parse(body: dict[str, Any]) -> Access:
        return Access(
            int(body["now_ms"]),
            {k: tuple((int(a), int(b)) for a, b in v) for k, v in body["privileges"].items()},
        )

    def forget(self) -> None:
        """Drops every cached answer."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Closes the HTTP client."""
        self._client.close()
