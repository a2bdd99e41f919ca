"""Custom errors of contract ABIs: a revert's data decoded into its error's name and arguments.

Every contract of the platform reverts with custom errors (`RewardsNotClaimable(epoch,
claimableAt)`, ...). web3 raises them as `ContractCustomError` with the raw data; the services
that send transactions turn that data back into the error by name, so that what they report
says why the contract refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from protocol.crypto import keccak256

__all__ = ["CustomErrors", "DecodedError"]


@dataclass(frozen=True)
class DecodedError:
    """A custom error: its name and its arguments by name (bytes as 0x hex)."""

    name: str
    args: dict[str, Any]

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.name}({shown})"


class CustomErrors:
    """The custom errors of some ABIs, by selector."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        """Index the `error` items of every ABI in `abis`."""
        self._by_selector: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [str(i["type"]) for i in item.get("inputs", [])]
                names = [str(i["name"]) for i in item.get("inputs", [])]
                selector = keccak256(f"{item['name']}({','.join(types)})".encode())[:4]
                self._by_selector[selector] = (str(item["name"]), names, types)

    def decode(self, data: object) -> DecodedError | None:
        """The error in revert `data` (0x hex, as web3's exceptions carry it), or None when
        it is no known custom error."""
        if not isinstance(data, str) or not data.startswith("0x"):
            return None
        try:
            raw = bytes.fromhex(data[2:])
        except ValueError:
            return None
        found = self._by_selector.get(raw[:4])
        if found is None:
            return None
        name, names, types = found
        try:
            values = abi_decode(types, raw[4:])
        except DecodingError:
            return None
        return DecodedError(
            name,
            {
                n: ("0x" + v.hex() if isinstance(v, bytes) else v)
                for n, v in zip(names, values, strict=True)
            },
        )
