"""Submission of quorum-signed batches to the AttestationAnchor contract with web3.py."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound

from oracle.exceptions import ChainUnavailableError, OracleError
from protocol.cid import Cid
from protocol.crypto import keccak256
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain, type_hash

__all__ = [
    "ANCHOR_BATCH_TYPE",
    "ANCHOR_BATCH_TYPEHASH",
    "FEE_BUMP_NUMERATOR",
    "AnchorConflictError",
    "AnchorRevertedError",
    "Anchorer",
    "BatchHeader",
    "Fees",
    "SentTx",
    "batch_digest",
    "batch_struct_hash",
    "bump_fees",
]

log = logging.getLogger(__name__)

ANCHOR_BATCH_TYPE: Final = (
    "AnchorBatch(uint64 id,bytes32 root,bytes cid,uint32 count,uint64 windowStart,uint64 windowEnd)"
)
ANCHOR_BATCH_TYPEHASH: Final = type_hash(ANCHOR_BATCH_TYPE)
#: Replacement transactions raise both fee caps by at least 12.5% (geth needs 10%, and
#: other clients 12.5%), rounded up, plus one wei.
FEE_BUMP_NUMERATOR: Final = 1125
_FEE_BUMP_DENOMINATOR: Final = 1000
_GAS_MARGIN: Final = 1.25

T = TypeVar("T")


class AnchorRevertedError(OracleError, RuntimeError):
    """An anchor transaction was mined but reverted, and the batch is not on-chain."""

    def __init__(self, batch_id: int, tx_hash: str) -> None:
        self.batch_id = batch_id
        self.tx_hash = tx_hash
        super().__init__(
            f"anchor transaction {tx_hash} of batch {batch_id} reverted and the chain does not "
            "hold the batch; check the oracle set (`oracles()`) against the signer keys and "
            "that the submitter has funds, then restart: the batch will be signed and sent again"
        )


class AnchorConflictError(OracleError, RuntimeError):
    """The chain holds a different root under this batch's id: another oracle anchored it."""

    def __init__(self, batch_id: int, ours: bytes, theirs: bytes) -> None:
        self.batch_id = batch_id
        self.ours = ours
        self.theirs = theirs
        super().__init__(
            f"batch {batch_id} is anchored on-chain with root 0x{theirs.hex()}, but this "
            f"journal built root 0x{ours.hex()}; two oracles share the anchor contract with "
            "different journals. Run one batcher per journal (PostgreSQL for many workers)."
        )


