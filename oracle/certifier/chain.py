"""web3 views of the deployment's contracts for the certifiers, RPC failures as one callback's
error and reverts decoded by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import requests
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception

from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain
from protocol.reverts import CustomErrors

__all__ = ["RPC_ERRORS", "CertifierChain"]

#: What a failed RPC raises.
RPC_ERRORS = (Web3Exception, OSError, requests.RequestException)
T = TypeVar("T")


class CertifierChain:
    """web3 views of the deployment's contracts, RPC failures as one callback's error."""

    def __init__(self, rpc_url: str, deployment: Deployment) -> None:
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self._contracts: dict[str, Any] = {}
        self._errors = CustomErrors(r.abi for r in deployment.contracts.values())

    def contract(self, name: str) -> Any:
        if name not in self._contracts:
            record = self.deployment.contract(name)
            self._contracts[name] = self.w3.eth.contract(
                address=Web3.to_checksum_address(record.address), abi=record.abi
            )
        return self._contracts[name]

    def call(self, what: str, fn: Callable[[], T], unavailable: Callable[[str], Exception]) -> T:
        """Runs a view; an RPC failure becomes `unavailable(reason)`, a revert is re-raised."""
        try:
            return fn()
        except (ContractCustomError, ContractLogicError):
            raise
        except RPC_ERRORS as exc:
            raise unavailable(f"{what} at {self.rpc_url}: {exc}") from None

    def decode(self, exc: ContractCustomError | ContractLogicError) -> tuple[str | None, str]:
        """A revert's custom error by name, and a readable line with its arguments."""
        found = self._errors.decode(exc.data)
        if found is None:
            return None, str(exc)
        return found.name, str(found)

    def domain_of(self, name: str) -> Eip712Domain:
        """The DIMO EIP-712 domain of contract `name` (what the oracles sign under)."""
        return dimo_domain(self.deployment.chain_id, self.deployment.contract(name).address)

    def certificates_domain(self) -> Eip712Domain:
        """The EIP-712 domain of BatteryCertificates (what the oracles sign under)."""
        return dimo_domain(
            self.deployment.chain_id, self.deployment.contract("BatteryCertificates").address
        )
