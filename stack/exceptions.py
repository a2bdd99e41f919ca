"""Errors of the local platform."""

from __future__ import annotations

from pathlib import Path

from protocol.exceptions import PlatformError


class StackError(PlatformError):
    """Root of the stack's errors."""


class AnvilStartError(StackError, RuntimeError):
    """anvil did not start or did not answer."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            f"anvil at {url} did not come up: {detail}. Is the port taken? "
            "Set DIMO_STACK_ANVIL_PORT, or run `make install` so node_modules/.bin/anvil exists."
        )
        self.url = url
        self.detail = detail


class DeployError(StackError, RuntimeError):
    """The deploy script failed."""

    def __init__(self, returncode: int, output: str) -> None:
        super().__init__(f"`ape run deploy` exited with {returncode}:\n{output[-4000:]}")
        self.returncode = returncode
        self.output = output


class ServiceStartError(StackError, RuntimeError):
    """A service of the platform did not come up."""

    def __init__(self, name: str, detail: str, log_file: Path) -> None:
        tail = ""
        if log_file.exists():
            tail = log_file.read_text(errors="replace")[-3000:]
        super().__init__(f"{name} did not come up: {detail}. Its log is {log_file}:\n{tail}")
        self.name = name
        self.detail = detail
        self.log_file = log_file


class ServiceCrashLoop(StackError, RuntimeError):
    """A service of the platform kept crashing, so the platform stopped."""

    def __init__(
        self, name: str, crashes: int, window_s: float, reason: str, log_file: Path
    ) -> None:
        tail = ""
        if log_file.exists():
            tail = log_file.read_text(errors="replace")[-2000:]
        super().__init__(
            f"{name} crashed {crashes} times in {window_s:g} s (last: {reason}); the platform "
            f"stops. Read its log, {log_file}, fix the cause and run it again "
            f"(DIMO_STACK_RESTART_MAX_CRASHES sets the limit):\n{tail}"
        )
        self.name = name
        self.crashes = crashes
        self.window_s = window_s
        self.reason = reason
        self.log_file = log_file


class FleetSetupError(StackError, RuntimeError):
    """The simulated fleet could not be registered or paired on-chain."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(
            f"registering the simulated fleet failed at {step}: {detail}. The chain may have "
            "been reset under an old data folder: remove it (or set DIMO_STACK_DATA_DIR)."
        )
        self.step = step
        self.detail = detail


class DemoSeedError(StackError, RuntimeError):
    """A step of the demo seed (products, DIMO, proposal, first rewards) failed."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(
            f"seeding the demo failed at {step}: {detail}. Run without it (`make run DEMO=0`, "
            "`dimo stack run --no-demo`), or start over with a fresh data folder."
        )
        self.step = step
        self.detail = detail


class FleetConfigError(StackError, ValueError):
    """A fleet setting cannot be used."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"DIMO_STACK_{field.upper()}: {detail}")
        self.field = field
        self.detail = detail
