"""The simulated fleet: one device bridge per registered vehicle, fed by the simulator's CAN
frames on an accelerated clock, so that the traffic flows bridge -> oracle -> anchor -> indexer.

The fleet's clock starts where it stopped (or just after the pairings, on a fresh chain that
anvil started `history_days` in the past) and runs `time_factor` times faster than the wall
clock until it reaches the present; then it runs in real time (or stops, with `live` off). On
the local chain the block clock is moved forward with it (`evm_setTime`), so anchors, epochs
and readings share one timeline. Each vehicle is simulated a day at a time, each day starting
from the previous day's odometer and charge, so a resumed fleet drives the same cars on.

Files in `<data>/fleet/`: `fleet.json` (what is registered), `state.json` (where each vehicle
stopped, its days' starting state), `queues/` (each bridge's durable queue), `ledger.sqlite`
(every bundle sealed: device, sequence, leaf hash) and `progress.json` (for the stack's display).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import can
import httpx

from device_bridge.config import BridgeSettings
from device_bridge.decoder import Decoder, Reading
from device_bridge.keys import DeviceKey
from device_bridge.obd import VIN_PATH, ObdClient
from device_bridge.obd_sim import SimulatedEcu
from device_bridge.queue import BundleQueue, leaf_hash
from device_bridge.runner import Bridge
from device_bridge.simulator.encoding import Frame, FrameEncoder, frames_to_messages
from device_bridge.simulator.fleet import FleetOptions, fleet_configs
from device_bridge.simulator.vehicle import VehicleConfig, simulate_vehicle
from device_bridge.uploader import Uploader
from device_bridge.window import ClosedWindow, Sealer, Windower
from protocol.bundle import SignedBundle
from protocol.deployment import Deployment
from protocol.eip712 import dimo_domain
from stack.chain import rpc
from stack.seed import FleetVehicle, device_key, load_fleet

__all__ = [
    "FleetRunner",
    "Ledger",
    "SealedBundle",
    "SimClock",
    "VehicleDays",
    "ecu_vin",
    "fleet_dir",
]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
#: Oldest window the fleet sends after a long pause: inside the oracle's 7-day acceptance.
MAX_BACKLOG_MS = 6 * DAY_MS
#: Simulated time between two VIN reads of a bridge (OBD-II Mode 09 PID 02).
VIN_EVERY_MS = 3_600_000


def ecu_vin(vin: str, channel: str) -> str:
    """The VIN as a device reads it from the car: OBD-II Mode 09 PID 02, a multi-frame ISO-TP
    answer of the simulated engine ECU on a python-can virtual bus `channel`.

    Raises:
        ObdError: the ECU's answer is missing or malformed.
    """
    with SimulatedEcu(channel, {}, vin):
        bus = can.Bus(interface="virtual", channel=channel)
        try:
            return ObdClient(bus).read_vin()
        finally:
            bus.shutdown()


def fleet_dir(data_dir: Path) -> Path:
    """The fleet's folder inside the data folder."""
    return data_dir / "fleet"


class SimClock:
    """Simulated time: `factor` times the wall clock from `start_ms`, never past the present."""

    def __init__(self, start_ms: int, factor: float, wall: Callable[[], float] = time.time) -> None:
        self.start_ms = start_ms
        self.factor = factor
        self._wall = wall
        self._w0 = wall()

    def read(self) -> tuple[int, bool]:
        """The simulated time (epoch ms) and whether it has reached the present."""
        wall = self._wall()
        sim_ms = self.start_ms + int((wall - self._w0) * 1000 * self.factor)
        wall_ms = int(wall * 1000)
        return min(wall_ms, sim_ms), sim_ms >= wall_ms


class SealedBundle(NamedTuple):
    """A bundle the fleet sealed, and one reading it carries."""

    device: str
    sequence: int
    vehicle_id: int
    window_start: int
    window_end: int
    leaf_hash: bytes
    signal: str
    ts: int


