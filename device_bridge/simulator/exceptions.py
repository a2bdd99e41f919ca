"""Errors of the fleet simulator, under the bridge's root error."""

from __future__ import annotations

from device_bridge.exceptions import BridgeError


class SimulationError(BridgeError, ValueError):
    """Simulator options that cannot describe a fleet (bad model, SoH, counts, rates)."""

    def __init__(self, option: str, value: object, reason: str) -> None:
        self.option = option
        self.value = value
        self.reason = reason
        super().__init__(f"invalid simulator option {option}={value!r}: {reason}")
