"""The deployment record: chain, addresses, deployment block and ABIs that services load."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.exceptions import ProtocolError

#: Contracts every deployment has, in deployment order.
CONTRACTS = (
    "ManufacturerRegistry",
    "DimoToken",
    "VehicleId",
    "DeviceId",
    "AttestationAnchor",
    "DimoTimelock",
    "DimoGovernor",
    "Parameters",
    "VehicleRights",
    "DataMarket",
    "Rewards",
    "BatteryCertificates",
    "VehicleCredentials",
    "DeveloperLicence",
)


class DeploymentError(ProtocolError):
    """The deployment record is missing, unreadable or incomplete."""


class DeploymentNotFound(DeploymentError, FileNotFoundError):
    """No deployment record at the given path."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no deployment record at {path}: run `ape run deploy` (or `make run`)")
        self.path = path


class DeploymentInvalid(DeploymentError, ValueError):
    """The record does not parse or lacks a contract."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"deployment record {path} is invalid: {reason}; deploy again")
        self.path = path
        self.reason = reason


class ContractRecord(BaseModel):
    """One deployed contract."""

    model_config = ConfigDict(frozen=True)

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    block: int = Field(ge=0, description="block of the deployment transaction")
    tx_hash: str
    abi: list[dict[str, Any]]


class Deployment(BaseModel):
    """Everything a service needs to talk to the platform's contracts on one chain."""

    model_config = ConfigDict(frozen=True)

    chain_id: int
    network: str = Field(description="Ape network choice the record was made on")
    deployer: str
    start_block: int = Field(ge=0, description="first block any service must scan")
    contracts: dict[str, ContractRecord]
    roles: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="contract -> role -> holders, as set by the deploy"
    )

    def contract(self, name: str) -> ContractRecord:
        """The record of contract `name`.

        Raises:
            DeploymentInvalid: the record has no such contract.
        """
        try:
            return self.contracts[name]
        except KeyError:
            raise DeploymentInvalid(Path("<memory>"), f"no contract {name!r}") from None

    def save(self, path: Path) -> None:
        """Writes the record atomically (temp file, fsync, rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w") as fh:
            fh.write(self.model_dump_json(indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | str) -> Deployment:
        """Reads and validates the record at `path` (a path or its text).

        Raises:
            DeploymentNotFound: no file there.
            DeploymentInvalid: it does not parse, or a contract is missing.
        """
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise DeploymentNotFound(path) from None
        except json.JSONDecodeError as err:
            raise DeploymentInvalid(path, f"not JSON ({err})") from None
        try:
            record = cls.model_validate(raw)
        except ValidationError as err:
            raise DeploymentInvalid(path, str(err)) from None
        missing = [name for name in CONTRACTS if name not in record.contracts]
        if missing:
            raise DeploymentInvalid(path, f"missing contracts {missing}")
        return record
