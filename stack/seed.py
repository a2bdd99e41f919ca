"""Registers the simulated fleet on the local chain: a device maker, vehicles minted by their
owners, devices minted, claimed and paired, all with anvil's throwaway dev keys.

The record of what was registered (`fleet.json` in the data folder) is what the bridges and
the end-to-end check read; running again registers only the vehicles that are missing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.logs import DISCARD
from web3.middleware import SignAndSendRawMiddlewareBuilder

from protocol.crypto import keccak256
from protocol.deployment import Deployment
from protocol.vin import make_vin
from stack.chain import DEV_MNEMONIC
from stack.exceptions import FleetConfigError, FleetSetupError

__all__ = [
    "MODEL_IDENTITY",
    "FleetVehicle",
    "dev_account",
    "device_key",
    "fleet_vin",
    "load_fleet",
    "register_fleet",
]

#: Make, model and year minted for each simulator model (as the rewards catalog names them).
MODEL_IDENTITY: dict[str, tuple[str, str, int]] = {
    "hyundai_kona_ev_2019": ("Hyundai", "Kona Electric", 2019),
    "tesla_model3": ("Tesla", "Model 3", 2021),
    "nissan_leaf_2018": ("Nissan", "Leaf", 2018),
    "hyundai_canfd": ("Hyundai", "Ioniq 5", 2022),
}
#: Each simulator model's VIN: world manufacturer identifier and vehicle descriptor (8
#: characters, as the maker writes them for that model) and assembly plant code.
MODEL_VIN: dict[str, tuple[str, str]] = {
    "hyundai_kona_ev_2019": ("KM8K33AG", "U"),  # Hyundai Kona Electric, Ulsan
    "tesla_model3": ("5YJ3E1EA", "F"),  # Tesla Model 3, Fremont
    "nissan_leaf_2018": ("1N4AZ1CP", "C"),  # Nissan Leaf, Smyrna
    "hyundai_canfd": ("KM8KM4AE", "U"),  # Hyundai Ioniq 5, Ulsan
}
#: anvil dev accounts by role: 0 deploys (local admin), 1 makes devices, 2-4 own vehicles.
ADMIN, MANUFACTURER, OWNERS = 0, 1, (2, 3, 4)
CAN_MINT_DEVICES = 1
_FAR_FUTURE = 2**40
_CLAIM_TYPES = [
    {"name": "device", "type": "address"},
    {"name": "user", "type": "address"},
    {"name": "deadline", "type": "uint256"},
]
_PAIR_TYPES = [
    {"name": "vehicleId", "type": "uint256"},
    {"name": "device", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """anvil's dev account `index` (public throwaway key; local use only)."""
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


def device_key(seed: int, index: int) -> LocalAccount:
    """The simulated device key of vehicle `index`, derived from the dev mnemonic and seed."""
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"m/44'/60'/{1 + seed}'/0/{index}"
    )
    return account


@dataclass(frozen=True, slots=True)
class FleetVehicle:
    """One simulated vehicle as registered on-chain.

    Attributes:
        index: position in the fleet.
        model: simulator model (bridge mapping) name.
        vehicle_id: VehicleId token id.
        device: the device's address (its key derives from the dev mnemonic).
        owner: the vehicle's owner (a dev account).
        paired_at: timestamp (s) of the block that paired the device.
        vin: the VIN its ECU answers OBD-II Mode 09 with ("" for a fleet registered before
            VINs were simulated).
        vin_salt: the salt (hex) of the VIN commitment the vehicle was minted with: the
            owner's secret, revealed to the attestation host for a VIN credential.
    """

    index: int
    model: str
    vehicle_id: int
    device: str
    owner: str
    paired_at: int
    vin: str = ""
    vin_salt: str = ""


def fleet_vin(model: str, seed: int, index: int) -> str:
    """The VIN of the fleet's vehicle `index`: its model's maker prefix, year and plant, a
    serial from the seed and index, and the North American check digit."""
    descriptor, plant = MODEL_VIN[model]
    year = MODEL_IDENTITY[model][2]
    return make_vin(descriptor, year, plant, f"{(123_457 + seed * 7_919 + index) % 1_000_000:06d}")


def load_fleet(path: Path) -> list[FleetVehicle]:
    """The fleet registered so far (empty when `path` does not exist)."""
    if not path.exists():
        return []
    raw = json.loads(path.read_text())
    return [FleetVehicle(**item) for item in raw["vehicles"]]


