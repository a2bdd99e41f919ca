"""What the rewards service reads from and sends to the chain, with web3.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import requests
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception

from protocol.cid import Cid, InvalidCid
from protocol.crypto import checksum_address
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain
from protocol.reverts import CustomErrors
from rewards.exceptions import ChainUnavailableError, TransactionFailed

__all__ = [
    "AnchoredBatch",
    "OnchainRoot",
    "PairingEvent",
    "Posting",
    "RewardsChain",
]

T = TypeVar("T")
_RPC_ERRORS = (Web3Exception, OSError, requests.RequestException)


@dataclass(frozen=True, slots=True)
class AnchoredBatch:
    """A batch as `BatchAnchored` reports it; `cid` in text form (`""` if it does not parse)."""

    id: int
    root: bytes
    cid: str
    count: int
    window_start: int
    window_end: int


@dataclass(frozen=True, slots=True)
class OnchainRoot:
    """An epoch's root as `epochRoot` returns it (all zero when none was posted)."""

    root: bytes
    total: int
    claimable_at: int
    vetoed: bool
    funded: bool
    cached_depth: int = 0

    @property
    def live(self) -> bool:
        """Whether a root is posted and not vetoed (claimable now or after its delay)."""
        return self.root != bytes(32) and not self.vetoed


@dataclass(frozen=True, slots=True)
class Posting:
    """A `RootPosted` event: what the quorum posted for an epoch, and where."""

    epoch: int
    root: bytes
    total: int
    cid: str
    block: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class PairingEvent:
    """`DevicePaired` or `DeviceUnpaired`, with its block's timestamp (seconds)."""

    kind: str
    device: str
    vehicle_id: int
    timestamp: int


