"""Starts and stops the local anvil node, keeping its state in the data folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from stack.exceptions import AnvilStartError

#: anvil's default mnemonic: its accounts are public throwaway keys for local use only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 5.0) -> object:
    """One JSON-RPC call; returns the result or raises on an error object."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    reply = httpx.post(url, json=body, timeout=timeout).json()
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def anvil_binary(root: Path) -> str:
    """The anvil of this clone (npm @foundry-rs/anvil), else one on PATH."""
    local = root / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found is None:
        raise AnvilStartError("-", "no anvil binary: run `make install`")
    return found


class Anvil:
    """A local anvil process whose state is dumped to and loaded from `state_file`."""

    def __init__(
        self,
        binary: str,
        host: str,
        port: int,
        state_file: Path,
        block_time: float | None = None,
        log_file: Path | None = None,
        genesis_timestamp: int | None = None,
    ) -> None:
        self.url = f"http://{host}:{port}"
        self._cmd = [
            binary,
            "--host",
            host,
            "--port",
            str(port),
            "--state",
            str(state_file),
            "--mnemonic",
            DEV_MNEMONIC,
            "--chain-id",
            "31337",
        ]
        if block_time is not None:
            self._cmd += ["--block-time", str(block_time)]
        if genesis_timestamp is not None and not state_file.exists():
            # A fresh chain may start in the past: its clock keeps that offset until moved.
            self._cmd += ["--timestamp", str(genesis_timestamp)]
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Starts anvil and waits until it answers `eth_chainId`."""
        try:
            rpc(self.url, "eth_chainId", timeout=0.5)
        except httpx.HTTPError:
            pass
        else:
            raise AnvilStartError(self.url, "something already answers on that port")
        log = open(self._log_file, "ab") if self._log_file else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            self._cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AnvilStartError(self.url, f"exited with {self._proc.returncode}")
            try:
                rpc(self.url, "eth_chainId", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AnvilStartError(self.url, f"no answer within {timeout} s")

    @property
    def running(self) -> bool:
        """Whether the anvil process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Stops anvil with SIGTERM, so that it dumps its state, then waits."""
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
