"""Device lookups on-chain: is a device minted, which vehicle it is paired to, since when."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import BlockIdentifier

from oracle.exceptions import ChainUnavailableError, UnknownDevice, UnpairedDevice
from protocol.crypto import checksum_address
from protocol.deployment import Deployment

#: Events of `DeviceId` after which a cached answer about their `device` topic is stale.
WATCHED_EVENTS = ("DeviceMinted", "DevicePaired", "DeviceUnpaired")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the chain says about one device.

    Attributes:
        device: The device's address (EIP-55).
        minted: Whether `DeviceId` holds the device.
        vehicle_id: The paired vehicle, or 0.
        paired_since_s: Unix time (seconds) of the pairing, or 0.
        block: The block the answer was read at.
    """

    device: str
    minted: bool
    vehicle_id: int
    paired_since_s: int
    block: int

    def check(self, vehicle_id: int, window_start_ms: int) -> None:
        """Checks that this device may attest `vehicle_id` for a window starting then.

        Raises:
            UnknownDevice: the device is not minted.
            UnpairedDevice: it is not paired to `vehicle_id`, or was paired after the start.
        """
        if not self.minted:
            raise UnknownDevice(self.device)
        if (
            self.vehicle_id != vehicle_id
            or vehicle_id == 0
            or self.paired_since_s * 1000 > window_start_ms
        ):
            raise UnpairedDevice(self.device, vehicle_id, self.vehicle_id, self.paired_since_s)


class DeviceDirectory:
    """Cached `DeviceId.deviceInfo` answers, invalidated by the contract's pairing logs.

    A cached answer costs no RPC. Before answering, when the last poll is older than
    `ttl_s` (or a device is not cached), new `DeviceMinted`/`DevicePaired`/`DeviceUnpaired`
    logs since the last seen block are fetched with one `eth_getLogs` and the devices they
    name are dropped from the cache, so a pairing change is seen on the next lookup after
    it is mined (within `ttl_s`). Thread-safe.
    """

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        *,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = 10.0,
    ) -> None:
        """Connects to the chain; no RPC is made until the first lookup.

        Args:
            rpc_url: JSON-RPC URL of the chain.
            deployment: The deployment record (address and ABI of `DeviceId`).
            ttl_s: Seconds a poll of the pairing logs is trusted.
            clock: Monotonic clock in seconds (injectable for tests).
            timeout_s: HTTP timeout of each RPC.
        """
        self.rpc_url = rpc_url
        self.ttl_s = ttl_s
        self._clock = clock
        record = deployment.contract("DeviceId")
        self._w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self._contract = self._w3.eth.contract(
            address=Web3.to_checksum_address(record.address), abi=record.abi
        )
        self._abi = record.abi
        self._address = self._contract.address
        self._topics = [
            "0x" + bytes(self._w3.keccak(text=self._signature(name))).hex()
            for name in WATCHED_EVENTS
        ]
        self._cache: dict[str, DeviceInfo] = {}
        self._last_block: int | None = None
        self._polled_at = float("-inf")
        self._lock = threading.Lock()

    def _signature(self, event: str) -> str:
        for entry in self._abi:
            if entry.get("type") == "event" and entry.get("name") == event:
                args = ",".join(str(i["type"]) for i in entry.get("inputs", []))
                return f"{event}({args})"
        raise ValueError(f"the DeviceId ABI has no event {event}; redeploy and reload")

    # ----------------------------------------------------------------------------------------

    def is_fresh(self, devices: Iterable[str]) -> bool:
        """Whether `lookup` of all `devices` would be answered from the cache without RPC."""
        if self._clock() - self._polled_at > self.ttl_s:
            return False
        cache = self._cache
        return all(d in cache for d in devices)

    def cached(self, device: str) -> DeviceInfo | None:
        """The cached answer for a checksummed `device`, if any (never makes an RPC)."""
        return self._cache.get(device)

    def prepare(self, devices: Iterable[str]) -> None:
        """Polls the pairing logs if stale and loads every device not cached.

        Args:
            devices: Checksummed device addresses about to be looked up.

        Raises:
            ChainUnavailableError: the node did not answer.
        """
        wanted = list(dict.fromkeys(devices))
        with self._lock:
            if self._clock() - self._polled_at > self.ttl_s or any(
                d not in self._cache for d in wanted
            ):
                self._poll()
            for device in wanted:
                if device not in self._cache:
                    self._cache[device] = self._read(device)

    def lookup(self, device: str) -> DeviceInfo:
        """The chain's answer for `device`, from the cache when it is fresh.

        Raises:
            ChainUnavailableError: the node did not answer.
        """
        device = checksum_address(device)
        if not self.is_fresh((device,)):
            self.prepare((device,))
        return self._cache[device]

    def invalidate(self, device: str | None = None) -> None:
        """Drops one device (or all) from the cache."""
        with self._lock:
            if device is None:
                self._cache.clear()
            else:
                self._cache.pop(checksum_address(device), None)

    # ----------------------------------------------------------------------------------------

    def _rpc(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (ContractLogicError, ContractCustomError):
            raise
        except Exception as exc:  # requests/aiohttp/JSON-RPC errors of any kind
            raise ChainUnavailableError(self.rpc_url, f"{what}: {exc}") from exc

    def _poll(self) -> None:
        head = int(self._rpc("eth_blockNumber", lambda: self._w3.eth.block_number))
        polled = self._clock()
        if self._last_block is None:
            # Nothing is cached yet that a log could make stale.
            self._cache.clear()
        elif head > self._last_block:
            logs = self._rpc(
                "eth_getLogs",
                lambda: self._w3.eth.get_logs(
                    {
                        "address": self._address,
                        "fromBlock": self._last_block + 1,  # type: ignore[operator]
                        "toBlock": head,
                        "topics": [self._topics],
                    }
                ),
            )
            for log in logs:
                topics = log["topics"]
                if len(topics) > 1:
                    self._cache.pop(checksum_address(bytes(topics[1])[-20:]), None)
        elif head < self._last_block:
            # The chain went back (reorg or a reverted snapshot): trust nothing cached.
            self._cache.clear()
        self._last_block = head
        self._polled_at = polled

    def _read(self, device: str) -> DeviceInfo:
        block: BlockIdentifier = self._last_block if self._last_block is not None else "latest"
        fn = self._contract.functions.deviceInfo(device)
        try:
            _, vehicle_id, _, paired_since = self._rpc(
                "deviceInfo", lambda: fn.call(block_identifier=block)
            )
        except (ContractLogicError, ContractCustomError):
            # deviceInfo reverts with DeviceIdUnknownDevice for a device never minted.
            return DeviceInfo(device, False, 0, 0, int(self._last_block or 0))
        return DeviceInfo(
            device, True, int(vehicle_id), int(paired_since), int(self._last_block or 0)
        )