class Ledger:
    """Every bundle the fleet sealed: what the end-to-end check holds the platform to."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._pending: list[tuple[Any, ...]] = []
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sealed (device TEXT NOT NULL, sequence INTEGER NOT NULL, "
            "vehicle_id INTEGER NOT NULL, window_start INTEGER NOT NULL, window_end INTEGER NOT "
            "NULL, leaf_hash BLOB NOT NULL, signal TEXT NOT NULL, ts INTEGER NOT NULL, "
            "PRIMARY KEY (device, sequence))"
        )
        self._db.commit()
        self._lock = threading.Lock()

    def record(self, signed: SignedBundle) -> None:
        """Notes one sealed bundle, with one of its readings (its first signal's first); `flush`
        writes what was noted (the bridge's own queue is what keeps the bundle durable)."""
        b = signed.bundle
        signal = min(b.readings)
        ts = int(b.readings[signal][0][0])
        row = (b.device, b.sequence, b.vehicle_id, b.window_start, b.window_end)
        with self._lock:
            self._pending.append((*row, leaf_hash(signed), signal, ts))

    def flush(self) -> None:
        """Writes the bundles noted since the last flush, in one transaction."""
        with self._lock:
            pending, self._pending = self._pending, []
            if pending:
                self._db.executemany(
                    "INSERT OR REPLACE INTO sealed VALUES (?, ?, ?, ?, ?, ?, ?, ?)", pending
                )
                self._db.commit()

    def sealed_until(self, vehicle_id: int) -> int:
        """The end (epoch ms) of the last window sealed for the vehicle, else 0."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(window_end) FROM sealed WHERE vehicle_id = ?", (vehicle_id,)
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def rows(self) -> list[SealedBundle]:
        """Every sealed bundle, by device and sequence."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM sealed ORDER BY device, sequence").fetchall()
        return [SealedBundle(*row) for row in rows]

    def close(self) -> None:
        """Writes what is noted and closes the database."""
        self.flush()
        self._db.close()


class _LedgerSealer(Sealer):
    """A sealer that also records each bundle in the ledger and how far it has sealed."""

    def __init__(self, ledger: Ledger, *args: Any) -> None:
        super().__init__(*args)
        self.ledger = ledger
        self.sealed_until = 0

    def seal(self, window: ClosedWindow) -> SignedBundle:
        signed = super().seal(window)
        self.ledger.record(signed)
        # durable before the next window: a restart resumes after the last sealed window
        # (re-sealing one would send a second, conflicting bundle for the same window)
        self.ledger.flush()
        self.sealed_until = max(self.sealed_until, window.end)
        return signed


@dataclass
class VehicleDays:
    """One vehicle simulated a day at a time, each day from the previous day's end state.

    Attributes:
        base: the vehicle's configuration on day 0.
        day0: the fleet's first day (UTC).
        starts: odometer (km) and state of charge (%) at the start of each simulated day.
    """

    base: VehicleConfig
    day0: dt.date
    starts: dict[int, tuple[float, float]] = field(default_factory=dict)

    def config(self, day: int) -> VehicleConfig:
        """The vehicle's configuration on `day` (its own seed, the day's starting state)."""
        while day not in self.starts:
            known = max(self.starts, default=-1)
            if known < 0:
                self.starts[0] = (self.base.odometer_km, self.base.soc)
                continue
            self._simulate(known)
        odometer, soc = self.starts[day]
        seed = random.Random(f"{self.base.seed}:{day}").getrandbits(63)
        return VehicleConfig(
            index=self.base.index,
            model=self.base.model,
            seed=seed,
            soh_percent=self.base.soh_percent,
            odometer_km=odometer,
            soc=max(10.0, soc),
        )

    def _simulate(self, day: int) -> Any:
        date = self.day0 + dt.timedelta(days=day)
        midnight = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
        trace = simulate_vehicle(
            self.config(day), int(midnight.timestamp()) * 1_000_000, 1, date.weekday()
        )
        self.starts[day + 1] = (trace.truth.odometer_end_km, trace.truth.soc_end)
        return trace

    def frames(self, encoder: FrameEncoder, rate_scale: float, from_ms: int) -> Iterator[Frame]:
        """The vehicle's frames from `from_ms` on, day after day, without end."""
        midnight0 = dt.datetime(self.day0.year, self.day0.month, self.day0.day, tzinfo=dt.UTC)
        day = max(0, (from_ms - int(midnight0.timestamp()) * 1000) // DAY_MS)
        from_us = from_ms * 1000
        while True:
            trace = self._simulate(day)
            for frame in encoder.frames(trace, rate_scale):
                if frame.t_us >= from_us:
                    yield frame
            day += 1


class _Car:
    """One vehicle's bridge and frame stream, and the VIN its device read from the ECU."""

    def __init__(
        self, vehicle: FleetVehicle, bridge: Bridge, frames: Iterator[Frame], vin: str = ""
    ) -> None:
        self.vehicle = vehicle
        self.bridge = bridge
        self.sealer: _LedgerSealer = bridge.sealer  # type: ignore[assignment]
        self.vin = vin
        self.next_vin_ms = 0
        self._frames = frames
        self._next: Frame | None = next(frames, None)

    def advance(self, now_ms: int) -> None:
        """Feeds every frame up to `now_ms` to the bridge, and the VIN once every
        `VIN_EVERY_MS` (as a device polls Mode 09), and closes windows by then."""
        batch = []
        horizon = now_ms * 1000
        while self._next is not None and self._next.t_us <= horizon:
            batch.append(self._next)
            self._next = next(self._frames, None)
        if batch:
            self.bridge.feed(list(frames_to_messages(batch)))
        if self.vin and now_ms >= self.next_vin_ms:
            self.bridge.feed_readings([Reading(now_ms / 1000, VIN_PATH, self.vin)])
            self.next_vin_ms = now_ms + VIN_EVERY_MS
        self.bridge.tick(now_ms)


class FleetRunner:
    """Runs the fleet's bridges on the simulated clock until stopped."""

    def __init__(
        self,
        data_dir: Path,
        deployment_path: Path,
        oracle_url: str,
        rpc_url: str,
        *,
        factor: float,
        rate_scale: float,
        dbc_dir: Path,
        warp_chain: bool,
        live: bool = True,
        window_ms: int = 10_000,
    ) -> None:
        self.dir = fleet_dir(data_dir)
        self.fleet = load_fleet(self.dir / "fleet.json")
        self.seed = json.loads((self.dir / "fleet.json").read_text())["seed"]
        self.deployment = Deployment.load(deployment_path)
        self.oracle_url = oracle_url
        self.rpc_url = rpc_url
        self.factor = factor
        self.rate_scale = rate_scale
        self.dbc_dir = dbc_dir
        self.warp_chain = warp_chain
        self.live = live
        self.window_ms = window_ms
        self.stop_event = threading.Event()
        self.ledger = Ledger(self.dir / "ledger.sqlite")
        self._state_path = self.dir / "state.json"
        self._state: dict[str, Any] = (
            json.loads(self._state_path.read_text()) if self._state_path.exists() else {}
        )
        self.cars: list[_Car] = []
        self.days: dict[int, VehicleDays] = {}

    # -- setup -----------------------------------------------------------------------------

    def _build(self, wall_ms: int) -> int:
        """Builds every car; returns where the clock starts: where it stopped last time, else
        at the first pairing (each car replays from the end of its last sealed window)."""
        options = FleetOptions(
            vehicles=len(self.fleet),
            seed=self.seed,
            models=tuple(dict.fromkeys(v.model for v in self.fleet)),
        )
        bases = {c.index: c for c in fleet_configs(options)}
        first_pairing = min(v.paired_at for v in self.fleet)
        day0 = dt.datetime.fromtimestamp(first_pairing, dt.UTC).date()
        domain = dimo_domain(
            self.deployment.chain_id, self.deployment.contract("AttestationAnchor").address
        )
        encoders: dict[str, FrameEncoder] = {}
        vehicles_state = self._state.get("vehicles", {})
        starts = []
        for v in self.fleet:
            mine = vehicles_state.get(str(v.index), {})
            base = bases[v.index]
            base = VehicleConfig(
                index=v.index,
                model=v.model,
                seed=base.seed,
                soh_percent=base.soh_percent,
                odometer_km=base.odometer_km,
                soc=base.soc,
            )
            days = VehicleDays(base, day0)
            saved = mine.get("days", {}).items()
            days.starts = {int(k): (float(a), float(b)) for k, (a, b) in saved}
            self.days[v.index] = days
            after_pairing = (v.paired_at * 1000 // self.window_ms + 2) * self.window_ms
            sealed_until = max(
                int(mine.get("sealed_until", 0)), self.ledger.sealed_until(v.vehicle_id)
            )
            from_ms = max(after_pairing, sealed_until, wall_ms - MAX_BACKLOG_MS)
            starts.append(from_ms)
            settings = BridgeSettings(
                mapping=v.model,
                dbc_dir=self.dbc_dir,
                vehicle_id=v.vehicle_id,
                queue_path=self.dir / "queues" / f"vehicle-{v.index:04d}.sqlite",
                oracle_url=self.oracle_url,
                window_ms=self.window_ms,
                upload_batch_size=200,
                retry_max_s=5.0,
            )
            settings.queue_path.parent.mkdir(parents=True, exist_ok=True)
            key = DeviceKey.from_private_key(bytes(device_key(self.seed, v.index).key))
            queue = BundleQueue(settings.queue_path, max_bundles=settings.queue_max_bundles)
            sealer = _LedgerSealer(self.ledger, queue, key, domain, v.vehicle_id)
            sealer.sealed_until = from_ms
            bridge = Bridge(
                Decoder.from_settings(settings),
                Windower(settings.window_ms, lateness_ms=settings.window_lateness_ms),
                sealer,
                uploader=Uploader.from_settings(queue, settings),
            )
            if v.model not in encoders:
                encoders[v.model] = FrameEncoder(v.model, dbc_dir=self.dbc_dir)
            frames = days.frames(encoders[v.model], self.rate_scale, from_ms)
            vin = ecu_vin(v.vin, f"dimo-fleet-vin-{id(self)}-{v.index}") if v.vin else ""
            self.cars.append(_Car(v, bridge, frames, vin))
        saved = self._state.get("clock_ms")
        if saved is None:
            return min(starts)
        return max(int(saved), wall_ms - MAX_BACKLOG_MS)

    # -- state -----------------------------------------------------------------------------

    def _save(self, sim_ms: int, caught_up: bool, done: bool) -> None:
        vehicles = {
            str(car.vehicle.index): {
                "sealed_until": car.sealer.sealed_until,
                "days": {str(d): list(s) for d, s in self.days[car.vehicle.index].starts.items()},
            }
            for car in self.cars
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"clock_ms": sim_ms, "vehicles": vehicles}))
        tmp.replace(self._state_path)
        counters = {"sealed": 0, "accepted": 0, "duplicate": 0, "rejected": 0, "waiting": 0}
        for car in self.cars:
            for name, value in car.bridge.queue.counters().items():
                counters[name] = counters.get(name, 0) + value
            counters["waiting"] += car.bridge.queue.depth()
        progress = {
            "sim_ms": sim_ms,
            "caught_up": caught_up,
            "done": done,
            "vehicles": len(self.cars),
            **counters,
        }
        tmp = (self.dir / "progress.json").with_suffix(".tmp")
        tmp.write_text(json.dumps(progress))
        tmp.replace(self.dir / "progress.json")

    def _warp(self, now_ms: int) -> None:
        """Moves the local chain's clock forward to the simulated time (never back)."""
        try:
            head = rpc(self.rpc_url, "eth_getBlockByNumber", ["latest", False])
            assert isinstance(head, dict)
            if now_ms // 1000 > int(head["timestamp"], 16) + 1:
                rpc(self.rpc_url, "evm_setTime", [now_ms // 1000])
        except (httpx.HTTPError, RuntimeError) as exc:
            log.warning("could not move the chain clock: %s", exc)

    # -- the loop --------------------------------------------------------------------------

    def run(self, tick_s: float = 0.2) -> None:
        """Drives the fleet until `stop_event` (or, with `live` off, until it has caught up
        with the present and every bundle has its receipt)."""
        if not self.fleet:
            log.warning("no vehicles registered; the fleet has nothing to drive")
            return
        start_ms = self._build(int(time.time() * 1000))
        clock = SimClock(start_ms, self.factor)
        for car in self.cars:
            car.bridge.uploader.start()  # type: ignore[union-attr]
        last_save = last_warp = 0.0
        done = caught_up = synced = False
        now_ms = start_ms
        try:
            while not self.stop_event.is_set():
                began = time.monotonic()
                now_ms, caught_up = clock.read()
                for car in self.cars:
                    car.advance(now_ms)
                self.ledger.flush()
                if self.warp_chain and (began - last_warp >= 1.0 or caught_up) and not synced:
                    self._warp(now_ms)
                    last_warp = began
                    synced = caught_up  # once in the present, the chain's own clock keeps up
                if began - last_save >= 1.0:
                    self._save(now_ms, caught_up, done=False)
                    last_save = began
                if not self.live and caught_up:
                    done = True
                    break
                self.stop_event.wait(max(0.0, tick_s - (time.monotonic() - began)))
        finally:
            for car in self.cars:
                if done:
                    car.bridge.flush()
                car.bridge.uploader.stop()  # type: ignore[union-attr]
            if done:
                for car in self.cars:
                    while not self.stop_event.is_set() and car.bridge.queue.depth():
                        car.bridge.uploader.drain(timeout_s=1.0)  # type: ignore[union-attr]
            self._save(now_ms, caught_up, done=done)
            for car in self.cars:
                car.bridge.uploader.close()  # type: ignore[union-attr]
                car.bridge.queue.close()
            self.ledger.close()
        if done:  # idle until stopped, so that the stack does not take it for a crash
            while not self.stop_event.wait(1.0):
                pass
