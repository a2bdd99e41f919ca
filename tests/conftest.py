"""Role fixtures for the contract tests: a deployed platform on anvil, and typed-data signing
done with eth-account alone, independently of any signing code of ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from scripts.deploy import deploy

CAN_MINT_DEVICES = 1
CAN_MINT_VEHICLES = 2
FAR_FUTURE = 2**40

MINT_TYPES = [
    {"name": "owner", "type": "address"},
    {"name": "minter", "type": "address"},
    {"name": "make", "type": "string"},
    {"name": "model", "type": "string"},
    {"name": "year", "type": "uint16"},
    {"name": "vinCommitment", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
CLAIM_TYPES = [
    {"name": "device", "type": "address"},
    {"name": "user", "type": "address"},
    {"name": "deadline", "type": "uint256"},
]
PAIR_TYPES = [
    {"name": "vehicleId", "type": "uint256"},
    {"name": "device", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


@pytest.fixture(scope="session")
def admin(accounts: Any) -> Any:
    return accounts[0]


@pytest.fixture(scope="session")
def manufacturer(accounts: Any) -> Any:
    return accounts[1]


@pytest.fixture(scope="session")
def owner(accounts: Any) -> Any:
    return accounts[2]


@pytest.fixture(scope="session")
def other_owner(accounts: Any) -> Any:
    return accounts[3]


@pytest.fixture(scope="session")
def stranger(accounts: Any) -> Any:
    return accounts[4]


@pytest.fixture(scope="session")
def connection(accounts: Any) -> Any:
    """A vehicle connection (e.g. an OEM's cloud) that mints on owners' behalf."""
    return accounts[5]


@pytest.fixture(scope="session")
def oracle_signers(accounts: Any) -> list[Any]:
    """The oracle quorum: three signers, sorted by address, of which two must sign."""
    return sorted((accounts[i] for i in (7, 8, 9)), key=lambda a: int(a.address, 16))


@pytest.fixture(scope="session")
def platform(admin: Any, manufacturer: Any, connection: Any, oracle_signers: list[Any]) -> Any:
    """Every contract deployed by the deploy script, with a manufacturer and a connection."""
    record = deploy(admin, [o.address for o in oracle_signers], 2)
    from ape import project

    contracts = {
        name: project.get_contract(name).at(rec.address) for name, rec in record.contracts.items()
    }
    registry = contracts["ManufacturerRegistry"]
    registry.register(manufacturer, "Acme Telematics", CAN_MINT_DEVICES, sender=admin)
    registry.register(connection, "Hyundai Connect", CAN_MINT_VEHICLES, sender=admin)
    return contracts


@pytest.fixture(scope="session")
def registry(platform: Any) -> Any:
    return platform["ManufacturerRegistry"]


@pytest.fixture(scope="session")
def token(platform: Any) -> Any:
    return platform["DimoToken"]


@pytest.fixture(scope="session")
def vehicle_id(platform: Any) -> Any:
    return platform["VehicleId"]


@pytest.fixture(scope="session")
def device_id(platform: Any) -> Any:
    return platform["DeviceId"]


@pytest.fixture(scope="session")
def anchor(platform: Any) -> Any:
    return platform["AttestationAnchor"]


def private_key(account: Any) -> str:
    """The private key of an Ape test account."""
    return str(account.private_key)


def make_device_key(n: int) -> LocalAccount:
    """A deterministic device key (the secure element's key in a real device)."""
    return Account.from_key(keccak(f"device-key-{n}".encode()))


@pytest.fixture
def device_key() -> LocalAccount:
    return make_device_key(0)


def vin_commitment(vin: str, salt: bytes = b"\x01" * 32) -> bytes:
    return keccak(salt + vin.encode())


@pytest.fixture(scope="session")
def sign(chain: Any) -> Callable[..., bytes]:
    """Signs EIP-712 typed data for a contract with eth-account's `sign_typed_data`."""

    def _sign(
        key: str | bytes,
        contract: Any,
        primary: str,
        types: list[dict[str, str]],
        message: dict[str, Any],
    ) -> bytes:
        domain = {
            "name": "DIMO",
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": contract.address,
        }
        signed = Account.sign_typed_data(key, domain, {primary: types}, message)
        return bytes(signed.signature)

    return _sign


@pytest.fixture
def minted_vehicle(vehicle_id: Any, owner: Any) -> int:
    """A Kona Electric minted by its owner."""
    tx = vehicle_id.mint(
        "Hyundai", "Kona Electric", 2019, vin_commitment("KMHK381GFKU000001"), sender=owner
    )
    return int(tx.return_value)


@pytest.fixture
def claim(device_id: Any, manufacturer: Any, sign: Callable[..., bytes]) -> Callable[..., None]:
    """Mints a device to the manufacturer and has `user` claim it."""

    def _claim(user: Any, key: LocalAccount) -> None:
        if device_id.serialHashOf(key.address) == b"\x00" * 32:
            device_id.mintDevices(
                [key.address], [keccak(key.address.encode())], sender=manufacturer
            )
        message = {"device": key.address, "user": user.address, "deadline": FAR_FUTURE}
        user_sig = sign(private_key(user), device_id, "ClaimDevice", CLAIM_TYPES, message)
        device_sig = sign(key.key, device_id, "ClaimDevice", CLAIM_TYPES, message)
        device_id.claim(key.address, user, FAR_FUTURE, user_sig, device_sig, sender=user)

    return _claim


@pytest.fixture
def pair_sigs(device_id: Any, sign: Callable[..., bytes]) -> Callable[..., tuple[bytes, bytes]]:
    """The owner's and the device's signatures of a pairing."""

    def _sigs(
        owner_key: str, key: LocalAccount, vehicle: int, nonce: int = 0, deadline: int = FAR_FUTURE
    ) -> tuple[bytes, bytes]:
        message = {
            "vehicleId": vehicle,
            "device": key.address,
            "nonce": nonce,
            "deadline": deadline,
        }
        return (
            sign(owner_key, device_id, "PairDevice", PAIR_TYPES, message),
            sign(key.key, device_id, "PairDevice", PAIR_TYPES, message),
        )

    return _sigs


@pytest.fixture
def paired_vehicle(
    vehicle_id: Any,
    device_id: Any,
    owner: Any,
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
) -> Callable[[int], tuple[int, LocalAccount]]:
    """Mints vehicle number `n` to `owner`, claims device key `n` and pairs them.

    Returns the vehicle id and the device key (an eth-account LocalAccount).
    """

    def _paired(n: int) -> tuple[int, LocalAccount]:
        key = make_device_key(n)
        tx = vehicle_id.mint(
            "Hyundai", "Kona Electric", 2019, vin_commitment(f"KMHK381GFKU{n:06d}"), sender=owner
        )
        vehicle = int(tx.return_value)
        claim(owner, key)
        device_id.pair(
            vehicle,
            key.address,
            FAR_FUTURE,
            *pair_sigs(private_key(owner), key, vehicle),
            sender=owner,
        )
        return vehicle, key

    return _paired


@pytest.fixture(scope="session")
def rpc_url(platform: Any) -> str:
    """JSON-RPC URL of the anvil node Ape started (services talk to it with web3.py)."""
    from ape import chain

    return str(chain.provider.uri)


@pytest.fixture(scope="session")
def deployment_record(platform: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The deployment record of the session's platform, saved where services can load it."""
    from ape import chain

    from protocol.deployment import ContractRecord, Deployment

    contracts = {
        name: ContractRecord(
            address=c.address,
            block=0,
            tx_hash="0x",
            abi=[abi.model_dump(mode="json", by_alias=True) for abi in c.contract_type.abi],
        )
        for name, c in platform.items()
    }
    record = Deployment(
        chain_id=chain.chain_id,
        network="ethereum:local:foundry",
        deployer=str(platform["DimoToken"].address),
        start_block=0,
        contracts=contracts,
    )
    path = tmp_path_factory.mktemp("deployment") / "31337.json"
    record.save(path)
    return path


# Data rights, data market and governance (issue 5).

GRANT_TYPES = [
    {"name": "vehicleId", "type": "uint256"},
    {"name": "epoch", "type": "uint32"},
    {"name": "grantee", "type": "address"},
    {"name": "scopes", "type": "uint256"},
    {"name": "expiry", "type": "uint64"},
    {"name": "termsCid", "type": "bytes"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
PERMIT_TYPES = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
BALLOT_TYPES = [
    {"name": "proposalId", "type": "uint256"},
    {"name": "support", "type": "uint8"},
    {"name": "voter", "type": "address"},
    {"name": "nonce", "type": "uint256"},
]
#: A CIDv1 (raw, sha2-256) in binary form: what grants and products carry as terms.
TERMS_CID = bytes.fromhex("01551220") + keccak(b"terms of the licence")


@pytest.fixture(scope="session")
def vehicle_rights(platform: Any) -> Any:
    return platform["VehicleRights"]


@pytest.fixture(scope="session")
def parameters(platform: Any) -> Any:
    return platform["Parameters"]


@pytest.fixture(scope="session")
def data_market(platform: Any) -> Any:
    return platform["DataMarket"]


@pytest.fixture(scope="session")
def governor(platform: Any) -> Any:
    return platform["DimoGovernor"]


@pytest.fixture(scope="session")
def timelock(platform: Any) -> Any:
    return platform["DimoTimelock"]


@pytest.fixture(scope="session")
def buyer(accounts: Any) -> Any:
    """A data buyer (an insurer, a utility, ...)."""
    return accounts[6]


def _funded_account(accounts: Any, admin: Any) -> Any:
    acct = accounts.generate_test_account()
    admin.transfer(acct, 10**19)
    return acct


@pytest.fixture(scope="session")
def curator(accounts: Any, admin: Any, data_market: Any) -> Any:
    """A curator approved to list data products (the local admin stands in for governance)."""
    acct = _funded_account(accounts, admin)
    data_market.grantRole(data_market.CURATOR_ROLE(), acct, sender=admin)
    return acct


@pytest.fixture(scope="session")
def treasury(accounts: Any, admin: Any, data_market: Any) -> Any:
    """The account DataMarket's fees accrue to (set by the local admin)."""
    acct = _funded_account(accounts, admin)
    data_market.setTreasury(acct, sender=admin)
    return acct


# Developer licences (issue 20).


@pytest.fixture(scope="session")
def developer_licence(platform: Any) -> Any:
    return platform["DeveloperLicence"]


@pytest.fixture(scope="session")
def developer(accounts: Any, admin: Any) -> Any:
    """An app team's account, which mints and administers developer licences."""
    return _funded_account(accounts, admin)
