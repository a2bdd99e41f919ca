"""Fixtures of the protocol tests: an offline js-ipfs daemon speaking Kubo's RPC API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
JSIPFS = REPO_ROOT / "node_modules" / ".bin" / "jsipfs"

# js-ipfs 0.66 calls Promise.withResolvers, which Node only has from 22 on.
POLYFILL = """\
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def jsipfs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start an offline js-ipfs daemon on a free loopback port; yield its RPC base URL."""
    if not JSIPFS.exists():
        pytest.skip(f"npm package `ipfs` is not installed ({JSIPFS} is missing): run `npm ci`")
    workdir = tmp_path_factory.mktemp("jsipfs")
    polyfill = workdir / "polyfill.cjs"
    polyfill.write_text(POLYFILL)
    port = _free_port()
    config = {
        "Addresses": {
            "Swarm": [],
            "API": f"/ip4/127.0.0.1/tcp/{port}",
            "Gateway": "",
            "RPC": "",
            "Delegates": [],
        },
        "Bootstrap": [],
        "Discovery": {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}},
        "Routing": {"Type": "none"},
    }
    config_file = workdir / "config.json"
    config_file.write_text(json.dumps(config))
    env = {
        **os.environ,
        "IPFS_PATH": str(workdir / "repo"),
        "NODE_OPTIONS": f"{os.environ.get('NODE_OPTIONS', '')} --require {polyfill}".strip(),
    }
    subprocess.run(
        [str(JSIPFS), "init", "--emptyRepo", "--defaultConfig", str(config_file)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log_path = workdir / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(JSIPFS), "daemon", "--offline"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"js-ipfs daemon exited early:\n{log_path.read_text()}")
            try:
                httpx.post(f"{url}/api/v0/version", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail(f"js-ipfs daemon not ready in 60 s:\n{log_path.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        _stop(process)
