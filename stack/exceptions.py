"""Errors of the local platform."""

from __future__ import annotations


class StackError(Exception):
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
