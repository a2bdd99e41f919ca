"""The platform's services as child processes: started with their own environment, waited on
until healthy, stopped in reverse order with SIGINT (then SIGKILL if they hang)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stack.exceptions import ServiceStartError

__all__ = ["Service", "dimo_command"]


def dimo_command(*args: str) -> list[str]:
    """The argv of a `dimo` subcommand run by this interpreter."""
    return [sys.executable, "-m", "stack", *args]


@dataclass
class Service:
    """One child process of the platform.

    Attributes:
        name: what the stack calls it in its output.
        argv: the command line.
        env: variables set on top of the stack's own environment.
        health_url: polled until it answers 200; None: healthy as soon as it runs.
        log_file: where its stdout and stderr go.
        cwd: its working directory.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    health_url: str | None
    log_file: Path
    cwd: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Starts the process (in its own session, so a terminal's Ctrl-C reaches the stack
        only, which then stops the children in order)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                list(self.argv),
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Waits until the health URL answers 200.

        Raises:
            ServiceStartError: the process exited, or did not become healthy in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise ServiceStartError(self.name, f"exited with {code}", self.log_file)
            if self.health_url is None:
                return
            try:
                if httpx.get(self.health_url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServiceStartError(self.name, f"not healthy within {timeout} s", self.log_file)
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Asks the process to stop (SIGINT, as Ctrl-C would), kills it after `timeout`.

        Returns:
            Its exit code, or None if it was never started.
        """
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGINT)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        return self._proc.returncode
