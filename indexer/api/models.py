"""Response models shared by the routes, apart from the storage rows: identity, rights,
governance, and the telemetry and proof models several route modules serve.

Addresses are EIP-55 checksummed; uint256 amounts and ids are decimal strings (JSON numbers
lose precision past 2^53); times are unix seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel, Field

from indexer.rights import Intervals
from protocol.cid import Cid, InvalidCid
from protocol.crypto import checksum_address
from protocol.disclosure import DisclosedBundle
from protocol.privileges import Privilege
from protocol.readings import Reading

#: A 20-byte address, any case (compared case-insensitively).
ADDRESS_PATTERN: Final = r"^0x[0-9a-fA-F]{40}$"
#: A uint256 in decimal.
UINT256_PATTERN: Final = r"^[0-9]{1,78}$"


def checksum(address: str) -> str:
    """`address`, in any case (compared case-insensitively), in its EIP-55 checksummed form."""
    return checksum_address(address.lower())


def checksum_or_none(address: str | None) -> str | None:
    """`checksum` of an optional address."""
    return None if address is None else checksum(address)


def privilege_list(scopes: int) -> list[str]:
    """The names of the privileges set in `scopes`, lowest bit first (undefined bits skipped)."""
    return [p.name for p in Privilege if p.name is not None and scopes & p.value]


def cid_text(terms_hex: str) -> str | None:
    """The canonical string of a binary CID held as 0x hex, or None if it is not a CID."""
    try:
        return Cid.from_bytes(bytes.fromhex(terms_hex.removeprefix("0x"))).encode()
    except (InvalidCid, ValueError):
        return None


_ADDR = "EIP-55 checksummed address"
_AMOUNT = "DIMO wei, decimal string"


class TermsMixin(BaseModel):
    """The terms a grant or product points at."""

    terms_cid: str | None = Field(
        description="Canonical CID string of the terms; null if the bytes are not a CID"
    )
    terms_cid_hex: str = Field(description="The terms CID's bytes as emitted, 0x hex")


class ScopesMixin(BaseModel):
    """A privilege mask with its names."""

    scopes: int = Field(description="Privilege bit mask (protocol/privileges.py)")
    privileges: list[str] = Field(description="Names of the privileges set, e.g. BATTERY")


class AccessOut(BaseModel):
    """What one account may read of one vehicle now: per privilege, the covered times."""

    vehicle_id: int = Field(description="Vehicle token id")
    account: str = Field(description="The account, " + _ADDR)
    now_ms: int = Field(description="The instant the rights are computed for, unix ms")
    is_owner: bool = Field(description="Whether the account owns the vehicle now")
    privileges: dict[str, list[tuple[int, int]]] = Field(
        description="Privilege name -> half-open [from_ms, to_ms) intervals of readings it "
        "may read; a privilege live now has an interval ending at now_ms"
    )


class VehicleOut(BaseModel):
    """A vehicle identity NFT."""

    id: int = Field(description="Vehicle token id")
    owner: str = Field(description="Current owner, " + _ADDR)
    model_id: int = Field(description="Catalog model id")
    make: str = Field(description="Manufacturer name as registered")
    model: str = Field(description="Model name as registered")
    year: int = Field(description="Model year")
    vin_commitment: str = Field(description="keccak256(salt ++ VIN), 0x hex")
    minter: str = Field(description="Who minted it (the owner or a connection), " + _ADDR)
    device: str | None = Field(description="Paired device, " + _ADDR + "; null when none")
    epoch: int = Field(description="Transfers since the mint; grants of older epochs are void")
    minted_at: int = Field(description="Mint time")
    minted_block: int = Field(description="Block of the mint")


class DeviceOut(BaseModel):
    """A device identity NFT (the token id is the device's address)."""

    address: str = Field(description="Device address, " + _ADDR)
    manufacturer_id: int = Field(description="Manufacturer that minted it")
    manufacturer: str | None = Field(description="That manufacturer's registered name")
    serial_hash: str = Field(description="keccak256 of the serial number, 0x hex")
    owner: str = Field(description="Current owner, " + _ADDR)
    claimed: bool = Field(description="Whether a user has claimed it from its manufacturer")
    vehicle_id: int | None = Field(description="Paired vehicle; null when unpaired")
    paired_since: int | None = Field(description="Time of the current pairing")
    pairings_count: int = Field(description="Pairings so far")
    minted_block: int = Field(description="Block of the mint")


class PairingOut(BaseModel):
    """One pairing interval of a device and a vehicle."""

    device: str = Field(description="The device, " + _ADDR)
    vehicle_id: int = Field(description="The vehicle")
    owner: str = Field(description="Vehicle owner who paired, " + _ADDR)
    paired_at: int = Field(description="Pairing time")
    paired_block: int = Field(description="Block of DevicePaired")
    paired_tx_hash: str = Field(description="Transaction of DevicePaired")
    unpaired_at: int | None = Field(description="Unpairing time; null while paired")
    unpaired_block: int | None = Field(description="Block of DeviceUnpaired")
    unpaired_tx_hash: str | None = Field(description="Transaction of DeviceUnpaired")
    reason: str | None = Field(
        description="Why it ended: owner, vehicle-transferred or device-transferred"
    )


class GrantOut(ScopesMixin, TermsMixin):
    """An owner's grant of read privileges on one vehicle to one grantee."""

    vehicle_id: int = Field(description="The vehicle")
    grantee: str = Field(description="Who may read, " + _ADDR)
    owner: str = Field(description="Owner who granted, " + _ADDR)
    expiry: int = Field(description="Time from which the grant is void")
    epoch: int = Field(description="Vehicle epoch it was granted in")
    live: bool = Field(
        description="In force now: granted in the vehicle's current epoch and not expired"
    )
    granted_at: int = Field(description="Grant time")
    block_number: int = Field(description="Block of the Granted event")
    tx_hash: str = Field(description="Transaction of the Granted event")


class OptInOut(BaseModel):
    """One interval during which a vehicle was opted in to a data product."""

    vehicle_id: int = Field(description="The vehicle")
    product_id: int = Field(description="The product")
    owner: str = Field(description="Owner who opted in, " + _ADDR)
    opted_in_at: int = Field(description="Opt-in time")
    opted_in_block: int = Field(description="Block of OptedIn")
    opted_out_at: int | None = Field(description="Opt-out time; null while opted in")
    opted_out_block: int | None = Field(description="Block of OptedOut")
    opted_out_by: str | None = Field(description="Owner who opted out, " + _ADDR)
    active: bool = Field(description="Opted in now")


class RevenueOut(BaseModel):
    """A vehicle's revenue from one product: shares of licence sales while it was opted in."""

    product_id: int = Field(description="The product")
    opted_in: bool = Field(description="Opted in now")
    earned: str = Field(description="Shares of every sale made while opted in, " + _AMOUNT)
    claimed: str = Field(description="Paid out to owners so far, " + _AMOUNT)
    claimable: str = Field(description="earned - claimed: what `claim` pays now, " + _AMOUNT)
    last_claimed_at: int | None = Field(description="Time of the last claim; null if none")


class ManufacturerOut(BaseModel):
    """A registered manufacturer or vehicle connection."""

    id: int = Field(description="Manufacturer id")
    account: str = Field(description="Its account, " + _ADDR)
    name: str = Field(description="Registered name")
    capabilities: int = Field(description="Capability bits: 1 mint devices, 2 mint vehicles")
    active: bool = Field(description="Whether it may act")
    registered_block: int = Field(description="Block of the registration")


class ProductOut(ScopesMixin, TermsMixin):
    """A data product buyers license."""

    id: int = Field(description="Product id")
    curator: str = Field(description="Curator who listed it, " + _ADDR)
    price_per_period: str = Field(description="Price of one period, " + _AMOUNT)
    period_seconds: int = Field(description="Length of one period in seconds")
    listed_at: int = Field(description="Listing time")
    vehicles_opted_in: int = Field(description="Vehicles opted in now")


class LicenceOut(BaseModel):
    """A buyer's licence of one product (all its purchases together)."""

    buyer: str = Field(description="Licence holder, " + _ADDR)
    product_id: int = Field(description="The product")
    expiry: int = Field(description="Time the licence ends")
    active: bool = Field(description="Not expired now")
    first_bought_at: int = Field(description="Time of the first purchase")
    periods: int = Field(description="Periods bought in total")
    paid: str = Field(description="Paid in total, " + _AMOUNT)


class ActionOut(BaseModel):
    """One call a proposal makes when executed."""

    target: str = Field(description="Contract called, " + _ADDR)
    value: str = Field(description="Wei sent, decimal string")
    calldata: str = Field(description="Call data, 0x hex")


class ProposalOut(BaseModel):
    """A governance proposal with its vote tally."""

    id: str = Field(description="Proposal id (uint256), decimal string")
    proposer: str = Field(description="Who proposed, " + _ADDR)
    description: str = Field(description="Proposal text")
    actions: list[ActionOut] = Field(description="Calls made on execution")
    vote_start: int = Field(description="Snapshot time; voting opens after it")
    vote_end: int = Field(description="Deadline: voting closes after it")
    status: str = Field(description="Last lifecycle event: created, queued, executed, canceled")
    phase: str = Field(
        description="For a created proposal, by the time now: pending, active or ended; else "
        "the status"
    )
    eta: int | None = Field(description="Timelock time from which it can run, once queued")
    votes_for: str = Field(description="Weight for, decimal string")
    votes_against: str = Field(description="Weight against, decimal string")
    votes_abstain: str = Field(description="Weight abstaining, decimal string")
    created_at: int = Field(description="Time it was proposed")
    block_number: int = Field(description="Block of ProposalCreated")
    tx_hash: str = Field(description="Transaction of ProposalCreated")


class VoteOut(BaseModel):
    """One vote cast on a proposal."""

    proposal_id: str = Field(description="The proposal, decimal string")
    voter: str = Field(description="The voter, " + _ADDR)
    support: int = Field(description="0 against, 1 for, 2 abstain")
    choice: str = Field(description="against, for or abstain")
    weight: str = Field(description="Voting weight, decimal string")
    reason: str = Field(description="Reason given (may be empty)")
    cast_at: int = Field(description="Time of the vote")
    block_number: int = Field(description="Block of VoteCast")
    tx_hash: str = Field(description="Transaction of VoteCast")


class ParameterOut(BaseModel):
    """A governed platform parameter (flag or number)."""

    key: str = Field(description="bytes32 key, 0x hex (keccak256 of its name)")
    name: str | None = Field(description="The well-known name the key hashes, if any")
    kind: str = Field(description="flag or uint")
    value: str = Field(description="The value, decimal string (flags 0 or 1)")
    set_at: int = Field(description="Time it was last set")
    block_number: int = Field(description="Block it was last set in")
    tx_hash: str = Field(description="Transaction that last set it")


class RewardOut(BaseModel):
    """DIMO issued (minted) to an account; only the rewards contract mints on a live network."""

    recipient: str = Field(description="Who received it, " + _ADDR)
    amount: str = Field(description="Amount, " + _AMOUNT)
    issued_at: int = Field(description="Time of the mint")
    block_number: int = Field(description="Block of the mint")
    tx_hash: str = Field(description="Transaction of the mint")
    log_index: int = Field(description="Log index of the Transfer event in its block")


# -------------------------------------------------------------------------------------------
# telemetry and proofs
# -------------------------------------------------------------------------------------------

#: Description of a `covered` field.
COVERED_DOC: Final = (
    "The times served, `[from, to)` pairs in unix ms (the rest is outside your rights)"
)
#: Description of a reading's `value`.
VALUE_DOC: Final = "A number (booleans as 0/1) or, for text signals, text"


def hex_of(raw: bytes) -> str:
    """`raw` as 0x-prefixed hex."""
    return "0x" + raw.hex()


class WithheldOut(BaseModel):
    """A requested signal of which the caller's rights cover nothing."""

    signal: str = Field(description="VSS name")
    missing_scope: str = Field(description="The privilege it needs")


class ReadingOut(BaseModel):
    """One verified reading and the bundle that carries it."""

    t: int = Field(description="Reading time, unix ms")
    value: float | str = Field(description=VALUE_DOC)
    batch_id: int = Field(description="The anchored batch")
    leaf_index: int = Field(description="The bundle's index in the batch")


def reading_out(r: Reading) -> ReadingOut:
    """The served form of a verified reading."""
    return ReadingOut(t=r.ts, value=r.value, batch_id=r.batch_id, leaf_index=r.leaf_index)


_UINT64_MAX: Final = (1 << 64) - 1


class LeafOut(BaseModel):
    """The Merkle leaf of a bundle, the `leaf` argument of `AttestationAnchor.verifyReading`."""

    device: str = Field(description="The signing device, EIP-55 address")
    # Bounded as the leaf encodes them (vehicle ids are int64 in the index): the model is also
    # a request body (`POST /apps/proofs/check`), so no integer may reach SQL or the encoder
    # unchecked.
    vehicle_id: int = Field(ge=0, le=(1 << 63) - 1, description="The vehicle")
    sequence: int = Field(ge=0, le=_UINT64_MAX, description="The device's bundle sequence")
    window_start: int = Field(ge=0, le=_UINT64_MAX, description="Bundle window start, unix ms")
    window_end: int = Field(ge=0, le=_UINT64_MAX, description="Bundle window end, unix ms")
    data_hash: str = Field(
        description="Schema 1: keccak256 of the readings' CBOR; schema 2: the root of the "
        "bundle's signal tree; 0x hex"
    )
    signature_hash: str = Field(description="keccak256 of the device signature, 0x hex")


class BatchOut(BaseModel):
    """The anchored batch holding the bundle."""

    id: int = Field(description="On-chain batch id")
    root: str = Field(description="Merkle root anchored on-chain, 0x hex")
    cid: str = Field(description="CID of the batch content")
    tx_hash: str = Field(description="Anchoring transaction, 0x hex")
    block_number: int = Field(description="Block of the anchoring transaction")


class SignalOpeningOut(BaseModel):
    """One signal of a schema-2 bundle, opened: the `opening` argument of
    `AttestationAnchor.verifySignal` (see docs/protocol.md)."""

    name: str = Field(description="The signal's VSS name")
    salt: str = Field(description="Its secret 32-byte salt in this bundle, 0x hex")
    samples: str = Field(description="Canonical CBOR of its samples [[ts, value], ...], 0x hex")
    proof: list[str] = Field(description="Path from its leaf to the bundle's dataHash, 0x hex")


class CommitmentOut(BaseModel):
    """A signal of a schema-2 bundle as everyone may see it: its name and salted commitment."""

    name: str = Field(description="The signal's VSS name")
    commitment: str = Field(description="keccak256(salt || samples), 0x hex")


def leaf_out(leaf: tuple[str, int, int, int, int, bytes, bytes]) -> LeafOut:
    """The served form of a batch leaf."""
    device, vehicle, sequence, window_start, window_end, data_hash, sig_hash = leaf
    return LeafOut(
        device=device,
        vehicle_id=vehicle,
        sequence=sequence,
        window_start=window_start,
        window_end=window_end,
        data_hash=hex_of(data_hash),
        signature_hash=hex_of(sig_hash),
    )


def openings_out(opened: DisclosedBundle) -> tuple[list[CommitmentOut], list[SignalOpeningOut]]:
    """The served form of a schema-2 disclosure: every commitment, the opened signals."""
    commitments = [
        CommitmentOut(name=n, commitment=hex_of(c)) for n, c in opened.commitments.items()
    ]
    return commitments, [SignalOpeningOut(**o.as_json()) for o in opened.openings]


def envelope(
    app: str,
    vehicle_id: int,
    start: int,
    end: int,
    context: dict[str, Any],
    within: dict[str, Intervals],
    withheld: Sequence[WithheldOut],
    inputs: list[tuple[int, int]],
    result: dict[str, Any],
) -> dict[str, Any]:
    """The served answer of an application: its window, context, the times and signals its
    inputs cover, the withheld signals, its input bundles `[batch_id, leaf_index]`, result."""
    return {
        "app": app,
        "vehicle_id": vehicle_id,
        "start": start,
        "end": end,
        "context": context,
        "covered": {name: [list(span) for span in spans] for name, spans in within.items()},
        "withheld": [w.model_dump() for w in withheld],
        "inputs": [list(ref) for ref in inputs],
        "result": result,
    }
