"""`/dapp`: what the dApp needs to talk to the chain: chain, contract addresses and ABIs."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, ClassVar, Final

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from indexer.api.deps import Settings
from indexer.api.problems import problem_responses
from indexer.exceptions import ApiProblem
from protocol.deployment import Deployment, DeploymentError
from protocol.signal_labels import label_of
from protocol.vss import CATALOG

router = APIRouter(prefix="/dapp", tags=["dapp"])

#: Chain id of the local anvil chain: only there is the RPC URL served and the dev wallet offered.
LOCAL_CHAIN_ID: Final = 31337


class DeploymentNotFound(ApiProblem, LookupError):
    """The indexer has no readable deployment record, so there is no dApp configuration."""

    slug: ClassVar[str] = "deployment-not-found"
    status: ClassVar[int] = 404
    title: ClassVar[str] = "Deployment not found"


class ContractOut(BaseModel):
    """One deployed contract: where it is and its ABI (from the compiled artifact)."""

    address: str = Field(description="EIP-55 address")
    abi: list[dict[str, Any]] = Field(description="The contract's JSON ABI")


class SignalUnitOut(BaseModel):
    """How to show a signal's values (a row of `protocol.signal_labels`, the table the API
    docs list under telemetry)."""

    unit: str = Field(description="The VSS unit (`km/h`, `percent`, `m`, ...), empty for none")
    description: str = Field(description="One line on what the value is")
    label: str = Field(description="Plain words for the signal, e.g. `Battery charge`")
    shown_unit: str = Field(description="The unit values are shown in (`%`, `km`), or empty")
    shown_factor: float = Field(description="Shown value = VSS value x this (m -> km: 0.001)")
    value_names: dict[str, str] = Field(
        description="Names of coded values by the value as text (gear `126` -> `P (park)`)"
    )


class DappConfigOut(BaseModel):
    """The chain side of the dApp, from the deployment record the indexer follows."""

    chain_id: int = Field(description="EIP-155 chain id of the deployment")
    rpc_url: str | None = Field(
        description="JSON-RPC URL the browser may read from and the dev wallet sends to; only "
        "on the local chain (a live RPC URL may carry a key), else null: use the wallet's"
    )
    dev_wallet: bool = Field(description="Whether the anvil dev accounts may be offered")
    contracts: dict[str, ContractOut] = Field(description="Contract name -> address and ABI")
    signals: dict[str, SignalUnitOut] = Field(
        description="VSS path -> unit, meaning, plain label and shown unit, from the platform's "
        "VSS catalog (the table the telemetry routes check names against) and its labels"
    )


def _signal_out(path: str) -> SignalUnitOut:
    signal, shown = CATALOG[path], label_of(path)
    return SignalUnitOut(
        unit=signal.unit,
        description=signal.description,
        label=shown.label,
        shown_unit=shown.unit,
        shown_factor=shown.factor,
        value_names=dict(shown.values),
    )


_cache: dict[Path, tuple[float, DappConfigOut]] = {}
#: The configuration's JSON and its gzip form, by the configuration they encode.
_encoded: dict[int, tuple[DappConfigOut, bytes, bytes]] = {}


def dapp_config(deployment: Path, rpc_url: str) -> DappConfigOut:
    """The dApp's configuration from the record at `deployment` (re-read when it changes).

    Raises:
        DeploymentNotFound: no readable, complete record there.
    """
    try:
        mtime = deployment.stat().st_mtime
        cached = _cache.get(deployment)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        record = Deployment.load(deployment)
    except (OSError, DeploymentError) as exc:
        raise DeploymentNotFound(
            f"the deployment record {deployment} cannot be read ({exc}); deploy the contracts "
            "(`make run`) or set DIMO_INDEXER_DEPLOYMENT"
        ) from None
    local = record.chain_id == LOCAL_CHAIN_ID
    config = DappConfigOut(
        chain_id=record.chain_id,
        rpc_url=rpc_url if local else None,
        dev_wallet=local,
        contracts={
            name: ContractOut(address=c.address, abi=c.abi) for name, c in record.contracts.items()
        },
        signals={path: _signal_out(path) for path in CATALOG},
    )
    _cache[deployment] = (mtime, config)
    return config


@router.get(
    "/config.json",
    response_model=DappConfigOut,
    summary="Chain, addresses and ABIs for the dApp",
    responses=problem_responses(404),
)
def get_config(settings: Settings, request: Request) -> Response:
    """The deployment the indexer follows, as the dApp's viem clients need it (gzip-compressed
    when the client accepts it: the ABIs make it about 130 KB)."""
    config = dapp_config(settings.deployment, settings.rpc_url)
    encoded = _encoded.get(id(config))
    if encoded is None or encoded[0] is not config:
        plain = config.model_dump_json().encode()
        encoded = (config, plain, gzip.compress(plain, compresslevel=6))
        _encoded.clear()
        _encoded[id(config)] = encoded
    headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(encoded[2], media_type="application/json", headers=headers)
    return Response(encoded[1], media_type="application/json", headers=headers)
