"""Paying a demand-response settlement in DIMO through the DataMarket (`paySettlement`).

The settlement report (`energy.settle`) lists each vehicle's amount in wei. Paying it credits
every vehicle exactly that amount as revenue of the licensed product (its current owner claims
it with `DataMarket.claim`, as licence revenue); the utility pays the total plus the protocol
fee. The on-chain settlement id is derived from the event the report settles (below), so an
event is paid at most once by a utility however many times it is re-settled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import requests
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception
from web3.logs import DISCARD

from indexer.exceptions import ChainUnavailableError, IndexerError
from protocol.crypto import keccak256
from protocol.deployment import Deployment
from protocol.reverts import CustomErrors

#: What the settlement id commits to: the event settled, never the measured amounts.
ID_FIELDS: Final = ("event_id", "program_id", "region", "start_ms", "end_ms")
ID_DOMAIN: Final = "dimo-demand-response-settlement/1"
_RPC_ERRORS = (Web3Exception, OSError, requests.RequestException)
T = TypeVar("T")


class SettlementNotPayable(IndexerError, ValueError):
    """The settlement report cannot be turned into a payment (nothing to pay, or malformed)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"settlement cannot be paid: {reason}")


class SettlementPaymentFailed(IndexerError, RuntimeError):
    """The chain refused the payment (simulated first) or the transaction failed.

    `error` is the contract's custom error by name (e.g. `DataMarketNotLicensed`) when it
    reverted with one, and `args` its arguments.
    """

    def __init__(
        self, reason: str, error: str | None = None, args: Mapping[str, Any] | None = None
    ) -> None:
        self.reason = reason
        self.error = error
        self.error_args = dict(args or {})
        shown = ", ".join(f"{k}={v}" for k, v in self.error_args.items())
        detail = f"{error}({shown})" if error else reason
        super().__init__(
            f"settlement payment refused: {detail}; check the licence (live, CHARGING scope), "
            "the FEATURE_GRID_PROGRAMMES flag, the vehicles' opt-ins and the DIMO balance"
        )


@dataclass(frozen=True, slots=True)
class SettlementCall:
    """The arguments of `paySettlement` built from a settlement report.

    Attributes:
        settlement_id: The bytes32 id (`settlement_id`).
        vehicle_ids: The vehicles with a non-zero amount, in the report's order.
        amounts: Their amounts, DIMO wei.
    """

    settlement_id: bytes
    vehicle_ids: list[int]
    amounts: list[int]

    @property
    def total(self) -> int:
        """The sum credited to the vehicles, wei."""
        return sum(self.amounts)


@dataclass(frozen=True, slots=True)
class PaymentReceipt:
    """A settlement paid on-chain."""

    tx_hash: str
    block_number: int
    settlement_id: str
    product_id: int
    vehicles: int
    total: int
    fee: int


def settlement_id(settlement: Mapping[str, Any]) -> bytes:
    """The on-chain id of a settlement: keccak256 of the canonical JSON of the event it settles
    (`ID_FIELDS` and `ID_DOMAIN`), so every settlement of one event has the same id.

    Raises:
        SettlementNotPayable: a field is missing.
    """
    try:
        fields = {name: settlement[name] for name in ID_FIELDS}
    except KeyError as exc:
        raise SettlementNotPayable(f"the settlement has no {exc.args[0]!r}") from None
    text = json.dumps({"domain": ID_DOMAIN, **fields}, sort_keys=True, separators=(",", ":"))
    return keccak256(text.encode())


def settlement_call(settlement: Mapping[str, Any]) -> SettlementCall:
    """The `paySettlement` arguments for a settlement report (its `payment.amounts`).

    Raises:
        SettlementNotPayable: no vehicle is owed anything, an amount is not a positive integer,
            or the amounts do not add up to `payment.total_wei`.
    """
    payment = settlement.get("payment")
    if not isinstance(payment, Mapping) or payment.get("currency") != "DIMO":
        raise SettlementNotPayable("the settlement has no payment in DIMO")
    vehicles: list[int] = []
    amounts: list[int] = []
    for entry in payment.get("amounts") or []:
        try:
            vehicle, wei = int(entry["vehicle_id"]), int(str(entry["wei"]))
        except (KeyError, TypeError, ValueError):
            raise SettlementNotPayable(f"malformed amount {entry!r}") from None
        if vehicle < 0 or wei <= 0:
            raise SettlementNotPayable(f"vehicle {vehicle}: amount {wei} is not positive")
        vehicles.append(vehicle)
        amounts.append(wei)
    if not vehicles:
        raise SettlementNotPayable("no vehicle delivered anything to pay for")
    if str(sum(amounts)) != str(payment.get("total_wei")):
        raise SettlementNotPayable(
            f"amounts add up to {sum(amounts)} wei, not total_wei {payment.get('total_wei')}"
        )
    return SettlementCall(settlement_id(settlement), vehicles, amounts)


