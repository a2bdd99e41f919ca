"""`make run` supervises its services: a crashed service is started again after an exponential
backoff and shown in the status line; one that keeps crashing stops the platform, naming it and
its log; with every service killed in turn (kill -9) while the fleet drives, every receipted
bundle is still anchored once and served with its proof."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protocol.bundle import Bundle, sign_bundle
from protocol.eip712 import dimo_domain
from stack.exceptions import ServiceCrashLoop
from stack.fleet import Ledger, SealedBundle
from stack.platform import Progress
from stack.seed import OWNERS, dev_account, device_key, load_fleet
from stack.services import RestartPolicy, Service
from tests.stack.test_e2e import Stack, fleet_done, oracle_settled, served_proof, sign_in, wait_for
from tests.stack.test_stack_run import read_until, stop_stack

ROOT = Path(__file__).resolve().parents[2]


def python_service(tmp_path: Path, code: str) -> Service:
    return Service(
        "worker", [sys.executable, "-c", code], {}, None, tmp_path / "worker.log", tmp_path
    )


def test_the_backoff_doubles_with_each_recent_crash_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff_s=1.0, max_backoff_s=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_killed_service_is_started_again_once_its_backoff_has_passed(tmp_path: Path) -> None:
    service = python_service(tmp_path, "import time; time.sleep(60)")
    policy = RestartPolicy(backoff_s=2.0)
    service.start()
    first = service.pid
    assert first is not None
    try:
        os.kill(first, signal.SIGKILL)
        wait_for("the kill", lambda: None if service.running else True, 10)
        now = time.monotonic()
        event = service.supervise(policy, now)
        assert event is not None
        assert "killed by SIGKILL" in event
        assert "restarting in 2 s" in event
        assert service.supervise(policy, now + 1.9) is None, "not before the backoff"
        assert not service.running
        event = service.supervise(policy, now + 2.0)
        assert event is not None
        assert "restarted" in event
        assert service.running
        assert service.pid != first
        assert service.restarts == 1
        assert service.supervise(policy, now + 2.1) is None, "a running service is left alone"
    finally:
        service.stop()


def test_a_service_that_keeps_crashing_stops_the_platform_naming_it_and_its_log(
    tmp_path: Path,
) -> None:
    service = python_service(tmp_path, "print('cannot open the journal', flush=True); exit(3)")
    policy = RestartPolicy(backoff_s=0.01, max_crashes=3, window_s=60.0)
    service.start()
    events: list[str] = []

    def supervise_until_given_up() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            event = service.supervise(policy, time.monotonic())
            if event is not None:
                events.append(event)
            time.sleep(0.02)

    with pytest.raises(ServiceCrashLoop) as caught:
        supervise_until_given_up()
    message = str(caught.value)
    assert message.startswith("worker crashed 3 times in 60 s (last: exited with 3)")
    assert str(tmp_path / "worker.log") in message
    assert "cannot open the journal" in message, "the log's tail comes with it"
    assert sum("restarted" in e for e in events) == 2


def test_crashes_older_than_the_window_do_not_count(tmp_path: Path) -> None:
    service = python_service(tmp_path, "exit(1)")
    policy = RestartPolicy(backoff_s=1.0, max_crashes=2, window_s=10.0)
    service.start()
    assert service._proc is not None
    service._proc.wait()
    event = service.supervise(policy, 100.0)
    assert event is not None
    assert "crash 1 of 2" in event
    assert service.supervise(policy, 101.0) is not None  # restarted
    assert service._proc is not None
    service._proc.wait()
    event = service.supervise(policy, 200.0)
    assert event is not None, "the first crash is 100 s old: not a crash loop"
    assert "crash 1 of 2" in event
    assert "restarting in 1 s" in event


def test_the_status_line_shows_services_down_or_restarted() -> None:
    line = Progress(None, None, 3, ("oracle down (restart in 2 s)", "indexer restarted 1x")).line()
    assert line == (
        "services oracle down (restart in 2 s), indexer restarted 1x | indexer vehicles 3"
    )


def test_a_restarted_fleet_resumes_after_the_last_window_its_ledger_sealed(
    tmp_path: Path,
) -> None:
    """A fleet killed after sealing a window but before saving its state must not seal that
    window again: a second bundle for it would carry readings the oracle already has (an
    odometer it has seen pass) and be rejected."""
    key = device_key(0, 0)
    domain = dimo_domain(31337, "0x" + "11" * 20)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert ledger.sealed_until(7) == 0
    for sequence, start in ((1, 10_000), (2, 20_000)):
        bundle = Bundle(
            device=key.address,
            vehicle_id=7,
            sequence=sequence,
            window_start=start,
            window_end=start + 10_000,
            readings={"Vehicle.TraveledDistance": [(start + 1_000, 100.0 + sequence)]},
        )
        ledger.record(sign_bundle(bundle, bytes(key.key), domain))
    ledger.flush()
    assert ledger.sealed_until(7) == 30_000
    assert ledger.sealed_until(8) == 0
    ledger.close()


@pytest.mark.slow
def test_every_service_killed_in_turn_is_restarted_and_every_receipt_is_served_once(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path)
    stack.env.update(
        DIMO_STACK_TIME_FACTOR="1500",
        DIMO_STACK_RESTART_BACKOFF_S="0.5",
    )
    proc = stack.start()
    try:
        out = read_until(proc, "Ctrl-C stops", timeout=240)
        pids = dict(re.findall(r"^(\S.*?) started \(pid (\d+)\)", out, re.MULTILINE))
        names = list(pids)
        assert names[:3] == ["oracle signer 1", "oracle signer 2", "oracle signer 3"]
        assert {"oracle", "oracle batcher", "indexer", "triggers", "certifier", "fleet"} <= set(
            names
        )
        assert fleet_done(tmp_path) is None
        for name in names:
            os.kill(int(pids[name]), signal.SIGKILL)
            seen = read_until(proc, f"{name} restarted (pid", timeout=60)
            assert f"{name} killed by SIGKILL (crash 1 of 5" in seen, seen
            time.sleep(3)  # let it come up and work before the next one goes down
        assert fleet_done(tmp_path) is None, "the fleet was still driving through every kill"
        read_until(proc, "restarted 1x", timeout=30)  # the status line

        progress = wait_for("the fleet to catch up", lambda: fleet_done(tmp_path), 240)
        wait_for("the oracle to anchor", lambda: oracle_settled(stack.oracle), 120)
        assert progress["waiting"] == 0
        assert progress["rejected"] == 0
        assert proc.poll() is None, "the platform kept running"

        ledger = Ledger(tmp_path / "fleet" / "ledger.sqlite")
        rows = ledger.rows()
        ledger.close()
        assert len(rows) > 50
        fleet = load_fleet(tmp_path / "fleet" / "fleet.json")
        authority = f"127.0.0.1:{stack.ports['INDEXER']}"
        headers: dict[str, dict[str, str]] = {
            dev_account(i).address: sign_in(stack.api, dev_account(i), authority) for i in OWNERS
        }
        owner_of = {v.vehicle_id: v.owner for v in fleet}

        def place(row: SealedBundle) -> tuple[int, int]:
            proof = wait_for(
                f"the indexer to serve {row.device}#{row.sequence}",
                lambda: served_proof(stack.api, headers[owner_of[row.vehicle_id]], row),
                60,
            )
            leaf = proof["leaf"]
            assert (leaf["device"], leaf["sequence"]) == (row.device, row.sequence)
            return proof["batch"]["id"], proof["leaf_index"]

        with ThreadPoolExecutor(4) as pool:
            places = list(pool.map(place, rows))
        assert len(set(places)) == len(rows), "each receipted bundle is anchored once"

        proc.send_signal(signal.SIGINT)
        out = read_until(proc, "stopped anvil", timeout=60)
        assert proc.wait(timeout=30) == 0, out
    finally:
        stop_stack(proc)
