"""EIP-712 domains and digests shared by every signature that crosses a boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from protocol.crypto import address_bytes, checksum_address, keccak256

__all__ = [
    "DIMO_DOMAIN_NAME",
    "DIMO_DOMAIN_VERSION",
    "EIP712_DOMAIN_FIELDS",
    "EIP712_DOMAIN_TYPE",
    "EIP712_DOMAIN_TYPEHASH",
    "Eip712Domain",
    "dimo_domain",
    "hash_typed_data",
    "type_hash",
]

DIMO_DOMAIN_NAME: Final = "DIMO"
DIMO_DOMAIN_VERSION: Final = "1"
EIP712_DOMAIN_TYPE: Final = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
EIP712_DOMAIN_TYPEHASH: Final = keccak256(EIP712_DOMAIN_TYPE.encode())
EIP712_DOMAIN_FIELDS: Final = (
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
)


def type_hash(encoded_type: str) -> bytes:
    """Return `keccak256(encodeType)` for a struct, e.g. `"Bundle(address device,...)"`."""
    return keccak256(encoded_type.encode())


@dataclass(frozen=True)
class Eip712Domain:
    """An EIP-712 domain with all four fields, as OpenZeppelin's `EIP712` builds it.

    The separator is computed once at construction, so digests cost two Keccak calls.
    """

    name: str
    version: str
    chain_id: int
    verifying_contract: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.chain_id < 2**256:
            raise ValueError(f"chain id {self.chain_id} is not a uint256")
        contract = checksum_address(self.verifying_contract)
        object.__setattr__(self, "verifying_contract", contract)
        object.__setattr__(
            self,
            "separator",
            keccak256(
                EIP712_DOMAIN_TYPEHASH
                + keccak256(self.name.encode())
                + keccak256(self.version.encode())
                + self.chain_id.to_bytes(32, "big")
                + address_bytes(contract).rjust(32, b"\0")
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the domain as the `domain` member of `eth_signTypedData_v4` JSON."""
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    def digest(self, struct_hash: bytes) -> bytes:
        """Return `keccak256(0x1901 || separator || struct_hash)`, the hash that is signed."""
        return keccak256(b"\x19\x01" + self.separator + struct_hash)


def dimo_domain(chain_id: int, verifying_contract: str | bytes) -> Eip712Domain:
    """Return the DIMO domain `{name: "DIMO", version: "1", chainId, verifyingContract}`.

    Args:
        chain_id: The chain the verifying contract lives on (31337 for anvil).
        verifying_contract: The contract that checks these signatures on-chain, e.g. the
            AttestationAnchor for bundles.

    Returns:
        The domain, separator precomputed.
    """
    return Eip712Domain(
        DIMO_DOMAIN_NAME, DIMO_DOMAIN_VERSION, chain_id, checksum_address(verifying_contract)
    )


def hash_typed_data(domain: Eip712Domain, struct_hash: bytes) -> bytes:
    """Return the EIP-712 digest of `struct_hash` under `domain` (OZ `_hashTypedDataV4`)."""
    return domain.digest(struct_hash)
