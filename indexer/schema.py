"""Tables of chain state: raw events, blocks, checkpoint, and the projections derived from them.

Design (reorg- and crash-safe by construction):

- `events` holds every decoded platform log, keyed by `(tx_hash, log_index)` (idempotent
  inserts), with its block, transaction index and the one or two entity keys it touches
  (`key1`, `key2`, e.g. `vehicle:7`, `device:0xab..`). It is the history everything else is
  derived from.
- Every other chain table is a projection: the rows of one entity key are a pure function of
  that key's events (`indexer.handlers`), rewritten whenever the key is touched. Rolling back
  a reorg is therefore `DELETE FROM events WHERE block_number > fork` plus a rewrite of the
  touched keys, the same code path as a forward sync.
- Every projected row carries `(block_number, tx_hash, log_index)` of the event that made it.
- `blocks` keeps `(number, hash, parent_hash, timestamp)` of each indexed block that had events
  and of each range end; `sync_state` holds the checkpoint. Both commit in the transaction that
  writes the rows they cover.

Addresses are stored as lowercase `0x` hex; hashes and byte strings as lowercase `0x` hex;
integers that may pass 2^63 (wei amounts, proposal ids) as `Uint256` (NUMERIC(78) on
PostgreSQL, decimal text on SQLite).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from indexer.db import metadata


class Uint256(TypeDecorator[int]):
    """An unsigned 256-bit integer: NUMERIC(78, 0) on PostgreSQL, decimal text elsewhere."""

    impl = String(78)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """NUMERIC on PostgreSQL (exact, ordered), text on SQLite (exact)."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(78))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        """Python int to the column's storage form."""
        if value is None:
            return None
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        """The column's storage form back to a Python int."""
        return None if value is None else int(value)


def _pos() -> list[Column[Any]]:
    """The event position columns every projected row carries."""
    return [
        Column("block_number", BigInteger, nullable=False, comment="block of the event"),
        Column("tx_hash", String(66), nullable=False, comment="transaction of the event"),
        Column("log_index", Integer, nullable=False, comment="log index of the event in its block"),
    ]


# --------------------------------------------------------------------------------------------
# Sync bookkeeping
# --------------------------------------------------------------------------------------------

events = Table(
    "events",
    metadata,
    Column("tx_hash", String(66), nullable=False, comment="transaction hash, 0x hex"),
    Column("log_index", Integer, nullable=False, comment="log index within the block"),
    Column("block_number", BigInteger, nullable=False, comment="block number"),
    Column("tx_index", Integer, nullable=False, comment="transaction index within the block"),
    Column("block_timestamp", BigInteger, nullable=False, comment="block time, unix seconds"),
    Column("address", String(42), nullable=False, comment="emitting contract, lowercase"),
    Column("contract", String(32), nullable=False, comment="contract name in the deployment"),
    Column("name", String(64), nullable=False, comment="event name"),
    Column("args", Text, nullable=False, comment="decoded arguments, JSON"),
    Column("key1", String(160), nullable=True, comment="first entity key the event touches"),
    Column("key2", String(160), nullable=True, comment="second entity key the event touches"),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "block_number"),
    Index(None, "key1"),
    # Few events touch a second entity (pairings): index only those.
    Index(
        None,
        "key2",
        sqlite_where=text("key2 IS NOT NULL"),
        postgresql_where=text("key2 IS NOT NULL"),
    ),
)

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False, comment="block number"),
    Column("hash", String(66), nullable=False, comment="block hash"),
    Column("parent_hash", String(66), nullable=False, comment="parent block hash"),
    Column("timestamp", BigInteger, nullable=False, comment="unix seconds"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False, comment="always 1"),
    Column("chain_id", BigInteger, nullable=False, comment="chain id of the indexed chain"),
    Column("fingerprint", String(66), nullable=False, comment="hash of the indexed addresses"),
    Column("last_block", BigInteger, nullable=False, comment="last block fully indexed"),
    Column("last_hash", String(66), nullable=False, comment="hash of last_block"),
)

# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------