class SettlementPayer:
    """Pays settlements from one utility account: simulates, then sends and waits."""

    def __init__(
        self, rpc_url: str, deployment: Deployment, key: str, *, timeout_s: float = 120.0
    ) -> None:
        """Binds the DataMarket and the DIMO token of `deployment` for the account of `key`.

        Args:
            rpc_url: JSON-RPC URL of the chain.
            deployment: The deployment record.
            key: The utility's private key (hex; from the environment or a keystore).
            timeout_s: Seconds to wait for a receipt.
        """
        self.rpc_url = rpc_url
        self.chain_id = deployment.chain_id
        self.timeout_s = timeout_s
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self.account = Account.from_key(key)
        self._from = self.account.address
        market, token = deployment.contract("DataMarket"), deployment.contract("DimoToken")
        self.market = self.w3.eth.contract(
            address=Web3.to_checksum_address(market.address), abi=market.abi
        )
        self.token = self.w3.eth.contract(
            address=Web3.to_checksum_address(token.address), abi=token.abi
        )
        self._errors = CustomErrors([token.abi, market.abi])

    @property
    def address(self) -> str:
        """The utility's address."""
        return str(self.account.address)

    def is_paid(self, settlement_id: bytes) -> bool:
        """Whether this utility has paid `settlement_id`."""
        fn = self.market.functions.settlementPaid(self.address, settlement_id)
        return bool(self._rpc("settlementPaid", fn.call))

    def cost(self, total: int) -> int:
        """What paying `total` to vehicles costs now (total plus the protocol fee), wei."""
        return int(self._rpc("settlementCost", self.market.functions.settlementCost(total).call))

    def pay(self, product_id: int, call: SettlementCall, *, permit: bool = True) -> PaymentReceipt:
        """Pays the settlement through the licence of `product_id`.

        The allowance is used when it covers the cost; otherwise an ERC-2612 permit of the
        cost is signed (`permit`) or an `approve` is sent first.

        Raises:
            SettlementPaymentFailed: the market refuses (simulated before sending, with its
                custom error), the balance is short, or the transaction reverts.
            ChainUnavailableError: the RPC endpoint fails.
        """
        cost = self.cost(call.total)
        balance = int(self._rpc("balanceOf", self.token.functions.balanceOf(self.address).call))
        if balance < cost:
            raise SettlementPaymentFailed(f"the utility holds {balance} wei of DIMO, needs {cost}")
        market = self.market.address
        allowance = int(
            self._rpc("allowance", self.token.functions.allowance(self.address, market).call)
        )
        args = (product_id, call.settlement_id, call.vehicle_ids, call.amounts)
        if allowance >= cost:
            fn = self.market.functions.paySettlement(*args)
        elif permit:
            fn = self.market.functions.paySettlementWithPermit(*args, *self._permit(cost))
        else:
            fn = self.market.functions.paySettlement(*args)
            # The market checks everything before it pulls the DIMO: short of the allowance,
            # only the token's own error may remain, or the approval would be wasted.
            try:
                self._simulate(fn)
            except SettlementPaymentFailed as exc:
                if exc.error != "ERC20InsufficientAllowance":
                    raise
            self._send(self.token.functions.approve(market, cost))
        receipt = self._send(fn)
        # The receipt's other logs (credits, token transfers) are not this event: skip them.
        paid = self.market.events.SettlementPaid().process_receipt(receipt, errors=DISCARD)
        if len(paid) != 1:
            raise SettlementPaymentFailed("the transaction emitted no SettlementPaid")
        a = paid[0]["args"]
        return PaymentReceipt(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            settlement_id="0x" + bytes(a["settlementId"]).hex(),
            product_id=int(a["productId"]),
            vehicles=int(a["vehicles"]),
            total=int(a["total"]),
            fee=int(a["fee"]),
        )

    def _permit(self, value: int) -> tuple[int, int, bytes, bytes]:
        """(deadline, v, r, s) of a permit of `value` to the market, valid for an hour."""
        nonce = int(self._rpc("nonces", self.token.functions.nonces(self.address).call))
        head = self._rpc("eth_getBlockByNumber", lambda: self.w3.eth.get_block("latest"))
        deadline = int(head["timestamp"]) + 3600
        # The token's own EIP-712 domain (ERC-5267), not a guess of its name and version.
        _, name, version, chain_id, verifying, _, _ = self._rpc(
            "eip712Domain", self.token.functions.eip712Domain().call
        )
        domain = {
            "name": str(name),
            "version": str(version),
            "chainId": int(chain_id),
            "verifyingContract": str(verifying),
        }
        types = {
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
        }
        message = {
            "owner": self.address,
            "spender": self.market.address,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        }
        signed = self.account.sign_typed_data(domain, types, message)
        return deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    def _simulate(self, fn: Any) -> None:
        """Calls `fn` from the utility without sending it; a revert becomes its error."""
        try:
            fn.call({"from": self.address})
        except (ContractCustomError, ContractLogicError) as exc:
            raise self._refused(exc) from None
        except _RPC_ERRORS as exc:
            raise ChainUnavailableError(self.rpc_url, str(exc)) from None

    def _send(self, fn: Any) -> Any:
        """Simulates `fn`, then signs, sends and waits; returns the receipt."""
        self._simulate(fn)

        def send() -> Any:
            tx = fn.build_transaction(
                {
                    "from": self.address,
                    "nonce": self.w3.eth.get_transaction_count(self._from, "pending"),
                    "chainId": self.chain_id,
                }
            )
            signed = self.account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout_s)

        receipt = self._rpc("send", send)
        if receipt["status"] != 1:
            tx = "0x" + bytes(receipt["transactionHash"]).hex()
            raise SettlementPaymentFailed(f"transaction {tx} reverted")
        return receipt

    def _refused(self, exc: ContractCustomError | ContractLogicError) -> SettlementPaymentFailed:
        """The contract's custom error, decoded by name, from a failed simulation."""
        found = self._errors.decode(exc.data)
        if found is None:
            return SettlementPaymentFailed(str(exc))
        return SettlementPaymentFailed(str(exc), found.name, found.args)

    def _rpc(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (ContractCustomError, ContractLogicError) as exc:
            raise self._refused(exc) from None
        except _RPC_ERRORS as exc:
            raise ChainUnavailableError(self.rpc_url, f"{what}: {exc}") from None
