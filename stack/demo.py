"""The demo that `make run` seeds on the local chain, so that each role finds something to do.

Before the fleet drives its history: the local admin (dev account 0) becomes a curator and lists
two data products, the first fleet vehicles opt in to them (their readings are covered from
then on), the data buyer (account 5) and the token holder (account 6) get DIMO, and the holder
delegates its votes to itself. Once the history is driven: the holder proposes a feature-flag
change (open for votes after the local one-minute delay), and epoch 0's rewards are posted by
the oracle quorum (the deploy put epoch 0's end at the moment `make run` started, so that the
history falls inside it and it has ended by the time the fleet catches up).

Each step checks the chain first, so a second `make run` over the same data repeats nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from eth_account.signers.local import LocalAccount

from protocol.crypto import keccak256
from protocol.deployment import Deployment
from stack.exceptions import DemoSeedError, FleetSetupError
from stack.seed import ADMIN, OWNERS, FleetVehicle, _Chain, dev_account

__all__ = ["BUYER", "DEMO_PRODUCTS", "VOTER", "open_proposal", "post_first_rewards", "seed_market"]

#: anvil dev accounts of the demo's roles (the admin, 0, is the curator).
BUYER, VOTER = 5, 6
DIMO: Final = 10**18
#: DIMO minted for the buyer and for the token holder (enough to pass the quorum alone).
BUYER_DIMO, VOTER_DIMO = 1_000 * DIMO, 10_000_000 * DIMO
PERIOD_S: Final = 30 * 86_400


@dataclass(frozen=True, slots=True)
class DemoProduct:
    """A product the demo lists: what it unlocks, its price per 30-day period, who opts in."""

    name: str
    scopes: int
    price: int
    vehicles: int  # how many of the fleet's first vehicles opt in


#: BATTERY|CHARGING (1|2) and ODOMETER|DRIVING (4|8), as `Privileges` numbers them.
DEMO_PRODUCTS: Final = (
    DemoProduct("battery and charging", 0b0011, 5 * DIMO, 2),
    DemoProduct("driving and odometer", 0b1100, 10 * DIMO, 1),
)
#: The flag the demo proposal turns on.
DEMO_FLAG: Final = "FEATURE_GRID_PROGRAMMES"


def _step(chain: _Chain, step: str, fn: object, sender: str) -> None:
    try:
        chain.send(step, fn, sender)
    except FleetSetupError as exc:
        raise DemoSeedError(step, exc.detail) from None


def seed_market(rpc_url: str, deployment: Deployment, fleet: Sequence[FleetVehicle]) -> list[str]:
    """Lists the demo products with their opt-ins and funds the buyer and the holder, unless a
    product is already listed; returns what it did, one line a step (empty: nothing to do).

    Raises:
        DemoSeedError: a transaction failed.
    """
    admin, buyer, voter = dev_account(ADMIN), dev_account(BUYER), dev_account(VOTER)
    owners: dict[str, LocalAccount] = {dev_account(i).address: dev_account(i) for i in OWNERS}
    chain = _Chain(rpc_url, deployment, [admin, buyer, voter, *owners.values()])
    market, token = chain.contract("DataMarket"), chain.contract("DimoToken")
    if int(market.functions.lastProductId().call()) > 0:
        return []
    done = []
    curator = market.functions.CURATOR_ROLE().call()
    _step(
        chain,
        "make the admin a curator",
        market.functions.grantRole(curator, admin.address),
        admin.address,
    )
    for product in DEMO_PRODUCTS:
        _step(
            chain,
            f"list the {product.name} product",
            market.functions.listProduct(product.scopes, product.price, PERIOD_S, b""),
            admin.address,
        )
        product_id = int(market.functions.lastProductId().call())
        opted = fleet[: product.vehicles]
        for vehicle in opted:
            _step(
                chain,
                f"opt vehicle {vehicle.vehicle_id} in to product {product_id}",
                market.functions.optIn(vehicle.vehicle_id, product_id),
                owners[vehicle.owner].address,
            )
        done.append(
            f"product #{product_id} ({product.name}, {product.price // DIMO} DIMO a 30 days), "
            f"vehicles {', '.join(f'#{v.vehicle_id}' for v in opted) or 'none'} opted in"
        )
    for index, amount in ((BUYER, BUYER_DIMO), (VOTER, VOTER_DIMO)):
        account = dev_account(index)
        _step(
            chain,
            f"mint DIMO for account {index}",
            token.functions.mint(account.address, amount),
            admin.address,
        )
        done.append(f"{amount // DIMO:,} DIMO for account {index} ({account.address})")
    _step(
        chain, "delegate the holder's votes", token.functions.delegate(voter.address), voter.address
    )
    return done


def open_proposal(rpc_url: str, deployment: Deployment) -> str | None:
    """The token holder proposes to turn `DEMO_FLAG` on, unless a proposal exists already;
    returns the proposal's description (None: there was one).

    Raises:
        DemoSeedError: the proposal failed.
    """
    voter = dev_account(VOTER)
    chain = _Chain(rpc_url, deployment, [voter])
    governor, parameters = chain.contract("DimoGovernor"), chain.contract("Parameters")
    if governor.events.ProposalCreated().get_logs(from_block=0):
        return None
    key = keccak256(DEMO_FLAG.encode())
    data = parameters.encode_abi("setFlag", args=[key, True])
    description = f"Turn {DEMO_FLAG} on (the demo's proposal)"
    _step(
        chain,
        "propose the demo flag change",
        governor.functions.propose([parameters.address], [0], [data], description),
        voter.address,
    )
    return description


def post_first_rewards(
    data: Path, rpc_url: str, deployment: Path, signer_keys: Sequence[str], submitter_key: str
) -> str | None:
    """Posts epoch 0's rewards root signed by the oracle quorum (`dimo rewards post`), unless
    it is posted already; returns the command's last line (None: nothing to do).

    Raises:
        DemoSeedError: the command failed (its output says why).
    """
    record = Deployment.load(deployment)
    chain = _Chain(rpc_url, record, [])
    rewards = chain.contract("Rewards")
    if rewards.functions.epochRoot(0).call()[0] != b"\x00" * 32:
        return None
    env = {
        "DIMO_REWARDS_RPC_URL": rpc_url,
        "DIMO_REWARDS_DEPLOYMENT": str(deployment),
        "DIMO_REWARDS_BLOB_DIR": str(data / "blobs"),
        "DIMO_REWARDS_OUT_DIR": str(data / "rewards"),
        "DIMO_REWARDS_SIGNER_KEYS": json.dumps(list(signer_keys)),
        "DIMO_REWARDS_SUBMITTER_KEY": submitter_key,
    }
    done = subprocess.run(
        [sys.executable, "-m", "stack", "rewards", "post", "--epoch", "0"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise DemoSeedError("post epoch 0's rewards", output[-800:])
    return output.splitlines()[-1] if output else "posted"
