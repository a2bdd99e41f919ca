"""Gas used by the platform's contract operations, measured on anvil.

Each figure is the `gasUsed` of a transaction measured after one warm-up of the same
operation, so one-time costs (a model's first catalog entry, cold contract code) are left
out, and each receiver is a first-time holder (the expensive case). The last line printed
is one JSON object of figures.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FAR = 2**40


class Bench:
    """A deployed platform and the accounts to exercise it."""

    def __init__(self) -> None:
        from ape import accounts, chain, project

        from scripts.deploy import deploy

        self.chain = chain
        self.project = project
        self.admin = accounts.test_accounts[0]
        self.manufacturer = accounts.test_accounts[1]
        self.connection = accounts.test_accounts[2]
        self.oracles = [accounts.test_accounts[i] for i in (7, 8, 9)]
        record = deploy(self.admin, [o.address for o in self.oracles], 2)
        self.c = {
            name: project.get_contract(name).at(rec.address)
            for name, rec in record.contracts.items()
        }
        self.c["ManufacturerRegistry"].register(self.manufacturer, "Acme", 1, sender=self.admin)
        self.c["ManufacturerRegistry"].register(self.connection, "Connect", 2, sender=self.admin)
        self._accounts = accounts
        self._serial = 0

    def fresh(self) -> Any:
        """A new funded account that holds nothing yet."""
        acct = self._accounts.test_accounts.generate_test_account()
        self.admin.transfer(acct, 10**18)
        return acct

    def device_key(self) -> LocalAccount:
        self._serial += 1
        return Account.from_key(keccak(f"bench-device-{self._serial}".encode()))

    def sign(
        self,
        key: Any,
        contract: Any,
        primary: str,
        types: list[dict[str, str]],
        message: dict[str, Any],
    ) -> bytes:
        domain = {
            "name": "DIMO",
            "version": "1",
            "chainId": self.chain.chain_id,
            "verifyingContract": contract.address,
        }
        return bytes(Account.sign_typed_data(key, domain, {primary: types}, message).signature)

    def vin(self) -> bytes:
        self._serial += 1
        return keccak(f"VIN-{self._serial}".encode())


def measured(op: Callable[[], Any]) -> int:
    """gasUsed of `op` after one warm-up run of it."""
    op()
    return int(op().gas_used)


MINT_TYPES = [
    {"name": n, "type": t}
    for n, t in [
        ("owner", "address"),
        ("minter", "address"),
        ("make", "string"),
        ("model", "string"),
        ("year", "uint16"),
        ("vinCommitment", "bytes32"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ]
]
CLAIM_TYPES = [
    {"name": n, "type": t}
    for n, t in [("device", "address"), ("user", "address"), ("deadline", "uint256")]
]
PAIR_TYPES = [
    {"name": n, "type": t}
    for n, t in [
        ("vehicleId", "uint256"),
        ("device", "address"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ]
]


def identity_figures(b: Bench) -> dict[str, int]:
    """The foundation's figures: identity, devices, token."""
    vehicles, devices, token = b.c["VehicleId"], b.c["DeviceId"], b.c["DimoToken"]
    out: dict[str, int] = {}

    def mint_vehicle() -> Any:
        return vehicles.mint("Hyundai", "Kona Electric", 2019, b.vin(), sender=b.fresh())

    out["mint_vehicle"] = measured(mint_vehicle)

    def mint_on_behalf() -> Any:
        owner, vin = b.fresh(), b.vin()
        msg = {
            "owner": owner.address,
            "minter": b.connection.address,
            "make": "Hyundai",
            "model": "Kona Electric",
            "year": 2019,
            "vinCommitment": vin,
            "nonce": 0,
            "deadline": FAR,
        }
        sig = b.sign(owner.private_key, vehicles, "MintVehicle", MINT_TYPES, msg)
        return vehicles.mintFor(
            owner, "Hyundai", "Kona Electric", 2019, vin, FAR, sig, sender=b.connection
        )

    out["mint_vehicle_on_behalf"] = measured(mint_on_behalf)

    def mint_batch() -> Any:
        keys = [b.device_key() for _ in range(10)]
        return devices.mintDevices(
            [k.address for k in keys],
            [keccak(k.address.encode()) for k in keys],
            sender=b.manufacturer,
        )

    out["mint_device_batch10_per_device"] = measured(mint_batch) // 10

    state: dict[str, Any] = {}

    def claim() -> Any:
        key, user = b.device_key(), b.fresh()
        devices.mintDevices([key.address], [keccak(key.address.encode())], sender=b.manufacturer)
        msg = {"device": key.address, "user": user.address, "deadline": FAR}
        tx = devices.claim(
            key.address,
            user,
            FAR,
            b.sign(user.private_key, devices, "ClaimDevice", CLAIM_TYPES, msg),
            b.sign(key.key, devices, "ClaimDevice", CLAIM_TYPES, msg),
            sender=user,
        )
        state["key"], state["user"] = key, user
        return tx

    out["claim_device"] = measured(claim)

    def pair() -> Any:
        claim()
        key, user = state["key"], state["user"]
        vehicle = vehicles.mint("Hyundai", "Kona Electric", 2019, b.vin(), sender=user)
        vehicle_id = int(vehicle.return_value)
        msg = {"vehicleId": vehicle_id, "device": key.address, "nonce": 0, "deadline": FAR}
        return devices.pair(
            vehicle_id,
            key.address,
            FAR,
            b.sign(user.private_key, devices, "PairDevice", PAIR_TYPES, msg),
            b.sign(key.key, devices, "PairDevice", PAIR_TYPES, msg),
            sender=user,
        )

    out["pair"] = measured(pair)

    def unpair() -> Any:
        pair()
        return devices.unpair(state["key"].address, sender=state["user"])

    out["unpair"] = measured(unpair)

    holder = b.fresh()
    token.mint(holder, 10**24, sender=b.admin)
    out["token_transfer"] = measured(lambda: token.transfer(b.fresh(), 10**18, sender=holder))

    def delegate() -> Any:
        voter = b.fresh()
        token.mint(voter, 10**21, sender=b.admin)
        return token.invoke_transaction("delegate", voter, sender=voter)

    out["delegate"] = measured(delegate)
    return out


def main() -> None:
    """Deploys on a fresh anvil and prints the figures."""
    from ape import networks

    with networks.parse_network_choice("ethereum:local:foundry"):
        bench = Bench()
        figures = identity_figures(bench)
    print("optimizer: solc 0.8.28 via-IR, optimizer on, runs 1,000,000, evm cancun")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
