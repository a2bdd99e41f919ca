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

    def claim_device(self, user: Any) -> Any:
        """Mints a new device and has `user` claim it; returns the claim and the device key."""
        devices, key = self.c["DeviceId"], self.device_key()
        devices.mintDevices([key.address], [keccak(key.address.encode())], sender=self.manufacturer)
        msg = {"device": key.address, "user": user.address, "deadline": FAR}
        tx = devices.claim(
            key.address,
            user,
            FAR,
            self.sign(user.private_key, devices, "ClaimDevice", CLAIM_TYPES, msg),
            self.sign(key.key, devices, "ClaimDevice", CLAIM_TYPES, msg),
            sender=user,
        )
        return tx, key

    def pair(self, owner: Any, vehicle_id: int, key: Any) -> Any:
        """Pairs `owner`'s device `key` to `owner`'s vehicle (the device's first pairing)."""
        devices = self.c["DeviceId"]
        msg = {"vehicleId": vehicle_id, "device": key.address, "nonce": 0, "deadline": FAR}
        return devices.pair(
            vehicle_id,
            key.address,
            FAR,
            self.sign(owner.private_key, devices, "PairDevice", PAIR_TYPES, msg),
            self.sign(key.key, devices, "PairDevice", PAIR_TYPES, msg),
            sender=owner,
        )

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
        user = b.fresh()
        tx, key = b.claim_device(user)
        state["key"], state["user"] = key, user
        return tx

    out["claim_device"] = measured(claim)

    def pair() -> Any:
        claim()
        key, user = state["key"], state["user"]
        vehicle = vehicles.mint("Hyundai", "Kona Electric", 2019, b.vin(), sender=user)
        return b.pair(user, int(vehicle.return_value), key)

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


