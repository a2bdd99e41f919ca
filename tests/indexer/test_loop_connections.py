"""`LoopConnections`: the event loop's own connection, for the Telemetry GraphQL's small
queries run in the loop's thread (`indexer/api/deps.py`)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from indexer.api.deps import LoopConnections
from indexer.db import make_engine


def test_a_loop_keeps_one_connection_and_runs_the_work_in_its_own_thread(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    held = LoopConnections(engine, engine)
    seen: list[tuple[Connection, int]] = []

    def work(conn: Connection) -> int:
        seen.append((conn, threading.get_ident()))
        return int(conn.execute(text("SELECT 41 + 1")).scalar_one())

    async def main() -> list[int]:
        return [await held.run(work) for _ in range(3)]

    assert anyio.run(main) == [42, 42, 42]
    assert len({id(c) for c, _ in seen}) == 1  # one connection, kept
    assert {t for _, t in seen} == {threading.get_ident()}  # the loop's (here the test's) thread
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    engine.dispose()  # gives it back
    assert seen[0][0].closed
    assert anyio.run(main) == [42, 42, 42]  # a later job checks out another
    assert not seen[-1][0].closed
    assert seen[-1][0] is not seen[0][0]
    engine.dispose()


def test_a_broken_connection_is_replaced_and_an_error_ends_only_its_job(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    held = LoopConnections(engine, engine)
    conns: list[Connection] = []

    def work(conn: Connection) -> int:
        conns.append(conn)
        return int(conn.execute(text("SELECT 1")).scalar_one())

    def fails(conn: Connection) -> None:
        conn.execute(text("SELECT * FROM no_such_table"))

    async def main() -> None:
        assert await held.run(work) == 1
        with pytest.raises(OperationalError, match="no_such_table"):
            await held.run(fails)
        assert await held.run(work) == 1  # the same connection still serves
        assert conns[0] is conns[1]
        conns[1].invalidate()  # as a dropped server connection leaves it
        assert await held.run(work) == 1
        assert conns[2] is not conns[1]

    anyio.run(main)
    engine.dispose()


def test_the_loop_never_waits_on_a_full_pool(tmp_path: Path) -> None:
    """With every pooled connection taken, the first job waits for one in a worker thread: the
    loop keeps running other tasks meanwhile, and the job runs once one is given back."""
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}", pool_size=1, max_overflow=0)
    held = LoopConnections(engine, engine)
    taken = engine.connect()
    ticks: list[float] = []

    async def main() -> int:
        async def tick() -> None:
            for _ in range(10):
                ticks.append(time.monotonic())
                await anyio.sleep(0.02)

        def give_back() -> None:
            time.sleep(0.3)
            taken.close()

        threading.Thread(target=give_back).start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            got = await held.run(lambda c: int(c.execute(text("SELECT 7")).scalar_one()))
        return got

    started = time.monotonic()
    assert anyio.run(main) == 7
    assert time.monotonic() - started >= 0.3  # it waited for the connection given back
    assert len(ticks) == 10
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.2  # the loop did not
    engine.dispose()