manufacturers = Table(
    "manufacturers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="manufacturer id"),
    Column("account", String(42), nullable=False, comment="manufacturer account"),
    Column("name", Text, nullable=False, comment="registered name"),
    Column("capabilities", Integer, nullable=False, comment="capability bits"),
    Column("active", Boolean, nullable=False, comment="whether it may act"),
    Column("registered_block", BigInteger, nullable=False, comment="block of registration"),
    *_pos(),
)

models = Table(
    "models",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="catalog model id"),
    Column("make", Text, nullable=False, comment="manufacturer name"),
    Column("model", Text, nullable=False, comment="model name"),
    *_pos(),
)

vehicles = Table(
    "vehicles",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="vehicle token id"),
    Column("owner", String(42), nullable=False, comment="current owner"),
    Column("model_id", BigInteger, nullable=False, comment="models.id"),
    Column("year", Integer, nullable=False, comment="model year"),
    Column("vin_commitment", String(66), nullable=False, comment="keccak(salt ++ vin)"),
    Column("minter", String(42), nullable=False, comment="who minted it"),
    Column("device", String(42), nullable=True, comment="paired device, NULL when none"),
    Column("epoch", Integer, nullable=False, comment="transfers since the mint"),
    Column("minted_block", BigInteger, nullable=False, comment="block of the mint"),
    Column("minted_at", BigInteger, nullable=False, comment="mint time, unix seconds"),
    *_pos(),
    Index(None, "owner"),
    Index(None, "model_id", "year"),
    Index(None, "year"),
)

devices = Table(
    "devices",
    metadata,
    Column("address", String(42), primary_key=True, comment="device address (= token id)"),
    Column("manufacturer_id", BigInteger, nullable=False, comment="manufacturers.id"),
    Column("serial_hash", String(66), nullable=False, comment="keccak of the serial number"),
    Column("owner", String(42), nullable=False, comment="current owner"),
    Column("claimed", Boolean, nullable=False, comment="claimed by a user"),
    Column("vehicle_id", BigInteger, nullable=True, comment="paired vehicle, NULL when none"),
    Column("paired_since", BigInteger, nullable=True, comment="pairing time, unix seconds"),
    Column("pairings_count", Integer, nullable=False, comment="pairings so far (the nonce)"),
    Column("minted_block", BigInteger, nullable=False, comment="block of the mint"),
    *_pos(),
    Index(None, "owner"),
    Index(None, "vehicle_id"),
    Index(None, "manufacturer_id"),
)

pairings = Table(
    "pairings",
    metadata,
    Column("device", String(42), nullable=False, comment="the device"),
    Column("vehicle_id", BigInteger, nullable=False, comment="the vehicle"),
    Column("owner", String(42), nullable=False, comment="vehicle owner when paired"),
    Column("paired_block", BigInteger, nullable=False, comment="block of DevicePaired"),
    Column("paired_at", BigInteger, nullable=False, comment="pairing time, unix seconds"),
    Column("unpaired_block", BigInteger, nullable=True, comment="block of DeviceUnpaired"),
    Column("unpaired_at", BigInteger, nullable=True, comment="unpairing time, NULL while open"),
    Column("unpaired_tx_hash", String(66), nullable=True, comment="tx of DeviceUnpaired"),
    Column("reason", String(32), nullable=True, comment="owner|vehicle-transferred|device-..."),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "device", "paired_at"),
    Index(None, "vehicle_id", "paired_at"),
)

# --------------------------------------------------------------------------------------------
# Rights and market
# --------------------------------------------------------------------------------------------

