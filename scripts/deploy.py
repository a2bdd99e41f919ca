"""Deploys the platform's contracts and writes the deployment record.

    ape run deploy --network ethereum:local:foundry

Governance: DimoToken votes -> DimoGovernor -> DimoTimelock (OpenZeppelin's
TimelockController). The governor is the timelock's only proposer and canceller; anyone
executes (executor address(0)). Settings (seconds, timestamp clock):

| setting             | live (chain id != 31337) | local chain (31337) |
| ------------------- | ------------------------ | ------------------- |
| voting delay        | 86,400 (1 day)           | 60                  |
| voting period       | 604,800 (7 days)         | 600                 |
| proposal threshold  | 100,000 DIMO             | 0                   |
| quorum              | 4% of supply             | 4% of supply        |
| timelock min delay  | 172,800 (2 days)         | 60                  |

Roles after the deploy. Every admin role of every contract goes to the timelock, so only
an executed proposal exercises it:
- ManufacturerRegistry: DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE -> timelock.
- DimoToken: DEFAULT_ADMIN_ROLE -> timelock; MINTER_ROLE -> Rewards.
- VehicleId: DEFAULT_ADMIN_ROLE -> timelock (its powers, setting the device registry and
  the data market told of pairings and transfers, are used here, once each).
- DeviceId, VehicleRights, BatteryCertificates, VehicleCredentials, DeveloperLicence: no
  roles (licence fees, `DEVELOPER_LICENCE_FEE` in Parameters, 0 until governance sets it,
  go to the treasury).
- AttestationAnchor (an OracleRegistry too): DEFAULT_ADMIN_ROLE -> timelock, which replaces
  the oracle set.
- Parameters: DEFAULT_ADMIN_ROLE -> timelock (sets flags and numbers).
- DataMarket: DEFAULT_ADMIN_ROLE -> timelock (grants CURATOR_ROLE, sets the treasury);
  CURATOR_ROLE -> nobody until governance approves a curator. The treasury is DIMO_TREASURY,
  default the timelock.
- Rewards: DEFAULT_ADMIN_ROLE -> timelock (sets the issuance schedule, vetoes roots);
  GUARDIAN_ROLE (vetoes roots) -> DIMO_REWARDS_GUARDIAN if set, else nobody until governance
  names one. Rewards holds DimoToken's MINTER_ROLE. Epoch 0 starts at the deploy block's
  timestamp; Parameters' REWARDS_CHALLENGE_DELAY is set to 86,400 s (60 s locally).
- DimoTimelock: PROPOSER_ROLE and CANCELLER_ROLE -> governor; EXECUTOR_ROLE -> everyone;
  DEFAULT_ADMIN_ROLE -> the timelock itself.

On a live network the deployer renounces every role it held during the deploy and keeps
none. On the local chain the deployer KEEPS the admin roles too (DEFAULT_ADMIN_ROLE of every
contract, REGISTRAR_ROLE, the timelock's admin) and also gets DimoToken's MINTER_ROLE, so
tests and the demo seed can act without a proposal; the timelock holds the same roles, so a
governance round works there as it does live.

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
from typing import Any, NamedTuple

from ape import accounts, chain, networks, project

from protocol.deployment import ContractRecord, Deployment

LOCAL_CHAIN_ID = 31337
ZERO_ADDRESS = "0x" + "0" * 40


class GovernanceSettings(NamedTuple):
    """Governor and timelock settings, in seconds (the token's clock is a timestamp).

    A NamedTuple, not a dataclass: `ape run` executes this file without registering it in
    `sys.modules`, which dataclasses need.
    """

    voting_delay: int
    voting_period: int
    proposal_threshold: int
    timelock_delay: int
    rewards_challenge_delay: int = 86_400


LIVE_GOVERNANCE = GovernanceSettings(
    voting_delay=86_400,
    voting_period=604_800,
    proposal_threshold=100_000 * 10**18,
    timelock_delay=172_800,
)
LOCAL_GOVERNANCE = GovernanceSettings(
    voting_delay=60,
    voting_period=600,
    proposal_threshold=0,
    timelock_delay=60,
    rewards_challenge_delay=60,
)


def deploy(
    deployer: Any,
    oracle_signers: list[str],
    threshold: int,
    governance: GovernanceSettings | None = None,
    treasury: str | None = None,
    guardian: str | None = None,
    rewards_genesis: int | None = None,
) -> Deployment:
    """Deploys every contract from `deployer` and returns the record (not yet saved).

    Args:
        deployer: The Ape account that deploys; it keeps admin roles on a local chain only.
        oracle_signers: Addresses of the oracle quorum.
        threshold: How many oracles must sign a batch.
        governance: Governor and timelock settings; by default the live ones, or the short
            local ones on chain id 31337.
        treasury: Where DataMarket fees accrue; by default the timelock.
        guardian: Who may veto rewards roots besides the timelock; by default nobody (the
            deployer too on a local chain).
        rewards_genesis: First second of rewards epoch 0; by default the deploy block's time
            (the local demo puts it a week before its start, so that epoch 0 ends as the
            simulated history catches up with the present).
    """
    local = chain.chain_id == LOCAL_CHAIN_ID
    settings = governance or (LOCAL_GOVERNANCE if local else LIVE_GOVERNANCE)
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
    anchor = record(
        "AttestationAnchor",
        project.AttestationAnchor.deploy(deployer, oracle_signers, threshold, sender=deployer),
    )
    # The deployer administers the timelock until the governor is wired in.
    timelock = record(
        "DimoTimelock",
        project.DimoTimelock.deploy(
            settings.timelock_delay, [], [ZERO_ADDRESS], deployer, sender=deployer
        ),
    )
    governor = record(
        "DimoGovernor",
        project.DimoGovernor.deploy(
            token,
            timelock,
            settings.voting_delay,
            settings.voting_period,
            settings.proposal_threshold,
            sender=deployer,
        ),
    )
    timelock.grantRole(timelock.PROPOSER_ROLE(), governor, sender=deployer)
    timelock.grantRole(timelock.CANCELLER_ROLE(), governor, sender=deployer)
    parameters = record("Parameters", project.Parameters.deploy(deployer, sender=deployer))
    record("VehicleRights", project.VehicleRights.deploy(vehicles, sender=deployer))
    market = record(
        "DataMarket",
        project.DataMarket.deploy(
            deployer, token, vehicles, parameters, treasury or timelock.address, sender=deployer
        ),
    )
    vehicles.setDataMarket(market, sender=deployer)
    genesis = chain.blocks.head.timestamp if rewards_genesis is None else rewards_genesis
    rewards = record(
        "Rewards",
        project.Rewards.deploy(
            deployer, token, vehicles, anchor, parameters, genesis, sender=deployer
        ),
    )
    token.grantRole(token.MINTER_ROLE(), rewards, sender=deployer)
    record("BatteryCertificates", project.BatteryCertificates.deploy(anchor, sender=deployer))
    record("VehicleCredentials", project.VehicleCredentials.deploy(anchor, sender=deployer))
    # Licence fees go where protocol fees go; governance sets the fee (0 until it does).
    record(
        "DeveloperLicence",
        project.DeveloperLicence.deploy(
            token, parameters, treasury or timelock.address, sender=deployer
        ),
    )
    parameters.setUint(
        parameters.REWARDS_CHALLENGE_DELAY(), settings.rewards_challenge_delay, sender=deployer
    )
    guardians = [guardian] if guardian else []
    for address in guardians:
        rewards.grantRole(rewards.GUARDIAN_ROLE(), address, sender=deployer)

    # Hand every admin role to the timelock; the deployer keeps its own only locally.
    admin_roles: dict[str, tuple[Any, list[str]]] = {
        "ManufacturerRegistry": (registry, ["DEFAULT_ADMIN_ROLE", "REGISTRAR_ROLE"]),
        "DimoToken": (token, ["DEFAULT_ADMIN_ROLE"]),
        "VehicleId": (vehicles, ["DEFAULT_ADMIN_ROLE"]),
        "AttestationAnchor": (anchor, ["DEFAULT_ADMIN_ROLE"]),
        "Parameters": (parameters, ["DEFAULT_ADMIN_ROLE"]),
        "DataMarket": (market, ["DEFAULT_ADMIN_ROLE"]),
        "Rewards": (rewards, ["DEFAULT_ADMIN_ROLE"]),
    }
    holders = [timelock.address, deployer.address] if local else [timelock.address]
    roles: dict[str, dict[str, list[str]]] = {
        "DeviceId": {},
        "VehicleRights": {},
        "BatteryCertificates": {},
        "VehicleCredentials": {},
        "DeveloperLicence": {},
    }
    for name, (contract, role_names) in admin_roles.items():
        roles[name] = {}
        for role_name in role_names:
            role = getattr(contract, role_name)()
            contract.grantRole(role, timelock, sender=deployer)
            roles[name][role_name] = list(holders)
    roles["DimoToken"]["MINTER_ROLE"] = [rewards.address]
    roles["DataMarket"]["CURATOR_ROLE"] = []
    roles["Rewards"]["GUARDIAN_ROLE"] = list(guardians)
    roles["DimoTimelock"] = {
        "DEFAULT_ADMIN_ROLE": list(holders),
        "PROPOSER_ROLE": [governor.address],
        "CANCELLER_ROLE": [governor.address],
        "EXECUTOR_ROLE": [ZERO_ADDRESS],
    }
    roles["DimoGovernor"] = {}
    if local:
        token.grantRole(token.MINTER_ROLE(), deployer, sender=deployer)
        roles["DimoToken"]["MINTER_ROLE"].append(deployer.address)
        if deployer.address not in guardians:
            rewards.grantRole(rewards.GUARDIAN_ROLE(), deployer, sender=deployer)
            roles["Rewards"]["GUARDIAN_ROLE"].append(deployer.address)
    else:
        # Admin roles last: a renounced DEFAULT_ADMIN_ROLE can grant nothing more.
        for contract, role_names in admin_roles.values():
            for role_name in sorted(role_names, key=lambda r: r == "DEFAULT_ADMIN_ROLE"):
                contract.renounceRole(getattr(contract, role_name)(), deployer, sender=deployer)
        timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), deployer, sender=deployer)

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
    deployment = deploy(
        _deployer(),
        *_oracle_set(),
        treasury=os.environ.get("DIMO_TREASURY"),
        guardian=os.environ.get("DIMO_REWARDS_GUARDIAN"),
        rewards_genesis=int(os.environ["DIMO_REWARDS_GENESIS"])
        if os.environ.get("DIMO_REWARDS_GENESIS")
        else None,
    )
    default = Path("data") / "deployments" / f"{deployment.chain_id}.json"
    path = Path(os.environ.get("DIMO_DEPLOYMENT", default))
    deployment.save(path)
    print(f"deployment record: {path}")
    for name, rec in deployment.contracts.items():
        print(f"  {name:22} {rec.address}  (block {rec.block})")