class RewardsChain:
    """Reads epochs, batches, pairings and vehicle models; sends `post` and `fund`.

    Every RPC failure becomes `ChainUnavailableError`. Logs are read from the deployment's
    start block in ranges of at most `log_range` blocks.
    """

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        *,
        log_range: int = 10_000,
        timeout_s: float = 30.0,
    ) -> None:
        """Connects (lazily) to the chain and binds the platform's contracts.

        Args:
            rpc_url: JSON-RPC URL of the chain.
            deployment: The deployment record.
            log_range: Largest eth_getLogs range, in blocks.
            timeout_s: Seconds one request may take.
        """
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.log_range = log_range
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self.rewards = self._contract("Rewards")
        self._errors = CustomErrors([self.rewards.abi])
        self.anchor = self._contract("AttestationAnchor")
        self.vehicles = self._contract("VehicleId")
        self.devices = self._contract("DeviceId")
        self._timestamps: dict[int, int] = {}

    def _contract(self, name: str) -> Any:
        record = self.deployment.contract(name)
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(record.address), abi=record.abi
        )

    def _rpc(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except _RPC_ERRORS as exc:
            raise ChainUnavailableError(self.rpc_url, f"{what}: {exc}") from None

    # ---- domains ---------------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        """The deployment's chain id."""
        return self.deployment.chain_id

    @property
    def rewards_address(self) -> str:
        """The Rewards contract's address."""
        return str(self.rewards.address)

    def bundle_domain(self) -> Eip712Domain:
        """The domain devices sign bundles in (the AttestationAnchor's)."""
        return dimo_domain(self.chain_id, self.anchor.address)

    def root_domain(self) -> Eip712Domain:
        """The domain oracles sign rewards roots in (the Rewards contract's)."""
        return dimo_domain(self.chain_id, self.rewards.address)

    # ---- epochs ----------------------------------------------------------------------------

    def head(self) -> tuple[int, int]:
        """The latest block's number and timestamp."""
        block = self._rpc("eth_getBlockByNumber(latest)", lambda: self.w3.eth.get_block("latest"))
        return int(block["number"]), int(block["timestamp"])

    def epoch_bounds(self, epoch: int) -> tuple[int, int]:
        """Start and end (exclusive) of `epoch`, unix seconds."""
        start, end = self._rpc("epochBounds", self.rewards.functions.epochBounds(epoch).call)
        return int(start), int(end)

    def cap_of(self, epoch: int, block: int | None = None) -> int:
        """The epoch's cap in wei, at `block` (default: latest)."""
        fn = self.rewards.functions.capOf(epoch)
        return int(self._rpc("capOf", lambda: fn.call(block_identifier=block or "latest")))

    def epoch_root(self, epoch: int) -> OnchainRoot:
        """The root posted for `epoch`, all zero if none."""
        r = self._rpc("epochRoot", self.rewards.functions.epochRoot(epoch).call)
        return OnchainRoot(bytes(r[0]), int(r[1]), int(r[2]), bool(r[3]), bool(r[4]), int(r[5]))

    def posting(self, epoch: int) -> Posting | None:
        """The `RootPosted` event of the epoch's current root, or None without a live root."""
        current = self.epoch_root(epoch)
        if not current.live:
            return None
        found: Posting | None = None
        for log in self._logs(self.rewards.events.RootPosted, {"epoch": epoch}):
            args = log["args"]
            if bytes(args["root"]) != current.root:
                continue
            found = Posting(
                epoch=epoch,
                root=bytes(args["root"]),
                total=int(args["total"]),
                cid=_cid_text(bytes(args["cid"])),
                block=int(log["blockNumber"]),
                tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            )
        return found

    # ---- inputs of the formula -------------------------------------------------------------

    def last_batch_id(self) -> int:
        """The id of the last anchored batch (0 before the first)."""
        return int(self._rpc("lastBatchId", self.anchor.functions.lastBatchId().call))

    def anchored_batches(self, horizon: int) -> list[AnchoredBatch]:
        """Every anchored batch with an id up to `horizon`, in id order."""
        out = []
        for log in self._logs(self.anchor.events.BatchAnchored):
            args = log["args"]
            if int(args["id"]) > horizon:
                continue
            out.append(
                AnchoredBatch(
                    id=int(args["id"]),
                    root=bytes(args["root"]),
                    cid=_cid_text(bytes(args["cid"])),
                    count=int(args["count"]),
                    window_start=int(args["windowStart"]),
                    window_end=int(args["windowEnd"]),
                )
            )
        return sorted(out, key=lambda b: b.id)

    def pairing_events(self) -> list[PairingEvent]:
        """`DevicePaired` and `DeviceUnpaired` in chain order, with block timestamps."""
        logs = [
            *self._logs(self.devices.events.DevicePaired),
            *self._logs(self.devices.events.DeviceUnpaired),
        ]
        logs.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
        return [
            PairingEvent(
                kind=str(e["event"]),
                device=checksum_address(e["args"]["device"]),
                vehicle_id=int(e["args"]["vehicleId"]),
                timestamp=self._timestamp(int(e["blockNumber"])),
            )
            for e in logs
        ]

    def vehicle_models(self) -> dict[int, tuple[str, str]]:
        """Make and model of every vehicle, from `VehicleMinted` and `ModelRegistered`."""
        models = {
            int(e["args"]["modelId"]): (str(e["args"]["make"]), str(e["args"]["model"]))
            for e in self._logs(self.vehicles.events.ModelRegistered)
        }
        return {
            int(e["args"]["vehicleId"]): models.get(int(e["args"]["modelId"]), ("", ""))
            for e in self._logs(self.vehicles.events.VehicleMinted)
        }

    def oracle_set(self) -> tuple[list[str], int]:
        """The oracle signers and the threshold the anchor requires."""
        signers, threshold, _ = self._rpc("oracles", self.anchor.functions.oracles().call)
        return [checksum_address(s) for s in signers], int(threshold)

    def is_vetoed(self, epoch: int, root: bytes) -> bool:
        """Whether `root` was vetoed for `epoch` (then `post` refuses it for good)."""
        fn = self.rewards.functions.isVetoed(epoch, root)
        return bool(self._rpc("isVetoed", fn.call))

    def root_digest(self, epoch: int, root: bytes, total: int, cid: bytes) -> bytes:
        """The contract's own `rootDigest` (a cross-check of the off-chain one)."""
        fn = self.rewards.functions.rootDigest(epoch, root, total, cid)
        return bytes(self._rpc("rootDigest", fn.call))

    # ---- transactions ----------------------------------------------------------------------

    def post(
        self, epoch: int, root: bytes, total: int, cid: bytes, signatures: bytes, key: str
    ) -> str:
        """Sends `post` from the account of `key` and waits for it.

        Returns:
            The transaction hash.

        Raises:
            TransactionFailed: the call reverts (simulated first) or the transaction fails.
        """
        fn = self.rewards.functions.post(epoch, root, total, cid, signatures)
        return self._send(f"post of epoch {epoch}", fn, key)

    def fund(self, epoch: int, key: str) -> str:
        """Sends `fund(epoch)` from the account of `key` and waits for it."""
        return self._send(f"fund of epoch {epoch}", self.rewards.functions.fund(epoch), key)

    def cache_level(self, epoch: int, nodes: Sequence[bytes], key: str) -> str:
        """Sends `cacheLevel(epoch, nodes)` from the account of `key` and waits for it."""
        fn = self.rewards.functions.cacheLevel(epoch, list(nodes))
        return self._send(f"level cache of epoch {epoch}", fn, key)

    def _send(self, action: str, fn: Any, key: str) -> str:
        account = Account.from_key(key)
        try:
            fn.call({"from": account.address})
        except ContractLogicError as exc:
            refusal = self._errors.decode(exc.data) or exc
            raise TransactionFailed(action, f"the contract refuses it: {refusal}") from None
        except _RPC_ERRORS as exc:
            raise ChainUnavailableError(self.rpc_url, f"{action}: {exc}") from None

        def send() -> str:
            tx = fn.build_transaction(
                {
                    "from": account.address,
                    "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                    "chainId": self.chain_id,
                }
            )
            signed = account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
            if receipt["status"] != 1:
                raise TransactionFailed(action, f"transaction 0x{bytes(tx_hash).hex()} reverted")
            return "0x" + bytes(tx_hash).hex()

        return self._rpc(action, send)

    # ---- helpers ---------------------------------------------------------------------------

    def _timestamp(self, block: int) -> int:
        if block not in self._timestamps:
            got = self._rpc(f"block {block}", lambda: self.w3.eth.get_block(block))
            self._timestamps[block] = int(got["timestamp"])
        return self._timestamps[block]

    def _logs(self, event: Any, filters: dict[str, Any] | None = None) -> Iterator[Any]:
        head, _ = self.head()
        start = self.deployment.start_block
        while start <= head:
            end = min(start + self.log_range - 1, head)
            yield from self._rpc(
                f"eth_getLogs {start}..{end}", partial(_get_logs, event, start, end, filters)
            )
            start = end + 1


def _get_logs(event: Any, start: int, end: int, filters: dict[str, Any] | None) -> list[Any]:
    return list(event().get_logs(from_block=start, to_block=end, argument_filters=filters))


def _cid_text(raw: bytes) -> str:
    try:
        return Cid.from_bytes(raw).encode()
    except InvalidCid:
        return ""
