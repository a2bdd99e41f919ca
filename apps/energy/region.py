"""Grid regions declared by owners with an EIP-712 `GridRegion` signature."""

from __future__ import annotations

import re
from typing import Any, Final

from protocol.crypto import keccak256, recover_address
from protocol.eip712 import Eip712Domain, type_hash

#: EIP-712 type of an owner's grid region declaration.
GRID_REGION_TYPE: Final = "GridRegion(uint256 vehicleId,string region,uint64 issuedAt)"
GRID_REGION_TYPEHASH: Final = type_hash(GRID_REGION_TYPE)
#: What a region name may look like (e.g. an ENTSO-E bidding zone, a utility's area code).
REGION_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def region_digest(domain: Eip712Domain, vehicle_id: int, region: str, issued_at: int) -> bytes:
    """The EIP-712 digest an owner signs to declare `region` for `vehicle_id`."""
    struct = (
        GRID_REGION_TYPEHASH
        + vehicle_id.to_bytes(32, "big")
        + keccak256(region.encode())
        + issued_at.to_bytes(32, "big")
    )
    return domain.digest(keccak256(struct))


def region_typed_data(
    domain: Eip712Domain, vehicle_id: int, region: str, issued_at: int
) -> dict[str, Any]:
    """The declaration as `eth_signTypedData_v4` JSON (what a wallet shows the owner)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "GridRegion": [
                {"name": "vehicleId", "type": "uint256"},
                {"name": "region", "type": "string"},
                {"name": "issuedAt", "type": "uint64"},
            ],
        },
        "primaryType": "GridRegion",
        "domain": domain.as_dict(),
        "message": {"vehicleId": vehicle_id, "region": region, "issuedAt": issued_at},
    }


def region_signer(
    domain: Eip712Domain, vehicle_id: int, region: str, issued_at: int, signature: bytes
) -> str:
    """The address that signed a declaration (EIP-55).

    Raises:
        SignatureError: the signature is malformed or recovers no key.
    """
    return recover_address(region_digest(domain, vehicle_id, region, issued_at), signature)
