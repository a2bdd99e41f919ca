"""Frame sources: a live python-can bus (`can.Bus` + `can.Notifier`) or a replayed log."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import can

from device_bridge.config import BridgeSettings
from device_bridge.exceptions import CanBusError
from device_bridge.logs import LogFormat, LogStats, open_log

__all__ = ["BusSource", "LogSource", "ReplaySource", "Source", "open_bus"]


class Source(Protocol):
    """Where frames come from: batches of messages until the source ends or is stopped."""

    #: Whether timestamps follow the wall clock (windows then close on the clock too).
    live: bool

    def batches(self) -> Iterator[list[can.Message]]:
        """Yield batches of frames (possibly empty on a live bus, so callers can tick)."""
        ...

    def stop(self) -> None:
        """Make `batches` end soon."""
        ...

    def close(self) -> None:
        """Release the bus or file."""
        ...


def open_bus(interface: str, channel: str, *, fd: bool = False) -> can.BusABC:
    """Open one python-can bus, mapping python-can's errors to `CanBusError`.

    Raises:
        CanBusError: the interface is unknown, not installed or the channel cannot be opened.
    """
    try:
        return can.Bus(interface=interface, channel=channel, fd=fd)
    except can.CanInterfaceNotImplementedError as exc:
        raise CanBusError(interface, channel, f"interface not available: {exc}") from None
    except can.CanInitializationError as exc:
        raise CanBusError(interface, channel, f"cannot open: {exc}") from None
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        raise CanBusError(interface, channel, f"{type(exc).__name__}: {exc}") from None


class _Collector(can.Listener):
    """Collects frames from the Notifier's thread; the bridge drains them in batches."""

    def __init__(self) -> None:
        self.frames: collections.deque[can.Message] = collections.deque()
        self.error: Exception | None = None

    def on_message_received(self, msg: can.Message) -> None:
        self.frames.append(msg)

    def on_error(self, exc: Exception) -> None:
        self.error = exc


class BusSource:
    """Live frames from one or more python-can buses through a `can.Notifier`."""

    live = True

    def __init__(
        self,
        interface: str,
        channels: Sequence[str],
        *,
        fd: bool = False,
        tick_s: float = 0.05,
    ) -> None:
        """Open the buses and start the notifier.

        Args:
            interface: python-can interface (`socketcan`, `virtual`, ...).
            channels: channels to read; each message keeps its `channel`.
            fd: CAN-FD.
            tick_s: how often `batches` hands over what arrived.

        Raises:
            CanBusError: a bus cannot be opened.
        """
        self.interface = interface
        self.channels = list(channels)
        self.tick_s = tick_s
        self.buses: list[can.BusABC] = []
        try:
            for channel in self.channels:
                self.buses.append(open_bus(interface, channel, fd=fd))
        except CanBusError:
            self.close()
            raise
        self._collector = _Collector()
        self.notifier = can.Notifier(self.buses, [self._collector], timeout=0.2)
        self._stop = threading.Event()

    @classmethod
    def from_settings(cls, settings: BridgeSettings) -> BusSource:
        """Open the bus the settings name (`can_interface`, comma-separated `can_channel`)."""
        channels = [c.strip() for c in settings.can_channel.split(",") if c.strip()]
        return cls(settings.can_interface, channels, fd=settings.can_fd)

    def batches(self) -> Iterator[list[can.Message]]:
        """Yield what arrived every `tick_s` until `stop()`.

        Raises:
            CanBusError: the notifier reported a bus error.
        """
        frames = self._collector.frames
        while not self._stop.is_set():
            self._stop.wait(self.tick_s)
            if self._collector.error is not None:
                exc = self._collector.error
                raise CanBusError(self.interface, ",".join(self.channels), str(exc))
            batch = [frames.popleft() for _ in range(len(frames))]
            yield batch

    def stop(self) -> None:
        """End `batches` at the next tick."""
        self._stop.set()

    def close(self) -> None:
        """Stop the notifier and shut the buses down."""
        notifier = getattr(self, "notifier", None)
        if notifier is not None:
            notifier.stop()
        for bus in self.buses:
            bus.shutdown()
        self.buses = []


class ReplaySource:
    """Recorded frames, replayed at recorded speed (scaled) or as fast as possible.

    With `rebase`, timestamps are shifted onto the wall clock (the messages are modified in
    place): at speed > 0 the first frame becomes "now"; at speed 0 the last frame becomes
    "now", so an as-fast replay ends in the present and the oracle never sees future windows.
    """

    def __init__(
        self,
        messages: Callable[[], Iterable[can.Message]],
        *,
        speed: float = 0.0,
        rebase: bool = True,
        batch_size: int = 2048,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Bind the replay.

        Args:
            messages: returns a fresh iterable of the recording's frames in time order.
            speed: 1.0 recorded pace, 4.0 four times faster, 0 as fast as possible.
            rebase: shift timestamps onto the wall clock.
            batch_size: most frames per batch when replaying as fast as possible.
            clock: wall clock in seconds.
        """
        self._messages = messages
        self.speed = speed
        self.rebase = rebase
        self.batch_size = batch_size
        self._clock = clock
        self._stop = threading.Event()
        self.live = speed > 0

    def _offset(self) -> float:
        if not self.rebase:
            return 0.0
        if self.speed > 0:
            first = next(iter(self._messages()), None)
            return 0.0 if first is None else self._clock() - first.timestamp
        last: float | None = None
        for message in self._messages():
            last = message.timestamp
        return 0.0 if last is None else self._clock() - last

    def batches(self) -> Iterator[list[can.Message]]:
        """Yield the recording in batches, pacing them when `speed` > 0."""
        offset = self._offset()
        batch: list[can.Message] = []
        if self.speed <= 0:
            for message in self._messages():
                message.timestamp += offset
                batch.append(message)
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
                    if self._stop.is_set():
                        return
            if batch:
                yield batch
            return
        start_wall: float | None = None
        start_log = 0.0
        for message in self._messages():
            if start_wall is None:
                start_wall, start_log = time.monotonic(), message.timestamp
            due = start_wall + (message.timestamp - start_log) / self.speed
            ahead = due - time.monotonic()
            if ahead > 0.02:  # sleep in slices so pacing costs few wake-ups
                if batch:
                    yield batch
                    batch = []
                if self._stop.wait(ahead):
                    return
            message.timestamp += offset
            batch.append(message)
        if batch:
            yield batch

    def stop(self) -> None:
        """End the replay at the next batch."""
        self._stop.set()

    def close(self) -> None:
        """Nothing to release."""


class LogSource(ReplaySource):
    """A recorded log file (see `device_bridge.logs`) replayed as a source."""

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 0.0,
        rebase: bool = True,
        fmt: LogFormat | str | None = None,
        time_unit: str | None = None,
        known_ids: Iterable[int] = (),
    ) -> None:
        """Bind the log (its format is told from the content unless `fmt` is given).

        Raises:
            LogFormatError: the format is unknown or cannot be told.
        """
        self.log = open_log(path, fmt, time_unit=time_unit, known_ids=known_ids)
        super().__init__(lambda: self.log, speed=speed, rebase=rebase)

    @property
    def stats(self) -> LogStats:
        """Frames read and bad records of the last pass over the file."""
        return self.log.stats
