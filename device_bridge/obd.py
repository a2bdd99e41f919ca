"""OBD-II (SAE J1979) over ISO-TP: Mode 01 PIDs and the VIN, mapped to VSS readings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import can

from device_bridge.decoder import Reading
from device_bridge.exceptions import (
    IsoTpError,
    IsoTpTimeoutError,
    ObdError,
    ObdMalformedResponseError,
    ObdNegativeResponseError,
    ObdNoResponseError,
)
from device_bridge.isotp import IsoTpLink
from protocol.vss import VssValue

__all__ = [
    "OBD_REQUEST_ID",
    "OBD_RESPONSE_ID",
    "PIDS",
    "VIN_PATH",
    "ObdClient",
    "ObdPoller",
    "Pid",
]

log = logging.getLogger(__name__)

OBD_REQUEST_ID = 0x7DF
"""Functional request id every emissions ECU listens on."""
OBD_RESPONSE_ID = 0x7E8
"""Response id of the engine ECU (ECU #1); its physical request id is 0x7E0."""
VIN_PATH = "Vehicle.VehicleIdentification.VIN"


@dataclass(frozen=True)
class Pid:
    """A Mode 01 PID: its data length, formula and VSS signal."""

    pid: int
    size: int
    vss: str
    decode: Callable[[bytes], VssValue]


PIDS: dict[int, Pid] = {
    p.pid: p
    for p in (
        Pid(0x0D, 1, "Vehicle.Speed", lambda d: float(d[0])),
        Pid(0x0C, 2, "Vehicle.OBD.EngineSpeed", lambda d: (256 * d[0] + d[1]) / 4),
        Pid(0x05, 1, "Vehicle.OBD.CoolantTemperature", lambda d: float(d[0] - 40)),
        Pid(0x2F, 1, "Vehicle.Powertrain.FuelSystem.RelativeLevel", lambda d: round(d[0] / 2.55)),
        Pid(0xA6, 4, "Vehicle.TraveledDistance", lambda d: int.from_bytes(d[:4], "big") / 10),
        Pid(
            0x42,
            2,
            "Vehicle.LowVoltageBattery.CurrentVoltage",
            lambda d: (256 * d[0] + d[1]) / 1000,
        ),
    )
}
"""The polled PIDs: speed, RPM, coolant temperature, fuel level, odometer, module voltage."""


class ObdClient:
    """An OBD-II tester on a python-can bus (11-bit ids, functional requests)."""

    def __init__(
        self,
        bus: can.BusABC,
        *,
        request_id: int = OBD_REQUEST_ID,
        response_id: int = OBD_RESPONSE_ID,
        timeout_s: float = 0.5,
    ) -> None:
        """Bind the tester.

        Args:
            bus: the python-can bus.
            request_id: where requests go (functional 0x7DF).
            response_id: the ECU answering (0x7E8); flow control goes to `response_id - 8`.
            timeout_s: longest wait for an answer or a consecutive frame.
        """
        self.link = IsoTpLink(
            bus, request_id, response_id, fc_id=response_id - 8, timeout_s=timeout_s
        )

    def query(self, service: int, pid: int) -> bytes:
        """Send `service pid` and return the answer's data after `service+0x40 pid`.

        Raises:
            ObdNoResponseError: no answer in time.
            ObdNegativeResponseError: the ECU answered 0x7F.
            ObdMalformedResponseError: an answer to another request, or broken ISO-TP.
        """
        try:
            self.link.send(bytes((service, pid)))
            while True:
                answer = self.link.recv()
                if answer[:1] == b"\x7f" and len(answer) >= 3 and answer[1] == service:
                    raise ObdNegativeResponseError(service, pid, answer[2])
                if len(answer) >= 2 and answer[0] == service + 0x40 and answer[1] == pid:
                    return answer[2:]
                log.debug("ignoring OBD answer %s to another request", answer.hex())
        except IsoTpTimeoutError:
            raise ObdNoResponseError(service, pid) from None
        except IsoTpError as exc:
            raise ObdMalformedResponseError(service, pid, b"", exc.reason) from None

    def read_pid(self, pid: int) -> VssValue:
        """Read one Mode 01 PID of `PIDS` and return its VSS value.

        Raises:
            KeyError: the PID is not one of `PIDS`.
            ObdError: see `query`; a short answer is `ObdMalformedResponseError`.
        """
        spec = PIDS[pid]
        data = self.query(0x01, pid)
        if len(data) < spec.size:
            raise ObdMalformedResponseError(
                1, pid, data, f"{len(data)} data bytes, {spec.size} needed"
            )
        return spec.decode(data)

    def supported_pids(self) -> set[int]:
        """Return the Mode 01 PIDs the ECU reports supported (PIDs 00, 20, 40, ... bitmaps)."""
        supported: set[int] = set()
        base = 0x00
        while base <= 0xE0:
            data = self.query(0x01, base)
            if len(data) < 4:
                raise ObdMalformedResponseError(1, base, data, "a support bitmap is 4 bytes")
            bits = int.from_bytes(data[:4], "big")
            supported |= {base + i + 1 for i in range(32) if bits >> (31 - i) & 1}
            if base + 0x20 not in supported:
                break
            base += 0x20
        return supported

    def read_vin(self) -> str:
        """Read the VIN (Mode 09 PID 02; a multi-frame ISO-TP answer).

        Raises:
            ObdError: see `query`; a VIN that is not 17 printable characters is
                `ObdMalformedResponseError`.
        """
        data = self.query(0x09, 0x02)
        if len(data) == 18 and data[0] == 1:  # number-of-data-items byte
            data = data[1:]
        vin = data.rstrip(b"\x00").decode("ascii", errors="replace")
        if len(vin) != 17 or not vin.isalnum() or not vin.isascii():
            raise ObdMalformedResponseError(9, 2, data, "a VIN is 17 ASCII letters and digits")
        return vin

    def poll(self, pids: Iterable[int] = tuple(PIDS)) -> tuple[list[Reading], list[ObdError]]:
        """Read each PID once; readings are stamped with the wall clock at the answer.

        Returns:
            The readings and the errors of the PIDs that could not be read.
        """
        readings: list[Reading] = []
        errors: list[ObdError] = []
        for pid in pids:
            try:
                value = self.read_pid(pid)
            except ObdError as exc:
                errors.append(exc)
                continue
            readings.append(Reading(time.time(), PIDS[pid].vss, value))
        return readings, errors


class ObdPoller:
    """Polls PIDs (and the VIN once a window) in a thread and hands readings to a sink."""

    def __init__(
        self,
        client: ObdClient,
        sink: Callable[[list[Reading]], None],
        *,
        interval_s: float = 1.0,
        vin_every_s: float = 60.0,
    ) -> None:
        """Bind the poller.

        Args:
            client: the OBD-II tester.
            sink: called from the poller thread with each poll's readings.
            interval_s: seconds between polls.
            vin_every_s: seconds between VIN reads.
        """
        self.client = client
        self.sink = sink
        self.interval_s = interval_s
        self.vin_every_s = vin_every_s
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pids: list[int] | None = None

    def poll_once(self, *, with_vin: bool) -> list[Reading]:
        """Poll the supported PIDs (and the VIN) once and return the readings."""
        if self._pids is None:
            try:
                supported = self.client.supported_pids()
                self._pids = [p for p in PIDS if p in supported]
            except ObdError as exc:
                log.warning("OBD-II support query failed: %s", exc)
                self._pids = list(PIDS)
        readings, errors = self.client.poll(self._pids)
        self.errors += len(errors)
        if with_vin:
            try:
                readings.append(Reading(time.time(), VIN_PATH, self.client.read_vin()))
            except ObdError as exc:
                self.errors += 1
                log.warning("VIN read failed: %s", exc)
        return readings

    def _run(self) -> None:
        next_vin = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            with_vin = now >= next_vin
            if with_vin:
                next_vin = now + self.vin_every_s
            readings = self.poll_once(with_vin=with_vin)
            if readings:
                self.sink(readings)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="bridge-obd", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
