"""The platform's services as child processes: started with their own environment, waited on
until healthy, restarted with exponential backoff when they crash (up to a limit), stopped in
reverse order with SIGINT (then SIGKILL if they hang)."""

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

from stack.exceptions import ServiceCrashLoop, ServiceStartError

__all__ = ["RestartPolicy", "Service", "dimo_command", "exit_reason"]


def dimo_command(*args: str) -> list[str]:
    """The argv of a `dimo` subcommand run by this interpreter."""
    return [sys.executable, "-m", "stack", *args]


def exit_reason(code: int | None) -> str:
    """A process's exit code in words ("killed by SIGKILL", "exited with 1")."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with {code}"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a crashed service is started again, and when the platform gives up on it.

    The n-th crash inside the last `window_s` seconds waits `backoff_s * 2**(n-1)` seconds
    (at most `max_backoff_s`) before the restart; the `max_crashes`-th crash inside the window
    stops the platform instead.

    Attributes:
        backoff_s: wait before the first restart.
        max_backoff_s: longest wait before a restart.
        max_crashes: crashes inside `window_s` that stop the platform.
        window_s: how far back crashes count.
    """

    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_crashes: int = 5
    window_s: float = 300.0

    def delay(self, recent_crashes: int) -> float:
        """Seconds to wait before restarting after the `recent_crashes`-th recent crash."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** max(0, recent_crashes - 1)))


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
    #: Monotonic times of its crashes (exits while the platform ran), oldest first.
    crashes: list[float] = field(default_factory=list, init=False, repr=False)
    #: How often it was started again after a crash.
    restarts: int = field(default=0, init=False)
    #: When it is due to start again (monotonic), while it is down after a crash.
    restart_at: float | None = field(default=None, init=False)

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

    @property
    def returncode(self) -> int | None:
        """The exit code of the last process, once it has exited."""
        return None if self._proc is None else self._proc.poll()

    def supervise(self, policy: RestartPolicy, now: float) -> str | None:
        """Notes a crash and schedules the restart, or restarts once the backoff has passed.

        Args:
            policy: the restart policy.
            now: the monotonic clock.

        Returns:
            What happened, in words, or None if nothing did.

        Raises:
            ServiceCrashLoop: it crashed `policy.max_crashes` times inside `policy.window_s`.
        """
        if self._proc is None or self.running:
            return None
        if self.restart_at is None:
            self.crashes = [t for t in self.crashes if now - t < policy.window_s] + [now]
            reason = exit_reason(self._proc.returncode)
            if len(self.crashes) >= policy.max_crashes:
                raise ServiceCrashLoop(
                    self.name, len(self.crashes), policy.window_s, reason, self.log_file
                )
            wait = policy.delay(len(self.crashes))
            self.restart_at = now + wait
            return (
                f"{self.name} {reason} (crash {len(self.crashes)} of {policy.max_crashes} "
                f"allowed in {policy.window_s:g} s); restarting in {wait:g} s"
            )
        if now < self.restart_at:
            return None
        self.restart_at = None
        self.restarts += 1
        self.start()
        return f"{self.name} restarted (pid {self.pid}, restart {self.restarts})"

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