grant_history = Table(
    "grant_history",
    metadata,
    Column("vehicle_id", BigInteger, nullable=False, comment="the vehicle"),
    Column("grantee", String(42), nullable=False, comment="who may read"),
    Column("owner", String(42), nullable=False, comment="owner who granted"),
    Column("scopes", BigInteger, nullable=False, comment="privilege mask"),
    Column("expiry", BigInteger, nullable=False, comment="unix seconds from which it is void"),
    Column("epoch", Integer, nullable=False, comment="vehicle transfer epoch when granted"),
    Column("terms_cid", String(200), nullable=False, comment="terms CID, binary form as hex"),
    Column("granted_at", BigInteger, nullable=False, comment="grant time, unix seconds"),
    Column("ended_block", BigInteger, nullable=True, comment="block of the revoke/replacement"),
    Column("ended_at", BigInteger, nullable=True, comment="end time, NULL while current"),
    Column("end_reason", String(16), nullable=True, comment="revoked | replaced"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "vehicle_id", "grantee"),
    Index(None, "grantee"),
)

grants = Table(
    "grants",
    metadata,
    Column("vehicle_id", BigInteger, nullable=False, comment="the vehicle"),
    Column("grantee", String(42), nullable=False, comment="who may read"),
    Column("owner", String(42), nullable=False, comment="owner who granted"),
    Column("scopes", BigInteger, nullable=False, comment="privilege mask"),
    Column("expiry", BigInteger, nullable=False, comment="unix seconds from which it is void"),
    Column("epoch", Integer, nullable=False, comment="live only while vehicles.epoch equals it"),
    Column("terms_cid", String(200), nullable=False, comment="terms CID, binary form as hex"),
    Column("granted_at", BigInteger, nullable=False, comment="grant time, unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("vehicle_id", "grantee"),
    Index(None, "grantee"),
)

products = Table(
    "products",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="product id"),
    Column("curator", String(42), nullable=False, comment="who listed it"),
    Column("scopes", BigInteger, nullable=False, comment="privilege mask a licence carries"),
    Column("price_per_period", Uint256, nullable=False, comment="DIMO wei per period"),
    Column("period_seconds", BigInteger, nullable=False, comment="length of one period"),
    Column("terms_cid", String(200), nullable=False, comment="terms CID, binary form as hex"),
    Column("listed_at", BigInteger, nullable=False, comment="listing time, unix seconds"),
    *_pos(),
)

opt_ins = Table(
    "opt_ins",
    metadata,
    Column("vehicle_id", BigInteger, nullable=False, comment="the vehicle"),
    Column("product_id", BigInteger, nullable=False, comment="the product"),
    Column("owner", String(42), nullable=False, comment="owner who opted in"),
    Column("opted_in_at", BigInteger, nullable=False, comment="unix seconds"),
    Column("opted_out_block", BigInteger, nullable=True, comment="block of OptedOut"),
    Column("opted_out_at", BigInteger, nullable=True, comment="unix seconds, NULL while in"),
    Column("opted_out_by", String(42), nullable=True, comment="owner who opted out"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "vehicle_id", "product_id"),
    Index(None, "product_id", "opted_in_at"),
)

licences = Table(
    "licences",
    metadata,
    Column("buyer", String(42), nullable=False, comment="licence holder"),
    Column("product_id", BigInteger, nullable=False, comment="the product"),
    Column("expiry", BigInteger, nullable=False, comment="unix seconds the licence ends"),
    Column("first_bought_at", BigInteger, nullable=False, comment="first purchase time"),
    Column("periods", BigInteger, nullable=False, comment="periods bought in total"),
    Column("paid", Uint256, nullable=False, comment="DIMO wei paid in total"),
    *_pos(),
    PrimaryKeyConstraint("buyer", "product_id"),
    Index(None, "product_id"),
)

