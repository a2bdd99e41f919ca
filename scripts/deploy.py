"""Deploys the platform's contracts and writes the deployment record.

    ape run deploy --network ethereum:local:foundry

Roles after the deploy (until the governance issue hands them to the timelock):
- ManufacturerRegistry: DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE -> deployer.
- DimoToken: DEFAULT_ADMIN_ROLE -> deployer; MINTER_ROLE -> nobody (the rewards contract
  later); on a local chain (chain id 31337) the deployer also gets MINTER_ROLE to seed demos.
- VehicleId: DEFAULT_ADMIN_ROLE -> deployer (its one power: setting the device registry,
  done here, once).
- DeviceId: no roles.
- AttestationAnchor (an OracleRegistry too): DEFAULT_ADMIN_ROLE -> deployer, which replaces
  the oracle set; anyone relays a quorum-signed batch.

The oracle set is DIMO_ORACLE_SIGNERS (comma-separated addresses) with threshold
DIMO_ORACLE_THRESHOLD; on a local chain it defaults to anvil's dev accounts 7, 8 and 9 with
threshold 2 (public throwaway keys the local stack signs with).

The deployer is the first test account on a local chain; elsewhere the Ape account named by
DIMO_DEPLOYER (an encrypted keystore, `ape accounts import`). The record goes to
DIMO_DEPLOYMENT, default `data/deployments/<chain id>.json`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ape import accounts, chain, networks, project

from protocol.deployment import ContractRecord, Deployment

LOCAL_CHAIN_ID = 31337


def deploy(deployer: Any, oracle_signers: list[str], threshold: int) -> Deployment:
    """Deploys every contract from `deployer` and returns the record (not yet saved).

    Args:
        deployer: The Ape account that deploys and first holds the admin roles.
        oracle_signers: Addresses of the oracle quorum.
        threshold: How many oracles must sign a batch.
    """
    records: dict[str, ContractRecord] = {}

    def record(name: str, contract: Any) -> Any:
        receipt = chain.get_receipt(contract.txn_hash)
        records[name] = ContractRecord(
            address=contract.address,
            block=receipt.block_number,
            tx_hash=str(receipt.txn_hash),
            abi=[abi.model_dump(mode="json", by_alias=True) for abi in contract.contract_type.abi],
        )
        return contract

    registry = record(
        "ManufacturerRegistry", project.ManufacturerRegistry.deploy(deployer, sender=deployer)
    )
    token = record("DimoToken", project.DimoToken.deploy(deployer, sender=deployer))
    vehicles = record("VehicleId", project.VehicleId.deploy(deployer, registry, sender=deployer))
    devices = record("DeviceId", project.DeviceId.deploy(registry, vehicles, sender=deployer))
    vehicles.setDeviceRegistry(devices, sender=deployer)
    record(
        "AttestationAnchor",
        project.AttestationAnchor.deploy(deployer, oracle_signers, threshold, sender=deployer),
    )

    roles: dict[str, dict[str, list[str]]] = {
        "ManufacturerRegistry": {
            "DEFAULT_ADMIN_ROLE": [deployer.address],
            "REGISTRAR_ROLE": [deployer.address],
        },
        "DimoToken": {"DEFAULT_ADMIN_ROLE": [deployer.address], "MINTER_ROLE": []},
        "VehicleId": {"DEFAULT_ADMIN_ROLE": [deployer.address]},
        "DeviceId": {},
        "AttestationAnchor": {"DEFAULT_ADMIN_ROLE": [deployer.address]},
    }
    if chain.chain_id == LOCAL_CHAIN_ID:
        token.grantRole(token.MINTER_ROLE(), deployer, sender=deployer)
        roles["DimoToken"]["MINTER_ROLE"].append(deployer.address)

    return Deployment(
        chain_id=chain.chain_id,
        network=networks.provider.network_choice,
        deployer=deployer.address,
        start_block=min(r.block for r in records.values()),
        contracts=records,
        roles=roles,
    )


def _deployer() -> Any:
    if chain.chain_id == LOCAL_CHAIN_ID:
        return accounts.test_accounts[0]
    alias = os.environ.get("DIMO_DEPLOYER")
    if not alias:
        raise SystemExit("set DIMO_DEPLOYER to the alias of an Ape account to deploy from")
    return accounts.load(alias)


def local_oracle_signers() -> list[str]:
    """anvil's dev accounts 7, 8 and 9: the local stack's throwaway oracle quorum."""
    return [accounts.test_accounts[i].address for i in (7, 8, 9)]


def _oracle_set() -> tuple[list[str], int]:
    raw = os.environ.get("DIMO_ORACLE_SIGNERS")
    if raw:
        signers = [s.strip() for s in raw.split(",") if s.strip()]
    elif chain.chain_id == LOCAL_CHAIN_ID:
        signers = local_oracle_signers()
    else:
        raise SystemExit("set DIMO_ORACLE_SIGNERS to the oracle quorum's addresses")
    threshold = int(os.environ.get("DIMO_ORACLE_THRESHOLD", "2"))
    return signers, threshold


def main() -> None:
    """Entry point of `ape run deploy`."""
    deployment = deploy(_deployer(), *_oracle_set())
    default = Path("data") / "deployments" / f"{deployment.chain_id}.json"
    path = Path(os.environ.get("DIMO_DEPLOYMENT", default))
    deployment.save(path)
    print(f"deployment record: {path}")
    for name, rec in deployment.contracts.items():
        print(f"  {name:22} {rec.address}  (block {rec.block})")
