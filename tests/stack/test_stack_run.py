"""`dimo stack run`: starts anvil, deploys, prints addresses, stops on Ctrl-C, resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from protocol.deployment import Deployment
from stack.chain import Anvil, anvil_binary, rpc
from stack.exceptions import AnvilStartError

ROOT = Path(__file__).resolve().parents[2]
DIMO = Path(sys.executable).with_name("dimo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data: Path, port: int, *args: str, **settings: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        DIMO_STACK_DATA_DIR=str(data),
        DIMO_STACK_ANVIL_PORT=str(port),
        DIMO_STACK_ORACLE_PORT=str(free_port()),
        DIMO_STACK_INDEXER_PORT=str(free_port()),
        DIMO_STACK_SIGNER_PORTS=json.dumps([free_port() for _ in range(3)]),
        DIMO_STACK_CERTIFIER_PORT=str(free_port()),
        DIMO_STACK_TRIGGERS_PORT=str(free_port()),
        DIMO_STACK_ATTESTATION_PORT=str(free_port()),
        COLUMNS="200",
        **{f"DIMO_STACK_{k.upper()}": v for k, v in settings.items()},
    )
    return subprocess.Popen(
        [str(DIMO), "stack", "run", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_stack(proc: subprocess.Popen[str]) -> None:
    """Stops `dimo stack run` as Ctrl-C does, so that it stops its services (a kill would leave
    them running, holding their ports); kills it only if it does not stop."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    stop_stack(proc)
    raise AssertionError(f"{marker!r} never printed:\n{''.join(seen)}")


@pytest.mark.slow
def test_run_deploys_serves_stops_on_ctrl_c_and_resumes(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, port, fleet_vehicles="0")
    try:
        out = read_until(proc, "Ctrl-C stops", timeout=240)
        urls = dict(
            re.findall(r"^  (oracle|indexer API|attestations) +(http://\S+)", out, re.MULTILINE)
        )
        assert httpx.get(f"{urls['oracle']}/healthz").status_code == 200
        assert httpx.get(f"{urls['attestations']}/healthz").status_code == 200
        assert httpx.get(f"{urls['indexer API']}/healthz").status_code == 200
        assert httpx.get(f"{urls['indexer API']}/docs").status_code == 200
        record = Deployment.load(tmp_path / "deployments" / "31337.json")
        for name, contract in record.contracts.items():
            assert contract.address in out, name
            code = rpc(f"http://127.0.0.1:{port}", "eth_getCode", [contract.address, "latest"])
            assert isinstance(code, str)
            assert len(code) > 100
        assert "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" in out
        api = urls["indexer API"]
        assert f'Auth="{api}", TokenExchange="{api}", Identity="{api}/query"' in out
        assert f'NFT_address"] = "{record.contract("VehicleId").address}"' in out
        assert f'Attestation="{urls["attestations"]}")' in out
        proc.send_signal(signal.SIGINT)
        out = read_until(proc, "stopped anvil", timeout=60)
        assert proc.wait(timeout=30) == 0
        stops = re.findall(r"stopped (.+)$", out, re.MULTILINE)
        assert stops == [
            "attestations",
            "triggers",
            "indexer",
            "oracle batcher",
            "oracle",
            "oracle signer 3",
            "oracle signer 2",
            "oracle signer 1",
            "anvil",
        ], "services stop in the reverse of their start order"
    finally:
        stop_stack(proc)
    assert (tmp_path / "anvil-state.json").exists()

    again = start(tmp_path, port, "--once")
    out = read_until(again, "stopped")
    assert again.wait(timeout=30) == 0
    assert "resumed" in out
    assert re.search(record.contracts["DeviceId"].address, out)


def test_anvil_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = int(s.getsockname()[1])
        anvil = Anvil(anvil_binary(ROOT), "127.0.0.1", port, tmp_path / "state.json")
        with pytest.raises(AnvilStartError, match="did not come up"):
            anvil.start(timeout=5)
