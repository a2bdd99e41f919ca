"""An open-loop HTTP/1.1 load generator on asyncio streams, for latency benchmarks.

Request `i` is due at `t0 + i / rate` whatever happened to the earlier ones, and its latency is
its completion time minus that intended send time, so time spent queued (in this client, in the
kernel or in the server) counts, as it does for a user (no coordinated omission). Requests are
pre-built bytes sent over keep-alive connections from a pool that opens a new connection
whenever every open one is busy (up to a cap, past which requests wait for a free one, and that
wait counts too). A request still unanswered when the drain time is over counts as an error
with an infinite latency. Responses are read by `Content-Length` or chunked encoding and handed
to a check that says whether they are right.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A response check: `(status, body, request tag) -> None` when right, else a short reason.
Check = Callable[[int, bytes, Any], "str | None"]


@dataclass(frozen=True, slots=True)
class Request:
    """One pre-built request and what the check needs to judge its answer.

    Attributes:
        raw: The whole HTTP/1.1 request (head and body) as sent.
        tag: Anything the check wants, e.g. the number of points the answer must hold.
    """

    raw: bytes
    tag: Any = None


@dataclass
class RunResult:
    """What one open-loop run measured.

    Attributes:
        rate: Requests a second asked for.
        duration_s: Seconds over which the requests were scheduled.
        sent: Requests scheduled.
        ok: Answers that passed the check.
        errors: Failed requests by reason (status, check reason, socket error, timeout).
        latencies_ms: Every request's latency from its intended send time, sorted, in ms
            (`inf` for a request never answered).
        send_lag_ms_p99: p99 of how late the generator itself dispatched requests (its own
            overload shows here; large values make the run's latencies unreliable).
        connections: Connections opened during the run.
    """

    rate: float
    duration_s: float
    sent: int
    ok: int
    errors: dict[str, int]
    latencies_ms: list[float]
    send_lag_ms_p99: float
    connections: int
    achieved_rps: float = field(default=0.0)

    def percentile(self, q: float) -> float:
        """The `q`-th percentile latency (nearest rank), in ms."""
        return percentile(self.latencies_ms, q)

    @property
    def error_count(self) -> int:
        """How many requests failed."""
        return sum(self.errors.values())

    def summary(self) -> dict[str, Any]:
        """The run's figures as plain JSON-able values."""
        return {
            "rate": self.rate,
            "seconds": round(self.duration_s, 2),
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "p50_ms": _round(self.percentile(50)),
            "p90_ms": _round(self.percentile(90)),
            "p99_ms": _round(self.percentile(99)),
            "max_ms": _round(self.percentile(100)),
            "achieved_rps": round(self.achieved_rps, 1),
            "send_lag_ms_p99": round(self.send_lag_ms_p99, 2),
            "connections": self.connections,
        }


def _round(x: float) -> float | str:
    return round(x, 2) if math.isfinite(x) else "inf"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (`nan` when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class _Pool:
    """Idle keep-alive connections; callers wait when `cap` are open and all are busy."""

    def __init__(self, host: str, port: int, cap: int) -> None:
        self.host, self.port, self.cap = host, port, cap
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.waiters: deque[asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
        self.waiters = deque()
        self.open = 0
        self.opened = 0

    async def get(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """A connection, and whether it served a request before (the server may have closed
        it meanwhile)."""
        if self.idle:
            return self.idle.pop(), True
        if self.open < self.cap:
            self.open += 1
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port), False
            except BaseException:
                self.open -= 1
                raise
        waiter: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter, True

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def discard(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if conn is not None:
            conn[1].close()
        self.open -= 1
        # A waiter may now open a connection of its own.
        while self.waiters and self.open < self.cap:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.open += 1
                self.opened += 1
                task = asyncio.ensure_future(asyncio.open_connection(self.host, self.port))
                task.add_done_callback(_hand_over(waiter, self))
                return

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def _hand_over(
    waiter: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]], pool: _Pool
) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            pool.open -= 1
            if not waiter.done():
                waiter.set_exception(task.exception() or ConnectionError("connect cancelled"))
        elif not waiter.done():
            waiter.set_result(task.result())
        else:
            pool.put(task.result())

    return done


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = -1
    chunked = False
    keep_alive = True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size + 2))
        return status, b"".join(p[:-2] for p in parts), keep_alive
    if length < 0:
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep_alive


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[Request],
    rate: float,
    check: Check,
    *,
    max_connections: int = 256,
    drain_s: float = 30.0,
) -> RunResult:
    """Sends `requests` open loop at `rate` a second and measures each latency.

    Args:
        host: Server address.
        port: Server port.
        requests: Pre-built requests, sent in order, one due every `1 / rate` seconds.
        rate: Requests a second.
        check: Judges each answer (see `Check`).
        max_connections: Cap on open connections; past it requests wait for a free one.
        drain_s: Seconds after the last due time that late answers are still waited for.

    Returns:
        The run's latencies, errors and generator lag.
    """
    loop = asyncio.get_running_loop()
    # Not loop.time(): uvloop's clock has millisecond steps, too coarse for latencies.
    clock = time.perf_counter
    pool = _Pool(host, port, max_connections)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    ok = 0
    lags: list[float] = []

    def fail(reason: str) -> None:
        errors[reason] = errors.get(reason, 0) + 1

    async def exchange(req: Request) -> tuple[int, bytes]:
        # A kept-alive connection the server has closed meanwhile fails at once: try again on
        # another (each attempt takes a connection, so this ends).
        for _ in range(pool.cap + 2):
            conn, reused = await pool.get()
            reader, writer = conn
            try:
                writer.write(req.raw)
                status, body, keep_alive = await _read_response(reader)
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as e:
                pool.discard(conn)
                if reused and not (isinstance(e, asyncio.IncompleteReadError) and e.partial):
                    continue
                raise
            except BaseException:
                pool.discard(conn)
                raise
            if keep_alive:
                pool.put(conn)
            else:
                pool.discard(conn)
            return status, body
        raise ConnectionError("every connection was closed by the server")

    async def one(req: Request, due: float) -> None:
        nonlocal ok
        try:
            status, body = await exchange(req)
            latencies.append(clock() - due)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            fail(type(e).__name__)
            latencies.append(math.inf)
            return
        reason = check(status, body, req.tag) if status == 200 else f"http {status}"
        if reason is None:
            ok += 1
        else:
            fail(reason)

    tasks: list[asyncio.Task[None]] = []
    t0 = clock() + 0.05
    step = 1.0 / rate
    for i, req in enumerate(requests):
        due = t0 + i * step
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(clock() - due)
        tasks.append(loop.create_task(one(req, due)))
    last_due = t0 + (len(requests) - 1) * step
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, last_due + drain_s - clock()))
    finished = clock()
    for task in pending:
        task.cancel()
        fail("timeout")
        latencies.append(math.inf)
    if pending:
        await asyncio.wait(pending)
    pool.close()
    lags.sort()
    latencies.sort()
    duration = len(requests) * step
    return RunResult(
        rate=rate,
        duration_s=duration,
        sent=len(requests),
        ok=ok,
        errors=errors,
        latencies_ms=[x * 1000 for x in latencies],
        send_lag_ms_p99=percentile(lags, 99) * 1000,
        connections=pool.opened,
        achieved_rps=len(requests) / max(finished - t0, 1e-9),
    )


def run_open_loop(
    host: str,
    port: int,
    requests: Sequence[Request],
    rate: float,
    check: Check,
    **kwargs: Any,
) -> RunResult:
    """`open_loop` in a fresh event loop (uvloop when installed), garbage collector off."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    gc.collect()
    gc.disable()
    try:
        return runner(open_loop(host, port, requests, rate, check, **kwargs))  # type: ignore[no-any-return]
    finally:
        gc.enable()
