"""Per-caller rate limits with `RateLimit-*` headers (IETF draft) and 429 problems."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexer.api.problems import problem_response
from indexer.exceptions import RateLimited

#: Keys kept before expired windows are swept out.
_SWEEP_AT: Final = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its caller's budget."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int


class RateLimiter:
    """A fixed window per caller: `limit` requests, the window opening at its first request.

    In-memory, so each API process counts on its own; run one per worker or put a shared
    limiter (a proxy, Redis) in front when running many.

    Args:
        limit: Requests a caller may make per window; 0 turns limiting off.
        clock: Unix time in seconds.
        window_s: Length of a window, in seconds.
    """

    def __init__(self, limit: int, clock: Callable[[], float], window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> Decision:
        """Count one request of `key` and say whether it may proceed."""
        now = self._clock()
        start, count = self._windows.get(key, (now, 0))
        if now >= start + self.window_s:
            start, count = now, 0
        allowed = count < self.limit
        if allowed:
            count += 1
        self._windows[key] = (start, count)
        if len(self._windows) > _SWEEP_AT:
            self._sweep(now)
        reset = max(0, math.ceil(start + self.window_s - now))
        return Decision(allowed, self.limit, self.limit - count, reset)

    def _sweep(self, now: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if now < v[0] + self.window_s}


class RateLimitMiddleware:
    """ASGI middleware charging each HTTP request to its caller and adding the headers.

    Args:
        app: The wrapped application.
        limiter: The budget keeper.
        caller_key: The caller of a request, from its headers and client address.
        exempt: Paths never charged (health probes).
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        caller_key: Callable[[Headers, str], str],
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.caller_key = caller_key
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.limiter.limit == 0
            or scope.get("path", "") in self.exempt
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else "unknown"
        decision = self.limiter.hit(self.caller_key(Headers(scope=scope), host))
        fields = {
            "RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(decision.reset_s),
            "RateLimit-Policy": f"{decision.limit};w={int(self.limiter.window_s)}",
        }
        if not decision.allowed:
            exc = RateLimited(decision.limit, decision.reset_s)
            response = problem_response(
                {**exc.problem(), "instance": scope.get("path", "")},
                {**fields, "Retry-After": str(decision.reset_s)},
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in fields.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