purchases = Table(
    "purchases",
    metadata,
    Column("buyer", String(42), nullable=False, comment="who bought"),
    Column("product_id", BigInteger, nullable=False, comment="the product"),
    Column("periods", BigInteger, nullable=False, comment="periods bought"),
    Column("cost", Uint256, nullable=False, comment="DIMO wei paid"),
    Column("fee", Uint256, nullable=False, comment="protocol fee to the treasury"),
    Column("expiry", BigInteger, nullable=False, comment="licence expiry after the sale"),
    Column("stream_end", BigInteger, nullable=False, comment="the product's revenue stream end"),
    Column("bought_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "buyer", "product_id"),
    Index(None, "product_id", "block_number"),
)

revenue_claims = Table(
    "revenue_claims",
    metadata,
    Column("vehicle_id", BigInteger, nullable=False, comment="the vehicle"),
    Column("product_id", BigInteger, nullable=False, comment="the product"),
    Column("owner", String(42), nullable=False, comment="owner paid"),
    Column("amount", Uint256, nullable=False, comment="DIMO wei paid"),
    Column("claimed_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "vehicle_id"),
)

# --------------------------------------------------------------------------------------------
# Governance and token
# --------------------------------------------------------------------------------------------

parameters = Table(
    "parameters",
    metadata,
    Column("key", String(66), primary_key=True, comment="bytes32 key, 0x hex"),
    Column("kind", String(8), nullable=False, comment="flag | uint"),
    Column("value", Uint256, nullable=False, comment="the value (flags as 0/1)"),
    Column("set_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
)

proposals = Table(
    "proposals",
    metadata,
    Column("id", Uint256, primary_key=True, comment="proposal id"),
    Column("proposer", String(42), nullable=False, comment="who proposed"),
    Column("description", Text, nullable=False, comment="proposal text"),
    Column("actions", Text, nullable=False, comment="JSON [{target, value, calldata}]"),
    Column("vote_start", BigInteger, nullable=False, comment="snapshot time (clock units)"),
    Column("vote_end", BigInteger, nullable=False, comment="deadline (clock units)"),
    Column("status", String(16), nullable=False, comment="created|queued|executed|canceled"),
    Column("eta", BigInteger, nullable=True, comment="timelock eta once queued"),
    Column("votes_for", Uint256, nullable=False, comment="weight for"),
    Column("votes_against", Uint256, nullable=False, comment="weight against"),
    Column("votes_abstain", Uint256, nullable=False, comment="weight abstaining"),
    Column("created_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
)

votes = Table(
    "votes",
    metadata,
    Column("proposal_id", Uint256, nullable=False, comment="the proposal"),
    Column("voter", String(42), nullable=False, comment="the voter"),
    Column("support", Integer, nullable=False, comment="0 against, 1 for, 2 abstain"),
    Column("weight", Uint256, nullable=False, comment="voting weight"),
    Column("reason", Text, nullable=False, comment="reason given"),
    Column("cast_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "proposal_id"),
    Index(None, "voter"),
)

token_transfers = Table(
    "token_transfers",
    metadata,
    Column("sender", String(42), nullable=False, comment="from (zero on mint)"),
    Column("recipient", String(42), nullable=False, comment="to (zero on burn)"),
    Column("amount", Uint256, nullable=False, comment="DIMO wei"),
    Column("transferred_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "sender"),
    Index(None, "recipient"),
)

reward_epochs = Table(
    "reward_epochs",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False, comment="rewards epoch"),
    Column("root", String(66), nullable=False, comment="allocation Merkle root, 0x hex"),
    Column("total", Uint256, nullable=False, comment="DIMO wei allocated"),
    Column("cid", String(200), nullable=False, comment="allocation document CID, binary as hex"),
    Column("claimable_at", BigInteger, nullable=False, comment="claims open, unix seconds"),
    Column("status", String(8), nullable=False, comment="posted | vetoed"),
    Column("funded", Boolean, nullable=False, comment="the total was minted into Rewards"),
    Column("posted_at", BigInteger, nullable=False, comment="post time, unix seconds"),
    Column("vetoed_by", String(42), nullable=True, comment="who vetoed, NULL unless vetoed"),
    Column(
        "cached_depth",
        Integer,
        nullable=False,
        server_default="0",
        comment="claims' proofs may stop this deep; 0: at the root",
    ),
    *_pos(),
)

reward_claims = Table(
    "reward_claims",
    metadata,
    Column("epoch", BigInteger, nullable=False, comment="rewards epoch"),
    Column("vehicle_id", BigInteger, nullable=False, comment="the vehicle paid"),
    Column("owner", String(42), nullable=False, comment="its owner, who was paid"),
    Column("amount", Uint256, nullable=False, comment="DIMO wei"),
    Column("claimed_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("epoch", "vehicle_id"),
    Index(None, "vehicle_id"),
)

#: Projection tables of the Rewards contract (migration 0005).
REWARD_PROJECTIONS = (reward_epochs, reward_claims)

# --------------------------------------------------------------------------------------------
# Settlements paid through the data market
# --------------------------------------------------------------------------------------------

settlement_payments = Table(
    "settlement_payments",
    metadata,
    Column("payer", String(42), nullable=False, comment="the utility that paid"),
    Column("settlement_id", String(66), nullable=False, comment="bytes32 settlement id, 0x hex"),
    Column("product_id", BigInteger, nullable=False, comment="the licensed product paid through"),
    Column("vehicles", BigInteger, nullable=False, comment="vehicles credited"),
    Column("total", Uint256, nullable=False, comment="DIMO wei credited to the vehicles"),
    Column("fee", Uint256, nullable=False, comment="DIMO wei of protocol fee, on top"),
    Column("paid_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("payer", "settlement_id"),
)

settlement_credits = Table(
    "settlement_credits",
    metadata,
    Column("vehicle_id", BigInteger, nullable=False, comment="the vehicle credited"),
    Column("product_id", BigInteger, nullable=False, comment="revenue of this product"),
    Column("settlement_id", String(66), nullable=False, comment="bytes32 settlement id, 0x hex"),
    Column("amount", Uint256, nullable=False, comment="DIMO wei credited"),
    Column("credited_at", BigInteger, nullable=False, comment="unix seconds"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "vehicle_id", "product_id"),
    Index(None, "settlement_id"),
)

#: Projection tables of settlements paid through the DataMarket (migration 0007).
SETTLEMENT_PROJECTIONS = (settlement_payments, settlement_credits)

# --------------------------------------------------------------------------------------------
# Developer licences (DeveloperLicence): client ids, signers, redirect URIs
# --------------------------------------------------------------------------------------------

developer_licences = Table(
    "developer_licences",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="licence token id"),
    Column("client_id", String(42), nullable=False, comment="the licence's ERC-1271 account"),
    Column("owner", String(42), nullable=False, comment="current owner of the licence"),
    Column("fee", Uint256, nullable=False, comment="DIMO wei paid at the mint"),
    Column("minted_at", BigInteger, nullable=False, comment="mint time, unix seconds"),
    *_pos(),
    Index(None, "client_id", unique=True),
    Index(None, "owner"),
)

licence_signers = Table(
    "licence_signers",
    metadata,
    Column("licence_id", BigInteger, nullable=False, comment="developer_licences.id"),
    Column("signer", String(42), nullable=False, comment="a key that may sign its logins"),
    *_pos(),
    PrimaryKeyConstraint("licence_id", "signer"),
)

licence_redirect_uris = Table(
    "licence_redirect_uris",
    metadata,
    Column("licence_id", BigInteger, nullable=False, comment="developer_licences.id"),
    Column("uri", Text, nullable=False, comment="an enabled redirect URI (login domain)"),
    *_pos(),
    PrimaryKeyConstraint("tx_hash", "log_index"),
    Index(None, "licence_id"),
)

#: Projection tables of developer licences (migration 0011).
DEVELOPER_PROJECTIONS = (developer_licences, licence_signers, licence_redirect_uris)

_FIRST_PROJECTIONS = (
    manufacturers,
    models,
    vehicles,
    devices,
    pairings,
    grant_history,
    grants,
    products,
    opt_ins,
    licences,
    purchases,
    revenue_claims,
    parameters,
    proposals,
    votes,
    token_transfers,
)

#: Projection tables, in the order a full dump lists them (tests compare dumps).
PROJECTIONS = (
    *_FIRST_PROJECTIONS,
    *REWARD_PROJECTIONS,
    *SETTLEMENT_PROJECTIONS,
    *DEVELOPER_PROJECTIONS,
)

#: The tables the first migration creates.
CHAIN_TABLES = (events, blocks, sync_state, *_FIRST_PROJECTIONS)