GRANT_TYPES = [
    {"name": n, "type": t}
    for n, t in [
        ("vehicleId", "uint256"),
        ("epoch", "uint32"),
        ("grantee", "address"),
        ("scopes", "uint256"),
        ("expiry", "uint64"),
        ("termsCid", "bytes"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ]
]
PERMIT_TYPES = [
    {"name": n, "type": t}
    for n, t in [
        ("owner", "address"),
        ("spender", "address"),
        ("value", "uint256"),
        ("nonce", "uint256"),
        ("deadline", "uint256"),
    ]
]
BALLOT_TYPES = [
    {"name": n, "type": t}
    for n, t in [
        ("proposalId", "uint256"),
        ("support", "uint8"),
        ("voter", "address"),
        ("nonce", "uint256"),
    ]
]
#: A 36-byte CIDv1 (raw, sha2-256) in binary form, as grants and products carry terms.
TERMS_CID = bytes.fromhex("01551220") + keccak(b"terms")
PRICE = 10**18


def _bulk(b: Bench, sender: Any, calls: list[Any]) -> None:
    """Sends web3 calls from an unlocked anvil account and waits for the last (fast setup)."""
    web3 = b.chain.provider.web3
    last = None
    for call in calls:
        last = call.transact({"from": sender.address, "gas": 400_000})
    if last is not None and web3.eth.wait_for_transaction_receipt(last)["status"] != 1:
        raise RuntimeError("bulk setup transaction failed")


def _web3(b: Bench, contract: Any) -> Any:
    abi = [item.model_dump(mode="json", by_alias=True) for item in contract.contract_type.abi]
    return b.chain.provider.web3.eth.contract(address=contract.address, abi=abi)


def rights_figures(b: Bench) -> dict[str, int]:
    """Data rights, the data market and governance (issue 5).

    Grants go to a fresh grantee on a vehicle of its own (a new slot). A licence is bought by
    a buyer who holds DIMO and approved the market, of a product with 1 or 1,000 vehicles
    opted in (a sale costs the same whoever earns: the stream is O(1)); the buyer's licence
    slot is new. `opt_in` and the claims use vehicles paired with a device (only those earn).
    `claim_revenue` pays, a day after a sale, an owner who ALREADY holds DIMO (the common
    case: rewards); `claim_revenue_first_holder` pays one who holds none yet. Votes: the
    second vote of the same side on the same proposal, after a warm-up.
    """
    vehicles, token = b.c["VehicleId"], b.c["DimoToken"]
    rights, market = b.c["VehicleRights"], b.c["DataMarket"]
    params, governor = b.c["Parameters"], b.c["DimoGovernor"]
    out: dict[str, int] = {}
    scopes = 1 | 2

    def new_vehicle(owner: Any) -> int:
        tx = vehicles.mint("Hyundai", "Kona Electric", 2019, b.vin(), sender=owner)
        return int(tx.return_value)

    def paired_vehicle(owner: Any) -> int:
        """A vehicle of `owner` paired with a device: only such a vehicle earns revenue."""
        vehicle = new_vehicle(owner)
        b.pair(owner, vehicle, b.claim_device(owner)[1])
        return vehicle

    def grant() -> Any:
        owner = b.fresh()
        vehicle = new_vehicle(owner)
        return rights.grant(vehicle, b.fresh(), scopes, FAR, TERMS_CID, sender=owner)

    out["grant"] = measured(grant)

    state: dict[str, Any] = {}

    def grant_by_sig() -> Any:
        owner = b.fresh()
        vehicle, grantee = new_vehicle(owner), b.fresh()
        msg = {
            "vehicleId": vehicle,
            "epoch": 0,
            "grantee": grantee.address,
            "scopes": scopes,
            "expiry": FAR,
            "termsCid": TERMS_CID,
            "nonce": 0,
            "deadline": FAR,
        }
        sig = b.sign(owner.private_key, rights, "Grant", GRANT_TYPES, msg)
        state["owner"], state["vehicle"], state["grantee"] = owner, vehicle, grantee
        return rights.grantBySig(
            vehicle, grantee, scopes, FAR, TERMS_CID, FAR, sig, sender=b.connection
        )

    out["grant_by_sig"] = measured(grant_by_sig)

    def revoke() -> Any:
        grant_by_sig()
        return rights.revoke(state["vehicle"], state["grantee"], sender=state["owner"])

    out["revoke"] = measured(revoke)

    params.setUint(params.PROTOCOL_FEE_BPS(), 250, sender=b.admin)
    curator = b.fresh()
    market.grantRole(market.CURATOR_ROLE(), curator, sender=b.admin)

    def list_product() -> Any:
        return market.listProduct(scopes, PRICE, 30 * 86_400, TERMS_CID, sender=curator)

    out["list_product"] = measured(list_product)
    product = int(list_product().return_value)

    def opt_in() -> Any:
        owner = b.fresh()
        return market.optIn(paired_vehicle(owner), product, sender=owner)

    out["opt_in"] = measured(opt_in)

    def funded_buyer() -> Any:
        buyer = b.fresh()
        token.mint(buyer, 10**24, sender=b.admin)
        token.approve(market, 10**24, sender=buyer)
        return buyer

    one = int(list_product().return_value)
    holder = b.fresh()
    token.mint(holder, 10**18, sender=b.admin)
    vehicle_one = paired_vehicle(holder)
    market.optIn(vehicle_one, one, sender=holder)
    out["buy_licence_1"] = measured(lambda: market.buy(one, 1, sender=funded_buyer()))

    many = int(list_product().return_value)
    fleet_owner = b._accounts.test_accounts[3]  # an anvil dev account: unlocked for web3
    first = int(vehicles.lastVehicleId()) + 1
    w3_vehicles = _web3(b, vehicles)
    _bulk(
        b,
        fleet_owner,
        [
            w3_vehicles.functions.mint("Hyundai", "Kona Electric", 2019, b.vin())
            for _ in range(1000)
        ],
    )
    w3_market = _web3(b, market)
    _bulk(b, fleet_owner, [w3_market.functions.optIn(v, many) for v in range(first, first + 1000)])
    if market.productOf(many).optedIn != 1000:
        raise RuntimeError("expected 1,000 vehicles opted in")
    out["buy_licence_1000"] = measured(lambda: market.buy(many, 1, sender=funded_buyer()))

    def buy_with_permit() -> Any:
        buyer = b.fresh()
        token.mint(buyer, 10**24, sender=b.admin)
        msg = {
            "owner": buyer.address,
            "spender": market.address,
            "value": PRICE,
            "nonce": 0,
            "deadline": FAR,
        }
        domain = {
            "name": "DIMO",
            "version": "1",
            "chainId": b.chain.chain_id,
            "verifyingContract": token.address,
        }
        signed = Account.sign_typed_data(buyer.private_key, domain, {"Permit": PERMIT_TYPES}, msg)
        r, s = signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
        return market.buyWithPermit(one, 1, FAR, signed.v, r, s, sender=buyer)

    out["buy_licence_permit"] = measured(buy_with_permit)

    def a_day_later() -> None:
        b.chain.mine(timestamp=b.chain.pending_timestamp + 86_400)

    # The holder's vehicle earns from every purchase of product `one` as its licence runs;
    # claim a day after each sale.
    def claim_revenue() -> Any:
        market.buy(one, 1, sender=funded_buyer())
        a_day_later()
        return market.claim(vehicle_one, [one], sender=holder)

    out["claim_revenue"] = measured(claim_revenue)

    def claim_first_holder() -> Any:
        owner = b.fresh()
        vehicle = paired_vehicle(owner)
        product_id = int(list_product().return_value)
        market.optIn(vehicle, product_id, sender=owner)
        market.buy(product_id, 1, sender=funded_buyer())
        a_day_later()
        return market.claim(vehicle, [product_id], sender=owner)

    out["claim_revenue_first_holder"] = measured(claim_first_holder)

    # A utility with a licence of `many` pays a demand-response settlement to 100 of its
    # vehicles (each credited as revenue, one event each); a new settlement id every time.
    params.setFlag(params.FEATURE_GRID_PROGRAMMES(), True, sender=b.admin)
    utility = funded_buyer()
    market.buy(many, 1, sender=utility)
    paid = [0]

    def pay_settlement() -> Any:
        paid[0] += 1
        ids = list(range(first, first + 100))
        settlement = keccak(f"settlement-{paid[0]}".encode())
        return market.paySettlement(many, settlement, ids, [10**18] * 100, sender=utility)

    out["pay_settlement_100"] = measured(pay_settlement)

    out.update(_governance_figures(b, params, governor, token))
    return out


def _governance_figures(b: Bench, params: Any, governor: Any, token: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    voters = []
    for _ in range(4):
        voter = b.fresh()
        token.mint(voter, 10**24, sender=b.admin)
        token.invoke_transaction("delegate", voter, sender=voter)
        voters.append(voter)
    b.chain.mine(timestamp=b.chain.pending_timestamp + 1)
    counter = {"n": 0}

    def proposal() -> tuple[list[str], list[int], list[bytes], str]:
        counter["n"] += 1
        calldata = params.setUint.encode_input(params.PROTOCOL_FEE_BPS(), 100 + counter["n"])
        return [params.address], [0], [calldata], f"Set the protocol fee, take {counter['n']}"

    def propose() -> Any:
        targets, values, calldatas, description = proposal()
        state["args"] = (targets, values, calldatas, keccak(description.encode()))
        return governor.propose(targets, values, calldatas, description, sender=voters[0])

    state: dict[str, Any] = {}
    out["propose"] = measured(propose)
    proposal_id = int(propose().events.filter(governor.ProposalCreated)[0].proposalId)
    b.chain.mine(timestamp=governor.proposalSnapshot(proposal_id) + 1)

    governor.castVote(proposal_id, 1, sender=voters[0])
    out["cast_vote"] = int(governor.castVote(proposal_id, 1, sender=voters[1]).gas_used)

    def ballot(voter: Any) -> bytes:
        domain = {
            "name": governor.name(),
            "version": governor.version(),
            "chainId": b.chain.chain_id,
            "verifyingContract": governor.address,
        }
        msg = {
            "proposalId": proposal_id,
            "support": 1,
            "voter": voter.address,
            "nonce": governor.nonces(voter),
        }
        return bytes(
            Account.sign_typed_data(
                voter.private_key, domain, {"Ballot": BALLOT_TYPES}, msg
            ).signature
        )

    tx = governor.castVoteBySig(proposal_id, 1, voters[2], ballot(voters[2]), sender=b.admin)
    out["cast_vote_by_sig"] = int(tx.gas_used)

    b.chain.mine(timestamp=governor.proposalDeadline(proposal_id) + 1)
    targets, values, calldatas, description_hash = state["args"]
    governor.queue(targets, values, calldatas, description_hash, sender=b.admin)
    b.chain.mine(timestamp=governor.proposalEta(proposal_id) + 1)
    tx = governor.execute(targets, values, calldatas, description_hash, sender=b.admin)
    out["execute"] = int(tx.gas_used)
    return out


def developer_licence_figures(b: Bench) -> dict[str, int]:
    """Minting a developer licence (its client id account, and the fee in DIMO that
    governance set) and adding a signer to it."""
    licences, params, token = b.c["DeveloperLicence"], b.c["Parameters"], b.c["DimoToken"]
    fee = 100 * 10**18
    params.setUint(params.DEVELOPER_LICENCE_FEE(), fee, sender=b.admin)
    dev = b.fresh()
    token.mint(dev, 10 * fee, sender=b.admin)
    token.approve(licences, 10 * fee, sender=dev)

    def mint() -> Any:
        return licences.mint(sender=dev)

    minted = licences.mint(sender=dev)
    licence_id = int(minted.events.filter(licences.LicenceMinted)[0].licenceId)

    def add_signer() -> Any:
        return licences.addSigner(licence_id, Account.create().address, sender=dev)

    return {
        "developer_licence_mint": measured(mint),
        "developer_licence_add_signer": measured(add_signer),
    }


def main() -> None:
    """Deploys on a fresh anvil and prints the figures."""
    from ape import networks

    with networks.parse_network_choice("ethereum:local:foundry"):
        bench = Bench()
        figures = identity_figures(bench)
        figures.update(rights_figures(bench))
        figures.update(developer_licence_figures(bench))
    print("optimizer: solc 0.8.28 via-IR, optimizer on, runs 1,000,000, evm cancun")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