def _save(path: Path, seed: int, fleet: list[FleetVehicle]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"seed": seed, "vehicles": [asdict(v) for v in fleet]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    tmp.chmod(0o600)  # the owners' VIN salts
    tmp.replace(path)


class _Chain:
    def __init__(self, rpc_url: str, deployment: Deployment, signers: list[LocalAccount]) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self.w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(signers), layer=0)
        self.deployment = deployment

    def contract(self, name: str) -> Any:
        rec = self.deployment.contract(name)
        return self.w3.eth.contract(address=Web3.to_checksum_address(rec.address), abi=rec.abi)

    def send(self, step: str, fn: Any, sender: str) -> Any:
        try:
            tx = fn.transact({"from": sender})
            receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        except (Web3Exception, ValueError) as exc:
            raise FleetSetupError(step, str(exc)) from None
        if receipt["status"] != 1:
            raise FleetSetupError(step, f"transaction {tx.hex()} reverted")
        return receipt

    def domain(self, contract: Any) -> dict[str, Any]:
        return {
            "name": "DIMO",
            "version": "1",
            "chainId": self.deployment.chain_id,
            "verifyingContract": contract.address,
        }


def _sign(key: LocalAccount, domain: dict[str, Any], primary: str, types: Any, msg: Any) -> bytes:
    return bytes(Account.sign_typed_data(key.key, domain, {primary: types}, msg).signature)


def register_fleet(
    rpc_url: str,
    deployment: Deployment,
    path: Path,
    *,
    vehicles: int,
    models: tuple[str, ...],
    seed: int,
) -> list[FleetVehicle]:
    """Registers the vehicles of the fleet that are not yet in `path`, and records them.

    Vehicle `i` has model `models[i % len(models)]`, is owned by dev account 2, 3 or 4 in turn,
    and carries a device minted by dev account 1 (registered as a device maker by the local
    admin, account 0), claimed by the owner and paired with both signatures.

    Returns:
        The whole fleet, in index order.

    Raises:
        FleetConfigError: a model is unknown.
        FleetSetupError: a transaction failed.
    """
    for model in models:
        if model not in MODEL_IDENTITY:
            known = list(MODEL_IDENTITY)
            raise FleetConfigError("fleet_models", f"{model!r} is not one of {known}")
    fleet = load_fleet(path)
    if len(fleet) >= vehicles:
        return fleet[:vehicles]
    admin, maker = dev_account(ADMIN), dev_account(MANUFACTURER)
    owners = [dev_account(i) for i in OWNERS]
    chain = _Chain(rpc_url, deployment, [admin, maker, *owners])
    registry = chain.contract("ManufacturerRegistry")
    devices = chain.contract("DeviceId")
    vehicle_id = chain.contract("VehicleId")
    if registry.functions.manufacturerOf(maker.address).call()[0] == 0:
        chain.send(
            "register device maker",
            registry.functions.register(maker.address, "Stack Telematics", CAN_MINT_DEVICES),
            admin.address,
        )
    todo = range(len(fleet), vehicles)
    keys = {i: device_key(seed, i) for i in todo}
    fresh = [
        k.address
        for k in keys.values()
        if devices.functions.serialHashOf(k.address).call() == b"\x00" * 32
    ]
    if fresh:
        chain.send(
            "mint devices",
            devices.functions.mintDevices(fresh, [keccak256(a.encode()) for a in fresh]),
            maker.address,
        )
    device_domain = chain.domain(devices)
    for i in todo:
        key, owner, model = keys[i], owners[i % len(owners)], models[i % len(models)]
        make, name, year = MODEL_IDENTITY[model]
        vin, salt = fleet_vin(model, seed, i), secrets.token_bytes(32)
        receipt = chain.send(
            f"mint vehicle {i}",
            vehicle_id.functions.mint(make, name, year, keccak256(salt + vin.encode())),
            owner.address,
        )
        transfers = vehicle_id.events.Transfer().process_receipt(receipt, errors=DISCARD)
        vid = int(transfers[0]["args"]["tokenId"])
        claim = {"device": key.address, "user": owner.address, "deadline": _FAR_FUTURE}
        chain.send(
            f"claim device {i}",
            devices.functions.claim(
                key.address,
                owner.address,
                _FAR_FUTURE,
                _sign(owner, device_domain, "ClaimDevice", _CLAIM_TYPES, claim),
                _sign(key, device_domain, "ClaimDevice", _CLAIM_TYPES, claim),
            ),
            owner.address,
        )
        pair = {"vehicleId": vid, "device": key.address, "nonce": 0, "deadline": _FAR_FUTURE}
        receipt = chain.send(
            f"pair device {i}",
            devices.functions.pair(
                vid,
                key.address,
                _FAR_FUTURE,
                _sign(owner, device_domain, "PairDevice", _PAIR_TYPES, pair),
                _sign(key, device_domain, "PairDevice", _PAIR_TYPES, pair),
            ),
            owner.address,
        )
        block = chain.w3.eth.get_block(receipt["blockNumber"])
        fleet.append(
            FleetVehicle(
                i,
                model,
                vid,
                key.address,
                owner.address,
                int(block["timestamp"]),
                vin,
                salt.hex(),
            )
        )
        _save(path, seed, fleet)
    return fleet
