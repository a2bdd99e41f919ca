"""A small ISO-TP (ISO 15765-2) link over a python-can bus: SF, FF, FC and CF frames."""

from __future__ import annotations

import time
from collections.abc import Iterable

import can

from device_bridge.exceptions import IsoTpProtocolError, IsoTpTimeoutError

__all__ = ["IsoTpLink"]

_SF, _FF, _CF, _FC = 0x0, 0x1, 0x2, 0x3
_FC_CTS, _FC_WAIT, _FC_OVERFLOW = 0, 1, 2
_MAX_LEN = 4095


def _st_min_seconds(raw: int) -> float:
    if raw <= 0x7F:
        return raw / 1000
    if 0xF1 <= raw <= 0xF9:
        return (raw - 0xF0) / 10_000
    return 0.127  # reserved values: the longest allowed


class IsoTpLink:
    """One ISO-TP addressing pair on a classic CAN bus (8-byte frames, normal addressing)."""

    def __init__(
        self,
        bus: can.BusABC,
        tx_id: int,
        rx_ids: int | Iterable[int],
        *,
        fc_id: int | None = None,
        timeout_s: float = 1.0,
        block_size: int = 0,
        st_min: int = 0,
        padding: int = 0xCC,
    ) -> None:
        """Bind the link.

        Args:
            bus: the python-can bus.
            tx_id: id our single/first/consecutive frames go out on.
            rx_ids: id(s) we receive frames on.
            fc_id: id our flow-control frames go out on (`tx_id` if None; the physical
                request id when `tx_id` is the functional 0x7DF).
            timeout_s: N_Bs / N_Cr: longest wait for the next frame.
            block_size: BS we announce in our flow control (0 = no further FC).
            st_min: STmin we announce (raw byte).
            padding: byte that fills frames to 8 bytes.
        """
        self.bus = bus
        self.tx_id = tx_id
        self.rx_ids = frozenset((rx_ids,) if isinstance(rx_ids, int) else rx_ids)
        self.fc_id = tx_id if fc_id is None else fc_id
        self.timeout_s = timeout_s
        self.block_size = block_size
        self.st_min = st_min
        self.padding = padding
        self.last_rx_id: int | None = None

    def _frame(self, arbitration_id: int, data: bytes) -> None:
        padded = data + bytes((self.padding,)) * (8 - len(data))
        self.bus.send(can.Message(arbitration_id=arbitration_id, data=padded, is_extended_id=False))

    def _next(self, deadline: float) -> can.Message:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise IsoTpTimeoutError(min(self.rx_ids), "no frame within the timeout")
            msg = self.bus.recv(left)
            if msg is None:
                continue
            if msg.arbitration_id in self.rx_ids and not msg.is_error_frame and msg.data:
                return msg

    def send(self, payload: bytes) -> None:
        """Send a payload of up to 4095 bytes, honouring the receiver's flow control.

        Raises:
            IsoTpTimeoutError: no flow control came (N_Bs).
            IsoTpProtocolError: the payload is too long, or the receiver signalled overflow.
        """
        n = len(payload)
        if n > _MAX_LEN:
            raise IsoTpProtocolError(self.tx_id, f"payload of {n} bytes exceeds {_MAX_LEN}")
        if n <= 7:
            self._frame(self.tx_id, bytes((n,)) + payload)
            return
        self._frame(self.tx_id, bytes((0x10 | n >> 8, n & 0xFF)) + payload[:6])
        offset, index = 6, 1
        while offset < n:
            block, separation = self._await_flow_control()
            sent = 0
            while offset < n and (block == 0 or sent < block):
                if separation and sent:
                    time.sleep(separation)
                self._frame(self.tx_id, bytes((0x20 | index & 0xF,)) + payload[offset : offset + 7])
                offset += 7
                index += 1
                sent += 1

    def _await_flow_control(self) -> tuple[int, float]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._next(deadline)
            kind = msg.data[0] >> 4
            if kind != _FC:
                continue
            flag = msg.data[0] & 0xF
            if flag == _FC_WAIT:
                deadline = time.monotonic() + self.timeout_s
                continue
            if flag == _FC_OVERFLOW:
                raise IsoTpProtocolError(self.tx_id, "the receiver reported overflow")
            if flag != _FC_CTS or len(msg.data) < 3:
                raise IsoTpProtocolError(self.tx_id, f"bad flow control {bytes(msg.data).hex()}")
            return msg.data[1], _st_min_seconds(msg.data[2])

    def recv(self, timeout_s: float | None = None) -> bytes:
        """Receive one payload (single frame, or first frame + consecutive frames).

        Args:
            timeout_s: longest wait for the first frame (`timeout_s` of the link if None).

        Raises:
            IsoTpTimeoutError: nothing came, or a consecutive frame is late (N_Cr).
            IsoTpProtocolError: a wrong sequence number, a bad length or frame type.
        """
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            msg = self._next(deadline)
            data = bytes(msg.data)
            kind = data[0] >> 4
            if kind == _SF:
                size = data[0] & 0xF
                if not 1 <= size <= len(data) - 1:
                    raise IsoTpProtocolError(msg.arbitration_id, f"single frame length {size}")
                self.last_rx_id = msg.arbitration_id
                return data[1 : 1 + size]
            if kind == _FF:
                self.last_rx_id = msg.arbitration_id
                return self._receive_segmented(msg.arbitration_id, data)
            # stray CF/FC: not the start of a message; wait for one

    def _receive_segmented(self, rx_id: int, first: bytes) -> bytes:
        size = (first[0] & 0xF) << 8 | first[1]
        if size < 8:
            raise IsoTpProtocolError(rx_id, f"first frame announces only {size} bytes")
        out = bytearray(first[2:8])
        expected = 1
        while len(out) < size:
            self._frame(self.fc_id, bytes((0x30 | _FC_CTS, self.block_size, self.st_min)))
            received = 0
            while len(out) < size and (self.block_size == 0 or received < self.block_size):
                msg = self._next(time.monotonic() + self.timeout_s)
                data = bytes(msg.data)
                if data[0] >> 4 != _CF:
                    raise IsoTpProtocolError(rx_id, f"expected a consecutive frame: {data.hex()}")
                if data[0] & 0xF != expected & 0xF:
                    raise IsoTpProtocolError(
                        rx_id, f"consecutive frame {data[0] & 0xF}, expected {expected & 0xF}"
                    )
                out += data[1:8]
                expected += 1
                received += 1
        return bytes(out[:size])