@dataclass(frozen=True)
class BatchHeader:
    """The `AnchorBatch` the oracles sign and the contract stores (IAttestationAnchor.Batch).

    `cid` is the text CID; `cid_bytes` is the binary form the contract takes.
    """

    id: int
    root: bytes
    cid: str
    count: int
    window_start: int
    window_end: int

    @property
    def cid_bytes(self) -> bytes:
        """The CID in binary form, as `anchor` and `BatchAnchored` carry it."""
        return Cid.parse(self.cid).to_bytes()

    def as_tuple(self) -> tuple[int, bytes, bytes, int, int, int]:
        """The struct as web3.py encodes it: `(id, root, cid, count, windowStart, windowEnd)`."""
        return (
            self.id,
            self.root,
            self.cid_bytes,
            self.count,
            self.window_start,
            self.window_end,
        )

    def as_json(self) -> dict[str, Any]:
        """The header as JSON (hex root), for the remote signer API."""
        return {
            "id": self.id,
            "root": "0x" + self.root.hex(),
            "cid": self.cid,
            "count": self.count,
            "windowStart": self.window_start,
            "windowEnd": self.window_end,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchHeader:
        """Parse `as_json` output."""
        return cls(
            id=int(data["id"]),
            root=bytes.fromhex(str(data["root"]).removeprefix("0x")),
            cid=str(data["cid"]),
            count=int(data["count"]),
            window_start=int(data["windowStart"]),
            window_end=int(data["windowEnd"]),
        )


def batch_struct_hash(header: BatchHeader) -> bytes:
    """Return `hashStruct(AnchorBatch)` exactly as `AttestationAnchor._batchDigest` encodes it."""
    return keccak256(
        ANCHOR_BATCH_TYPEHASH
        + header.id.to_bytes(32, "big")
        + header.root
        + keccak256(header.cid_bytes)
        + header.count.to_bytes(32, "big")
        + header.window_start.to_bytes(32, "big")
        + header.window_end.to_bytes(32, "big")
    )


def batch_digest(header: BatchHeader, domain: Eip712Domain) -> bytes:
    """Return the EIP-712 digest oracles sign for `header` (the contract's `batchDigest`)."""
    return domain.digest(batch_struct_hash(header))


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fee caps of a transaction, in wei per gas."""

    max_fee: int
    priority_fee: int


def bump_fees(fees: Fees, floor: Fees | None = None) -> Fees:
    """Raise both caps by at least 12.5%, as nodes require of a replacement transaction.

    Args:
        fees: The caps of the transaction being replaced.
        floor: Current market caps; the result is at least these.

    Returns:
        The new caps (priority never above max).
    """
    max_fee = math.ceil(fees.max_fee * FEE_BUMP_NUMERATOR / _FEE_BUMP_DENOMINATOR) + 1
    priority = math.ceil(fees.priority_fee * FEE_BUMP_NUMERATOR / _FEE_BUMP_DENOMINATOR) + 1
    if floor is not None:
        max_fee = max(max_fee, floor.max_fee)
        priority = max(priority, floor.priority_fee)
    return Fees(max(max_fee, priority), priority)


@dataclass(frozen=True)
class SentTx:
    """A signed anchor transaction: what is persisted before it is broadcast."""

    tx_hash: str
    nonce: int
    fees: Fees
    raw: bytes


class Anchorer:
    """Talks to the AttestationAnchor: reads `lastBatchId`, sends `anchor`, awaits receipts.

    Every RPC failure becomes `ChainUnavailableError`, which callers retry with backoff.
    """

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        submitter_key: str | None,
        *,
        request_timeout_s: float = 10.0,
    ) -> None:
        """Connect to the chain.

        Args:
            rpc_url: JSON-RPC endpoint.
            deployment: The platform's deployment record (address and ABI of the anchor).
            submitter_key: Hex key of the account that pays for anchors; None for read-only.
            request_timeout_s: Timeout of each JSON-RPC request.
        """
        self.rpc_url = rpc_url
        self.deployment = deployment
        record = deployment.contract("AttestationAnchor")
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout_s}))
        self.contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(record.address), abi=record.abi
        )
        self.from_block = record.block
        self.domain = dimo_domain(deployment.chain_id, record.address)
        self.account: LocalAccount | None = (
            Account.from_key(submitter_key) if submitter_key is not None else None
        )

    # -- reads --------------------------------------------------------------------------------

    def _rpc(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (ContractLogicError, TransactionNotFound):
            raise
        except (OSError, ValueError, TimeoutError) as exc:
            # requests' ConnectionError/Timeout are OSErrors; JSON-RPC errors are ValueErrors.
            raise ChainUnavailableError(self.rpc_url, f"{what}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("requests", "urllib3", "web3")):
                raise ChainUnavailableError(self.rpc_url, f"{what}: {exc}") from exc
            raise

    def last_batch_id(self) -> int:
        """The id of the last anchored batch (0 before the first)."""
        return int(self._rpc("lastBatchId", self.contract.functions.lastBatchId().call))

    def root_of(self, batch_id: int) -> bytes | None:
        """The root anchored under `batch_id`, or None if none is."""
        if batch_id > self.last_batch_id():
            return None
        return bytes(self._rpc("rootOf", self.contract.functions.rootOf(batch_id).call))

    def oracles(self) -> tuple[list[str], int]:
        """The oracle set and its threshold, as the contract holds them."""
        signers, threshold, _version = self._rpc("oracles", self.contract.functions.oracles().call)
        return [Web3.to_checksum_address(s) for s in signers], int(threshold)

    def contract_digest(self, header: BatchHeader) -> bytes:
        """The contract's own `batchDigest(header)` (to cross-check `batch_digest`)."""
        return bytes(
            self._rpc("batchDigest", self.contract.functions.batchDigest(header.as_tuple()).call)
        )

    def head(self) -> int:
        """The latest block number."""
        return int(self._rpc("blockNumber", lambda: self.w3.eth.block_number))

    def anchored_in(self, batch_id: int) -> tuple[str, int] | None:
        """The `(tx hash, block)` whose `BatchAnchored` event carries `batch_id`, if any."""
        topic = "0x" + batch_id.to_bytes(32, "big").hex()
        event_topic = Web3.keccak(
            text="BatchAnchored(uint64,bytes32,bytes,uint32,uint64,uint64)"
        ).to_0x_hex()
        logs = self._rpc(
            "getLogs",
            lambda: self.w3.eth.get_logs(
                {
                    "address": self.contract.address,
                    "fromBlock": self.from_block,
                    "toBlock": "latest",
                    "topics": [event_topic, topic],
                }
            ),
        )
        if not logs:
            return None
        entry = logs[-1]
        return entry["transactionHash"].to_0x_hex(), int(entry["blockNumber"])

    # -- transactions ---------------------------------------------------------------------------

    def _require_account(self) -> LocalAccount:
        if self.account is None:
            raise OracleError(
                "no submitter key: set DIMO_ORACLE_SUBMITTER_KEY to the hex key of a funded "
                "account that relays anchor transactions"
            )
        return self.account

    def pending_nonce(self) -> int:
        """The submitter's next nonce, counting transactions still in the mempool."""
        acct = self._require_account()
        return int(
            self._rpc(
                "getTransactionCount",
                lambda: self.w3.eth.get_transaction_count(acct.address, "pending"),
            )
        )

    def mined_nonce(self) -> int:
        """The submitter's nonce as of the latest block (mined transactions only)."""
        acct = self._require_account()
        return int(
            self._rpc(
                "getTransactionCount",
                lambda: self.w3.eth.get_transaction_count(acct.address, "latest"),
            )
        )

    def market_fees(self) -> Fees:
        """EIP-1559 caps for now: `2 * baseFee + tip`, the tip from `eth_maxPriorityFeePerGas`."""
        block = self._rpc("getBlock", lambda: self.w3.eth.get_block("latest"))
        base = int(block.get("baseFeePerGas", 0) or 0)
        try:
            tip = int(self._rpc("maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee))
        except ChainUnavailableError:
            tip = 10**9
        tip = max(tip, 1)
        return Fees(2 * base + tip, tip)

    def pending_fees(self, tx_hash: str) -> Fees | None:
        """The fee caps of a transaction the node knows (mempool or mined), else None."""
        try:
            tx = self._rpc(
                "getTransactionByHash",
                lambda: self.w3.eth.get_transaction(tx_hash),  # type: ignore[arg-type]
            )
        except TransactionNotFound:
            return None
        if tx is None:
            return None
        return Fees(int(tx.get("maxFeePerGas", 0)), int(tx.get("maxPriorityFeePerGas", 0)))

    def estimate_gas(self, header: BatchHeader, signatures: bytes) -> int:
        """Gas estimate of `anchor(header, signatures)` from the submitter.

        Raises:
            ContractLogicError: the call reverts (e.g. the id is no longer next).
        """
        acct = self._require_account()
        fn = self.contract.functions.anchor(header.as_tuple(), signatures)
        return int(self._rpc("estimateGas", lambda: fn.estimate_gas({"from": acct.address})))

    def sign_anchor(
        self, header: BatchHeader, signatures: bytes, nonce: int, fees: Fees, gas: int
    ) -> SentTx:
        """Build and sign (not send) the anchor transaction.

        Args:
            header: The batch.
            signatures: The quorum's signatures, sorted by signer address.
            nonce: The submitter nonce to use.
            fees: EIP-1559 caps.
            gas: Gas limit.

        Returns:
            The signed transaction and its hash, to persist before `broadcast`.
        """
        acct = self._require_account()
        data = self.contract.encode_abi("anchor", args=[header.as_tuple(), signatures])
        tx = {
            "type": 2,
            "chainId": self.deployment.chain_id,
            "to": self.contract.address,
            "from": acct.address,
            "nonce": nonce,
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
            "value": 0,
            "data": data,
        }
        signed = acct.sign_transaction(tx)
        return SentTx("0x" + bytes(signed.hash).hex(), nonce, fees, bytes(signed.raw_transaction))

    def gas_limit(self, header: BatchHeader, signatures: bytes) -> int:
        """A gas limit with a margin over the estimate."""
        return int(self.estimate_gas(header, signatures) * _GAS_MARGIN) + 10_000

    def broadcast(self, sent: SentTx) -> None:
        """Send a signed transaction; a node that already has it is not an error.

        Raises:
            ChainUnavailableError: the node is unreachable or refused it for another reason.
        """
        try:
            self._rpc("sendRawTransaction", lambda: self.w3.eth.send_raw_transaction(sent.raw))
        except ChainUnavailableError as exc:
            text = str(exc).lower()
            if "already known" in text or "already imported" in text:
                return
            raise

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt of a mined transaction, or None while it is pending or unknown."""
        try:
            r = self._rpc(
                "getTransactionReceipt",
                lambda: self.w3.eth.get_transaction_receipt(tx_hash),  # type: ignore[arg-type]
            )
        except TransactionNotFound:
            return None
        return dict(r) if r is not None else None

    def wait(self, seconds: float) -> None:
        """Sleep between polls (a seam for tests that drive time)."""
        time.sleep(seconds)
