"""The bridge loop: source -> Decoder -> windows -> sign -> queue, with the uploader behind."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import can

from device_bridge.config import BridgeSettings
from device_bridge.decoder import Decoder, Reading
from device_bridge.exceptions import BridgeConfigError
from device_bridge.keys import DeviceKey, load_device_key
from device_bridge.queue import BundleQueue
from device_bridge.sources import Source
from device_bridge.uploader import Uploader
from device_bridge.window import ClosedWindow, Sealer, Windower
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain

__all__ = ["Bridge", "BridgeStats", "domain_from_settings"]

log = logging.getLogger(__name__)


def domain_from_settings(settings: BridgeSettings) -> Eip712Domain:
    """The EIP-712 domain bundles are signed in: from the deployment record, else the settings.

    Raises:
        BridgeConfigError: neither a deployment record nor an anchor address is set.
        DeploymentError: the record cannot be read or has no AttestationAnchor.
    """
    if settings.deployment is not None:
        deployment = Deployment.load(settings.deployment)
        anchor = deployment.contract("AttestationAnchor").address
        return dimo_domain(deployment.chain_id, anchor)
    if settings.anchor_address is None:
        raise BridgeConfigError(
            "anchor_address",
            "bundles are signed for the AttestationAnchor; set DIMO_BRIDGE_DEPLOYMENT (a "
            "deployment record) or DIMO_BRIDGE_ANCHOR_ADDRESS and DIMO_BRIDGE_CHAIN_ID",
        )
    return dimo_domain(settings.chain_id, settings.anchor_address)


@dataclass
class BridgeStats:
    """What a run did.

    Attributes:
        frames: frames taken from the source.
        readings: readings decoded (CAN) or polled (OBD-II).
        bundles: bundles signed into the queue.
        held_back: closed windows held unsigned (coalesced) while the queue was full.
    """

    frames: int = 0
    readings: int = 0
    bundles: int = 0
    held_back: int = 0


class Bridge:
    """Runs frames through decoding, windowing and signing into the queue."""

    def __init__(
        self,
        decoder: Decoder,
        windower: Windower,
        sealer: Sealer,
        *,
        uploader: Uploader | None = None,
    ) -> None:
        """Wire the parts.

        Args:
            decoder: frames to readings.
            windower: readings to closed windows.
            sealer: closed windows to signed, queued bundles.
            uploader: started in the background by `run` (None: queue only).
        """
        self.decoder = decoder
        self.windower = windower
        self.sealer = sealer
        self.queue = sealer.queue
        self.uploader = uploader
        self.stats = BridgeStats()
        self._pending: ClosedWindow | None = None
        self._extra: collections.deque[list[Reading]] = collections.deque()
        self._stop = threading.Event()
        self._recorded: collections.Counter[tuple[str, str]] = collections.Counter()

    @classmethod
    def from_settings(
        cls,
        settings: BridgeSettings,
        *,
        key: DeviceKey | None = None,
        upload: bool = True,
    ) -> Bridge:
        """Build the whole bridge from settings (mapping, key, domain, queue, oracle).

        Raises:
            BridgeConfigError: no vehicle id or no signing domain.
            KeyLoadError, MappingError, DbcNotFoundError, QueueError: from their loaders.
        """
        if settings.vehicle_id is None:
            raise BridgeConfigError("vehicle_id", "set DIMO_BRIDGE_VEHICLE_ID (or --vehicle-id)")
        domain = domain_from_settings(settings)
        key = key or load_device_key(settings)
        decoder = Decoder.from_settings(settings)
        windower = Windower(settings.window_ms, lateness_ms=settings.window_lateness_ms)
        queue = BundleQueue(settings.queue_path, max_bundles=settings.queue_max_bundles)
        sealer = Sealer(queue, key, domain, settings.vehicle_id)
        uploader = Uploader.from_settings(queue, settings) if upload else None
        return cls(decoder, windower, sealer, uploader=uploader)

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, messages: Sequence[can.Message]) -> int:
        """Decode and window frames; seal the windows they close. Returns bundles sealed."""
        self.stats.frames += len(messages)
        readings = self.decoder.decode_many(messages)
        return self.feed_readings(readings)

    def feed_readings(self, readings: Sequence[Reading]) -> int:
        """Window readings (e.g. from OBD-II); seal the windows they close."""
        self.stats.readings += len(readings)
        return self._seal_all(self.windower.add(readings))

    def offer(self, readings: list[Reading]) -> None:
        """Hand readings over from another thread (the OBD-II poller); fed by `run`."""
        self._extra.append(readings)

    def tick(self, now_ms: int | None = None) -> int:
        """Close windows by the wall clock (live buses) and retry held-back windows."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return self._seal_all(self.windower.advance(now_ms))

    def flush(self) -> int:
        """Close every open window and seal it (end of a log, shutdown)."""
        return self._seal_all(self.windower.flush())

    def _seal_all(self, closed: list[ClosedWindow]) -> int:
        sealed = 0
        for window in closed:
            sealed += self._seal_or_hold(window)
        if not closed and self._pending is not None and self.queue.has_room():
            pending, self._pending = self._pending, None
            sealed += self._seal_or_hold(pending)
        return sealed

    def _seal_or_hold(self, window: ClosedWindow) -> int:
        if self._pending is not None:
            window = self.windower.coalesce(self._pending, window)
            self._pending = None
        if not self.queue.has_room():
            self._pending = window
            self.stats.held_back += 1
            log.warning(
                "queue full (%d bundles); holding windows [%d, %d) unsigned, coalesced",
                self.queue.depth(),
                window.start,
                window.end,
            )
            return 0
        self.sealer.seal(window)
        self.stats.bundles += 1
        self.record_decode_counts()
        return 1

    def record_decode_counts(self) -> None:
        """Add the implausible values counted since the last call to the queue's totals.

        `dimo bridge status` shows them by VSS signal and DBC signal.
        """
        if self.decoder is None:  # readings fed directly (tests, OBD-only bridges)
            return
        current = self.decoder.stats.implausible()
        delta = current - self._recorded
        if delta:
            self.queue.add_decode_counts(
                {f"implausible {path} <- {dbc}": n for (path, dbc), n in delta.items()}
            )
            self._recorded = current

    # -- the loop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to finish: the source stops, open windows are sealed."""
        self._stop.set()

    def run(
        self,
        source: Source,
        *,
        drain_timeout_s: float | None = 0.0,
    ) -> BridgeStats:
        """Run until the source ends or `stop()`; seal what is open; upload in the background.

        Args:
            source: where frames come from.
            drain_timeout_s: after the source ends, keep uploading until the queue is
                empty or this many seconds pass (None = until empty, 0 = do not wait).

        Returns:
            The run's counters.

        Raises:
            CanBusError: the bus failed (open windows are sealed first).
        """
        if self.uploader is not None:
            self.uploader.start()
        try:
            for batch in source.batches():
                if batch:
                    self.feed(batch)
                while self._extra:
                    self.feed_readings(self._extra.popleft())
                if source.live:
                    self.tick()
                if self._stop.is_set():
                    source.stop()
                    break
            while self._extra:
                self.feed_readings(self._extra.popleft())
        finally:
            self.flush()
            if self._pending is not None and self.queue.has_room():
                pending, self._pending = self._pending, None
                self._seal_or_hold(pending)
            self.record_decode_counts()
            source.close()
            if self.uploader is not None:
                self.uploader.stop()
        if self.uploader is not None and drain_timeout_s != 0:
            self.uploader.drain(timeout_s=drain_timeout_s)
        return self.stats
