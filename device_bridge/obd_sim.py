"""A simulated OBD-II engine ECU on a python-can bus (answers Mode 01 PIDs and the VIN)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import can

from device_bridge.exceptions import IsoTpError
from device_bridge.isotp import IsoTpLink

__all__ = ["SimulatedEcu", "encode_pid"]


def encode_pid(pid: int, value: float) -> bytes:
    """Return the data bytes of a Mode 01 PID holding `value` (inverse of `obd.PIDS`)."""
    if pid == 0x0D:
        return bytes((round(value),))
    if pid == 0x0C:
        return round(value * 4).to_bytes(2, "big")
    if pid == 0x05:
        return bytes((round(value) + 40,))
    if pid == 0x2F:
        return bytes((round(value * 2.55),))
    if pid == 0xA6:
        return round(value * 10).to_bytes(4, "big")
    if pid == 0x42:
        return round(value * 1000).to_bytes(2, "big")
    raise KeyError(pid)


class SimulatedEcu:
    """Engine ECU #1 (request 0x7DF/0x7E0, response 0x7E8) answering from a value table.

    Unsupported PIDs get the negative response 0x7F 01 0x12 (sub-function not supported).
    """

    def __init__(
        self,
        channel: str,
        values: Mapping[int, float],
        vin: str,
        *,
        interface: str = "virtual",
        block_size: int = 0,
    ) -> None:
        """Open the ECU's own bus on the channel.

        Args:
            channel: the python-can channel.
            values: Mode 01 PID -> physical value.
            vin: the 17-character VIN.
            interface: the python-can interface.
            block_size: not used by the ECU as sender; kept for symmetry with testers.
        """
        self.values = dict(values)
        self.vin = vin
        self.requests = 0
        self.bus = can.Bus(interface=interface, channel=channel)
        self.link = IsoTpLink(self.bus, 0x7E8, (0x7DF, 0x7E0), timeout_s=1.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="obd-sim", daemon=True)

    def _answer(self, request: bytes) -> bytes:
        service, pid = request[0], request[1] if len(request) > 1 else -1
        if service == 0x01 and pid % 0x20 == 0 and pid <= 0xE0:
            bits = 0
            for i in range(32):
                p = pid + i + 1
                if p in self.values or (i == 31 and any(q > p for q in self.values)):
                    bits |= 1 << (31 - i)
            return bytes((0x41, pid)) + bits.to_bytes(4, "big")
        if service == 0x01 and pid in self.values:
            return bytes((0x41, pid)) + encode_pid(pid, self.values[pid])
        if service == 0x09 and pid == 0x02:
            return bytes((0x49, 0x02, 0x01)) + self.vin.encode("ascii")
        return bytes((0x7F, service, 0x12))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                request = self.link.recv(0.1)
            except IsoTpError:
                continue
            if not request:
                continue
            self.requests += 1
            try:
                self.link.send(self._answer(request))
            except IsoTpError:
                continue

    def __enter__(self) -> SimulatedEcu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.bus.shutdown()
