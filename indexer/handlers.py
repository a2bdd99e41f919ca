"""Event decoding and one handler per event type, folding an entity's events into its rows.

Each platform event touches one or two entity keys (`vehicle:7`, `device:0xab..`,
`grant:7:0xcd..`). A key's rows in the projection tables are a pure function of the key's
events in chain order `(block, tx index, log index)`: `HANDLERS[(contract, event)]` applies one
event to the key's `Fold` state, and `Fold.rows()` gives the rows. `Projector.rewrite` replaces
the rows of a set of keys, which is how both a forward sync and a reorg rollback update the
database, so the two cannot disagree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import msgspec
from eth_abi.decoding import ContextFramesBytesIO, TupleDecoder
from eth_abi.registry import registry as abi_registry
from sqlalchemy import Connection, Table, and_, bindparam, delete, or_, select

from indexer import schema as s
from indexer.db import insert_rows, insert_tuples
from protocol.crypto import keccak256

ZERO: Final = "0x" + "00" * 20
UNPAIR_REASONS: Final = ("owner", "vehicle-transferred", "device-transferred")
CHUNK: Final = 500

# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One decoded log, in chain order by `(block_number, tx_index, log_index)`.

    Treat it as immutable (it is not frozen only because frozen dataclasses are slower to make,
    and a backfill makes hundreds of thousands)."""

    block_number: int
    tx_index: int
    log_index: int
    tx_hash: str
    block_timestamp: int
    address: str
    contract: str
    name: str
    args: dict[str, Any]

    @property
    def order(self) -> tuple[int, int, int]:
        """The chain-order sort key."""
        return (self.block_number, self.tx_index, self.log_index)


def _plain(value: Any) -> Any:
    """An eth_abi value as JSON-friendly Python: bytes to 0x hex, addresses lowercase."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        return value.lower()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _topic_decoder(abi_type: str) -> Callable[[str], Any]:
    """Decodes one indexed argument from its topic (dynamic types stay as their hash)."""
    if abi_type == "address":
        return lambda t: "0x" + t[-40:].lower()
    if abi_type.startswith("uint"):
        return lambda t: int(t, 16)
    if abi_type == "bool":
        return lambda t: int(t, 16) != 0
    if abi_type.startswith("int"):
        bits = 256
        return lambda t: int(t, 16) - (1 << bits) if int(t, 16) >> (bits - 1) else int(t, 16)
    return lambda t: t.lower()


def _canonical(inp: dict[str, Any]) -> str:
    """The canonical ABI type of an input (tuples expanded)."""
    t = str(inp["type"])
    if t.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in inp.get("components", []))
        return f"({inner}){t[5:]}"
    return t


WordDecoder = Callable[[bytes], Any]


def _word_decoder(abi_type: str) -> WordDecoder | None:
    """Decodes one static ABI value from its 32-byte word as `_plain` would give it, or None
    for a type that is not one word (strings, bytes, arrays, tuples: eth_abi decodes those)."""
    if abi_type == "address":
        return lambda w: "0x" + w[12:].hex()
    if abi_type == "bool":
        return lambda w: w[31] != 0
    if abi_type.startswith("uint") and abi_type[4:].isdigit():
        return lambda w: int.from_bytes(w, "big")
    if abi_type.startswith("int") and abi_type[3:].isdigit():
        return lambda w: int.from_bytes(w, "big", signed=True)
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        size = int(abi_type[5:])
        return lambda w: "0x" + w[:size].hex()
    return None


FastDecoder = Callable[[Sequence[str], str], "dict[str, Any] | None"]


def _topic_expr(abi_type: str, var: str) -> str | None:
    """A Python expression decoding one indexed argument from topic string `var`, as
    `_topic_decoder` does, or None when there is none this simple."""
    if abi_type == "address":
        return f'"0x" + {var}[26:].lower()'
    if abi_type.startswith("uint") and abi_type[4:].isdigit():
        return f"int({var}, 16)"
    if abi_type == "bool":
        return f"int({var}, 16) != 0"
    if abi_type.startswith("int") and abi_type[3:].isdigit():
        return None
    return f"{var}.lower()"


def _word_expr(abi_type: str, start: int) -> str | None:
    """A Python expression decoding the one-word value at hex offset `start` of the data
    string `d`, as `_word_decoder` does, or None when there is none this simple."""
    end = start + 64
    if abi_type == "address":
        return f'"0x" + d[{start + 24}:{end}].lower()'
    if abi_type == "bool":
        return f"int(d[{start}:{end}], 16) != 0"
    if abi_type.startswith("uint") and abi_type[4:].isdigit():
        return f"int(d[{start}:{end}], 16)"
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        return f'"0x" + d[{start}:{start + 2 * int(abi_type[5:])}].lower()'
    return None


def _fast_decoder(
    topics: Sequence[tuple[str, str]], words: Sequence[tuple[str, str]]
) -> FastDecoder | None:
    """One generated function decoding a whole log of this shape by string slicing (names
    and types as (name, canonical type)), which answers None for a log of another shape; or
    None when some argument needs eth_abi."""
    parts = []
    for i, (name, abi_type) in enumerate(topics):
        expr = _topic_expr(abi_type, f"t[{i + 1}]")
        if expr is None:
            return None
        parts.append(f"{name!r}: {expr}")
    for i, (name, abi_type) in enumerate(words):
        expr = _word_expr(abi_type, 2 + 64 * i)
        if expr is None:
            return None
        parts.append(f"{name!r}: {expr}")
    size = 2 + 64 * len(words)
    source = (
        "def decode(t, d):\n"
        f"    if len(t) != {len(topics) + 1} or len(d) != {size}:\n"
        "        return None\n"
        f"    return {{{', '.join(parts)}}}\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<log decoder>", "exec"), namespace)
    return cast("FastDecoder", namespace["decode"])


@dataclass(frozen=True, slots=True)
class LogDecoder:
    """Decodes the logs of one event of one contract (precomputed per (address, topic0)).

    Data made only of one-word static values (addresses, integers, booleans, fixed bytes:
    most events) is decoded by slicing words; anything else goes through eth_abi.
    """

    contract: str
    name: str
    topic_names: tuple[str, ...]
    topic_decoders: tuple[Callable[[str], Any], ...]
    data_names: tuple[str, ...]
    data_decoder: TupleDecoder | None
    word_decoders: tuple[WordDecoder, ...] | None = None
    #: The whole log decoded by one generated function (most events); None if not possible.
    fast: FastDecoder | None = None

    def decode(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """The event's arguments by name."""
        if self.fast is not None:
            done = self.fast(topics, data)
            if done is not None:
                return done
        args: dict[str, Any] = {}
        for name, dec, topic in zip(
            self.topic_names, self.topic_decoders, topics[1:], strict=False
        ):
            args[name] = dec(topic)
        if self.data_decoder is None:
            return args
        raw = bytes.fromhex(data[2:])
        words = self.word_decoders
        if words is not None and len(raw) == 32 * len(words):
            for i, (name, word) in enumerate(zip(self.data_names, words, strict=True)):
                args[name] = word(raw[32 * i : 32 * i + 32])
            return args
        values = self.data_decoder(ContextFramesBytesIO(raw))  # type: ignore[no-untyped-call]
        for name, value in zip(self.data_names, values, strict=True):
            args[name] = _plain(value)
        return args


def build_decoders(
    abis: dict[str, tuple[str, list[dict[str, Any]]]],
) -> dict[tuple[str, str], LogDecoder]:
    """Decoders keyed by (lowercase address, topic0) for every event in the given ABIs.

    Args:
        abis: contract name -> (address, ABI).
    """
    out: dict[tuple[str, str], LogDecoder] = {}
    for contract, (address, abi) in abis.items():
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            inputs = item.get("inputs", [])
            sig = f"{item['name']}({','.join(_canonical(i) for i in inputs)})"
            topic0 = "0x" + keccak256(sig.encode()).hex()
            indexed = [i for i in inputs if i.get("indexed")]
            plain = [i for i in inputs if not i.get("indexed")]
            data_decoder: TupleDecoder | None = None
            word_decoders: tuple[WordDecoder, ...] | None = None
            if plain:
                parts = tuple(abi_registry.get_decoder(_canonical(i)) for i in plain)
                data_decoder = TupleDecoder(decoders=parts)  # type: ignore[no-untyped-call]
                words = [_word_decoder(_canonical(i)) for i in plain]
                if all(w is not None for w in words):
                    word_decoders = tuple(w for w in words if w is not None)
            out[(address.lower(), topic0)] = LogDecoder(
                contract=contract,
                name=str(item["name"]),
                topic_names=tuple(str(i["name"]) for i in indexed),
                topic_decoders=tuple(_topic_decoder(_canonical(i)) for i in indexed),
                data_names=tuple(str(i["name"]) for i in plain),
                data_decoder=data_decoder,
                word_decoders=word_decoders,
                fast=_fast_decoder(
                    [(str(i["name"]), _canonical(i)) for i in indexed],
                    [(str(i["name"]), _canonical(i)) for i in plain],
                ),
            )
    return out


# --------------------------------------------------------------------------------------------
# Entity keys of each event
# --------------------------------------------------------------------------------------------

Keys = tuple[str | None, str | None]


def _event_id(e: Event) -> str:
    return f"{e.tx_hash}:{e.log_index}"


KeyFn = Callable[[Event, dict[str, Any]], Keys]


def _one(template: str, *names: str) -> KeyFn:
    if len(names) == 1:  # the common case, without str.format
        prefix, name = template.split("{", 1)[0], names[0]
        return lambda e, a: (f"{prefix}{a[name]}", None)
    return lambda e, a: (template.format(*[a[n] for n in names]), None)


#: The entity keys of each tracked (contract, event).
_KEYS: Final[dict[tuple[str, str], KeyFn]] = {
    ("ManufacturerRegistry", "ManufacturerRegistered"): _one("manufacturer:{}", "manufacturerId"),
    ("ManufacturerRegistry", "ManufacturerUpdated"): _one("manufacturer:{}", "manufacturerId"),
    ("VehicleId", "ModelRegistered"): _one("model:{}", "modelId"),
    ("VehicleId", "VehicleMinted"): _one("vehicle:{}", "vehicleId"),
    ("VehicleId", "Transfer"): _one("vehicle:{}", "tokenId"),
    ("DeviceId", "Transfer"): lambda e, a: (f"device:0x{a['tokenId']:040x}", None),
    ("DeviceId", "DeviceMinted"): _one("device:{}", "device"),
    ("DeviceId", "DeviceClaimed"): _one("device:{}", "device"),
    ("DeviceId", "DevicePaired"): lambda e, a: (
        f"device:{a['device']}",
        f"vehicle:{a['vehicleId']}",
    ),
    ("DeviceId", "DeviceUnpaired"): lambda e, a: (
        f"device:{a['device']}",
        f"vehicle:{a['vehicleId']}",
    ),
    ("VehicleRights", "Granted"): _one("grant:{}:{}", "vehicleId", "grantee"),
    ("VehicleRights", "Revoked"): _one("grant:{}:{}", "vehicleId", "grantee"),
    ("DataMarket", "ProductListed"): _one("product:{}", "productId"),
    ("DataMarket", "OptedIn"): _one("optin:{}:{}", "vehicleId", "productId"),
    ("DataMarket", "OptedOut"): _one("optin:{}:{}", "vehicleId", "productId"),
    ("DataMarket", "LicenceBought"): _one("licence:{}:{}", "buyer", "productId"),
    ("DataMarket", "RevenueClaimed"): lambda e, a: (f"claim:{_event_id(e)}", None),
    ("DataMarket", "SettlementPaid"): _one("settlement:{}:{}", "payer", "settlementId"),
    ("DataMarket", "SettlementCredited"): lambda e, a: (f"scredit:{_event_id(e)}", None),
    ("Parameters", "FlagSet"): _one("param:{}", "key"),
    ("Parameters", "UintSet"): _one("param:{}", "key"),
    **{
        ("DimoGovernor", name): _one("proposal:{}", "proposalId")
        for name in (
            "ProposalCreated",
            "ProposalQueued",
            "ProposalExecuted",
            "ProposalCanceled",
            "VoteCast",
            "VoteCastWithParams",
        )
    },
    ("DimoToken", "Transfer"): lambda e, a: (f"token:{_event_id(e)}", None),
    ("Rewards", "RootPosted"): _one("repoch:{}", "epoch"),
    ("Rewards", "RootVetoed"): _one("repoch:{}", "epoch"),
    ("Rewards", "EpochFunded"): _one("repoch:{}", "epoch"),
    ("Rewards", "LevelCached"): _one("repoch:{}", "epoch"),
    ("Rewards", "Claimed"): _one("rclaim:{}:{}", "epoch", "vehicleId"),
    ("DeveloperLicence", "Transfer"): _one("devlicence:{}", "tokenId"),
    ("DeveloperLicence", "LicenceMinted"): _one("devlicence:{}", "licenceId"),
    ("DeveloperLicence", "SignerAdded"): _one("devlicence:{}", "licenceId"),
    ("DeveloperLicence", "SignerRemoved"): _one("devlicence:{}", "licenceId"),
    ("DeveloperLicence", "RedirectUriSet"): _one("devlicence:{}", "licenceId"),
}


def keys_of(e: Event) -> Keys:
    """The (at most two) entity keys event `e` touches; (None, None) for untracked events."""
    fn = _KEYS.get((e.contract, e.name))
    return (None, None) if fn is None else fn(e, e.args)


# --------------------------------------------------------------------------------------------
# Folds: one handler per event type
# --------------------------------------------------------------------------------------------


def _pos(e: Event) -> dict[str, Any]:
    return {"block_number": e.block_number, "tx_hash": e.tx_hash, "log_index": e.log_index}


@dataclass
class Fold:
    """The state of one entity key while its events are applied; `out` collects its rows."""

    key: str
    row: dict[str, Any] | None = None
    out: dict[Table, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    #: open interval rows (pairing, grant, opt-in), by identity.
    open: dict[str, dict[str, Any]] = field(default_factory=dict)


Handler = Callable[[Fold, Event], None]
HANDLERS: dict[tuple[str, str], Handler] = {}


def handles(contract: str, *names: str) -> Callable[[Handler], Handler]:
    """Registers a handler for events `names` of `contract`."""

    def deco(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[(contract, name)] = fn
        return fn

    return deco


@handles("ManufacturerRegistry", "ManufacturerRegistered")
def on_manufacturer_registered(f: Fold, e: Event) -> None:
    """A manufacturer entered the registry."""
    a = e.args
    f.row = {
        "id": a["manufacturerId"],
        "account": a["account"],
        "name": a["name"],
        "capabilities": a["capabilities"],
        "active": True,
        "registered_block": e.block_number,
        **_pos(e),
    }


@handles("ManufacturerRegistry", "ManufacturerUpdated")
def on_manufacturer_updated(f: Fold, e: Event) -> None:
    """A manufacturer's capabilities or active flag changed."""
    if f.row is not None:
        f.row.update(capabilities=e.args["capabilities"], active=e.args["active"], **_pos(e))


@handles("VehicleId", "ModelRegistered")
def on_model_registered(f: Fold, e: Event) -> None:
    """A make and model entered the catalog."""
    a = e.args
    f.row = {"id": a["modelId"], "make": a["make"], "model": a["model"], **_pos(e)}


@handles("VehicleId", "VehicleMinted")
def on_vehicle_minted(f: Fold, e: Event) -> None:
    """A vehicle was minted (its mint Transfer may come before or after)."""
    a = e.args
    prior = f.row or {}
    f.row = {
        "id": a["vehicleId"],
        "owner": prior.get("owner", a["owner"]),
        "model_id": a["modelId"],
        "year": a["year"],
        "vin_commitment": a["vinCommitment"],
        "minter": a["minter"],
        "device": prior.get("device"),
        "epoch": prior.get("epoch", 0),
        "minted_block": e.block_number,
        "minted_at": e.block_timestamp,
        **_pos(e),
    }


@handles("VehicleId", "Transfer")
def on_vehicle_transfer(f: Fold, e: Event) -> None:
    """A vehicle changed hands (a transfer from zero is the mint, not counted in the epoch)."""
    row = f.row if f.row is not None else {}
    if e.args["from"] != ZERO:
        row["epoch"] = row.get("epoch", 0) + 1
    row["owner"] = e.args["to"]
    f.row = row


@handles("DeviceId", "DeviceMinted")
def on_device_minted(f: Fold, e: Event) -> None:
    """A manufacturer minted a device."""
    a = e.args
    prior = f.row or {}
    f.row = {
        "address": a["device"],
        "manufacturer_id": a["manufacturerId"],
        "serial_hash": a["serialHash"],
        "owner": prior.get("owner", ZERO),
        "claimed": False,
        "vehicle_id": None,
        "paired_since": None,
        "pairings_count": 0,
        "minted_block": e.block_number,
        **_pos(e),
    }


@handles("DeviceId", "Transfer")
def on_device_transfer(f: Fold, e: Event) -> None:
    """A device changed hands."""
    row = f.row if f.row is not None else {}
    row["owner"] = e.args["to"]
    f.row = row


@handles("DeviceId", "DeviceClaimed")
def on_device_claimed(f: Fold, e: Event) -> None:
    """A user claimed a device from its manufacturer."""
    if f.row is not None:
        f.row["claimed"] = True


def _is_vehicle_key(f: Fold) -> bool:
    return f.key.startswith("vehicle:")


@handles("DeviceId", "DevicePaired")
def on_device_paired(f: Fold, e: Event) -> None:
    """A device was paired to a vehicle: opens a pairing interval."""
    a = e.args
    if _is_vehicle_key(f):
        if f.row is not None:
            f.row["device"] = a["device"]
        return
    interval = {
        "device": a["device"],
        "vehicle_id": a["vehicleId"],
        "owner": a["owner"],
        "paired_block": e.block_number,
        "paired_at": e.block_timestamp,
        "unpaired_block": None,
        "unpaired_at": None,
        "unpaired_tx_hash": None,
        "reason": None,
        **_pos(e),
    }
    f.out[s.pairings].append(interval)
    f.open["pairing"] = interval
    if f.row is not None:
        f.row.update(
            vehicle_id=a["vehicleId"],
            paired_since=e.block_timestamp,
            pairings_count=f.row["pairings_count"] + 1,
        )


@handles("DeviceId", "DeviceUnpaired")
def on_device_unpaired(f: Fold, e: Event) -> None:
    """A pairing ended: closes its interval with the reason."""
    if _is_vehicle_key(f):
        if f.row is not None:
            f.row["device"] = None
        return
    interval = f.open.pop("pairing", None)
    if interval is not None:
        reason = e.args["reason"]
        interval.update(
            unpaired_block=e.block_number,
            unpaired_at=e.block_timestamp,
            unpaired_tx_hash=e.tx_hash,
            reason=UNPAIR_REASONS[reason] if reason < len(UNPAIR_REASONS) else str(reason),
        )
    if f.row is not None:
        f.row.update(vehicle_id=None, paired_since=None)


def _close(f: Fold, name: str, e: Event, **fields: Any) -> None:
    interval = f.open.pop(name, None)
    if interval is not None:
        interval.update(fields)


@handles("VehicleRights", "Granted")
def on_granted(f: Fold, e: Event) -> None:
    """A grant was made; it replaces an earlier grant to the same grantee."""
    a = e.args
    _close(
        f, "grant", e, ended_block=e.block_number, ended_at=e.block_timestamp, end_reason="replaced"
    )
    current = {
        "vehicle_id": a["vehicleId"],
        "grantee": a["grantee"],
        "owner": a["owner"],
        "scopes": a["scopes"],
        "expiry": a["expiry"],
        "epoch": a["epoch"],
        "terms_cid": a["termsCid"],
        "granted_at": e.block_timestamp,
        **_pos(e),
    }
    history = {**current, "ended_block": None, "ended_at": None, "end_reason": None}
    f.out[s.grant_history].append(history)
    f.open["grant"] = history
    f.row = current


@handles("VehicleRights", "Revoked")
def on_revoked(f: Fold, e: Event) -> None:
    """A grant was revoked."""
    _close(
        f, "grant", e, ended_block=e.block_number, ended_at=e.block_timestamp, end_reason="revoked"
    )
    f.row = None


@handles("DataMarket", "ProductListed")
def on_product_listed(f: Fold, e: Event) -> None:
    """A curator listed a data product."""
    a = e.args
    f.row = {
        "id": a["productId"],
        "curator": a["curator"],
        "scopes": a["scopes"],
        "price_per_period": a["pricePerPeriod"],
        "period_seconds": a["periodSeconds"],
        "terms_cid": a["termsCid"],
        "listed_at": e.block_timestamp,
        **_pos(e),
    }


@handles("DataMarket", "OptedIn")
def on_opted_in(f: Fold, e: Event) -> None:
    """A vehicle was opted in to a product: opens an opt-in interval."""
    a = e.args
    interval = {
        "vehicle_id": a["vehicleId"],
        "product_id": a["productId"],
        "owner": a["owner"],
        "opted_in_at": e.block_timestamp,
        "opted_out_block": None,
        "opted_out_at": None,
        "opted_out_by": None,
        **_pos(e),
    }
    f.out[s.opt_ins].append(interval)
    f.open["optin"] = interval


@handles("DataMarket", "OptedOut")
def on_opted_out(f: Fold, e: Event) -> None:
    """A vehicle was opted out of a product: closes its interval."""
    _close(
        f,
        "optin",
        e,
        opted_out_block=e.block_number,
        opted_out_at=e.block_timestamp,
        opted_out_by=e.args["owner"],
    )


@handles("DataMarket", "LicenceBought")
def on_licence_bought(f: Fold, e: Event) -> None:
    """A buyer bought periods of a product's licence; the price less the fee streams to the
    product's earning vehicles until `streamEnd`."""
    a = e.args
    f.out[s.purchases].append(
        {
            "buyer": a["buyer"],
            "product_id": a["productId"],
            "periods": a["periods"],
            "cost": a["cost"],
            "fee": a["fee"],
            "expiry": a["expiry"],
            "stream_end": a["streamEnd"],
            "bought_at": e.block_timestamp,
            **_pos(e),
        }
    )
    prior = f.row or {"first_bought_at": e.block_timestamp, "periods": 0, "paid": 0}
    f.row = {
        "buyer": a["buyer"],
        "product_id": a["productId"],
        "expiry": a["expiry"],
        "first_bought_at": prior["first_bought_at"],
        "periods": prior["periods"] + a["periods"],
        "paid": prior["paid"] + a["cost"],
        **_pos(e),
    }


@handles("DataMarket", "RevenueClaimed")
def on_revenue_claimed(f: Fold, e: Event) -> None:
    """An owner claimed a vehicle's revenue from a product."""
    a = e.args
    f.row = {
        "vehicle_id": a["vehicleId"],
        "product_id": a["productId"],
        "owner": a["owner"],
        "amount": a["amount"],
        "claimed_at": e.block_timestamp,
        **_pos(e),
    }


@handles("DataMarket", "SettlementPaid")
def on_settlement_paid(f: Fold, e: Event) -> None:
    """A utility paid a settlement through its licence (once per payer and id)."""
    a = e.args
    f.row = {
        "payer": a["payer"],
        "settlement_id": a["settlementId"],
        "product_id": a["productId"],
        "vehicles": a["vehicles"],
        "total": a["total"],
        "fee": a["fee"],
        "paid_at": e.block_timestamp,
        **_pos(e),
    }


@handles("DataMarket", "SettlementCredited")
def on_settlement_credited(f: Fold, e: Event) -> None:
    """A settlement credited a vehicle's revenue from a product."""
    a = e.args
    f.row = {
        "vehicle_id": a["vehicleId"],
        "product_id": a["productId"],
        "settlement_id": a["settlementId"],
        "amount": a["amount"],
        "credited_at": e.block_timestamp,
        **_pos(e),
    }


@handles("Parameters", "FlagSet", "UintSet")
def on_parameter_set(f: Fold, e: Event) -> None:
    """Governance set a flag or a number."""
    value = e.args["value"]
    f.row = {
        "key": e.args["key"],
        "kind": "flag" if e.name == "FlagSet" else "uint",
        "value": int(value),
        "set_at": e.block_timestamp,
        **_pos(e),
    }


@handles("Rewards", "RootPosted")
def on_root_posted(f: Fold, e: Event) -> None:
    """The oracle quorum posted an epoch's allocation root (again, after a veto)."""
    a = e.args
    f.row = {
        "epoch": a["epoch"],
        "root": a["root"],
        "total": int(a["total"]),
        "cid": a["cid"],
        "claimable_at": a["claimableAt"],
        "status": "posted",
        "funded": False,
        "posted_at": e.block_timestamp,
        "vetoed_by": None,
        "cached_depth": 0,
        **_pos(e),
    }


@handles("Rewards", "RootVetoed")
def on_root_vetoed(f: Fold, e: Event) -> None:
    """The timelock or a guardian vetoed the epoch's root: it pays nothing."""
    if f.row is not None:
        f.row.update(status="vetoed", vetoed_by=e.args["by"])


@handles("Rewards", "EpochFunded")
def on_epoch_funded(f: Fold, e: Event) -> None:
    """The epoch's total was minted into its sub-account of the token (Rewards spends it)."""
    if f.row is not None:
        f.row["funded"] = True


@handles("Rewards", "LevelCached")
def on_level_cached(f: Fold, e: Event) -> None:
    """A level of the epoch's tree was stored: claims' proofs may stop there."""
    if f.row is not None:
        f.row["cached_depth"] = e.args["depth"]


@handles("Rewards", "Claimed")
def on_reward_claimed(f: Fold, e: Event) -> None:
    """A vehicle's reward for an epoch was paid to its owner."""
    a = e.args
    f.row = {
        "epoch": a["epoch"],
        "vehicle_id": a["vehicleId"],
        "owner": a["owner"],
        "amount": int(a["amount"]),
        "claimed_at": e.block_timestamp,
        **_pos(e),
    }


@handles("DimoGovernor", "ProposalCreated")
def on_proposal_created(f: Fold, e: Event) -> None:
    """A proposal was made."""
    a = e.args
    actions = [
        {"target": t, "value": v, "calldata": c}
        for t, v, c in zip(a["targets"], a["values"], a["calldatas"], strict=False)
    ]
    f.row = {
        "id": a["proposalId"],
        "proposer": a["proposer"],
        "description": a["description"],
        "actions": json.dumps(actions),
        "vote_start": a["voteStart"],
        "vote_end": a["voteEnd"],
        "status": "created",
        "eta": None,
        "votes_for": 0,
        "votes_against": 0,
        "votes_abstain": 0,
        "created_at": e.block_timestamp,
        **_pos(e),
    }


@handles("DimoGovernor", "ProposalQueued")
def on_proposal_queued(f: Fold, e: Event) -> None:
    """A passed proposal was queued in the timelock."""
    if f.row is not None:
        f.row.update(status="queued", eta=e.args["etaSeconds"])


@handles("DimoGovernor", "ProposalExecuted")
def on_proposal_executed(f: Fold, e: Event) -> None:
    """A proposal was executed."""
    if f.row is not None:
        f.row["status"] = "executed"


@handles("DimoGovernor", "ProposalCanceled")
def on_proposal_canceled(f: Fold, e: Event) -> None:
    """A proposal was canceled."""
    if f.row is not None:
        f.row["status"] = "canceled"


@handles("DimoGovernor", "VoteCast", "VoteCastWithParams")
def on_vote_cast(f: Fold, e: Event) -> None:
    """A vote was cast."""
    a = e.args
    f.out[s.votes].append(
        {
            "proposal_id": a["proposalId"],
            "voter": a["voter"],
            "support": a["support"],
            "weight": a["weight"],
            "reason": a["reason"],
            "cast_at": e.block_timestamp,
            **_pos(e),
        }
    )
    if f.row is not None:
        column = {0: "votes_against", 1: "votes_for", 2: "votes_abstain"}.get(a["support"])
        if column is not None:
            f.row[column] += a["weight"]


@handles("DimoToken", "Transfer")
def on_token_transfer(f: Fold, e: Event) -> None:
    """DIMO moved."""
    a = e.args
    f.row = {
        "sender": a["from"],
        "recipient": a["to"],
        "amount": a["value"],
        "transferred_at": e.block_timestamp,
        **_pos(e),
    }


# --------------------------------------------------------------------------------------------
# Keys -> tables
# --------------------------------------------------------------------------------------------


@handles("DeveloperLicence", "Transfer")
def on_developer_licence_transfer(f: Fold, e: Event) -> None:
    """A licence changed hands (its mint too, which comes before LicenceMinted)."""
    row = f.row if f.row is not None else {}
    row["owner"] = e.args["to"]
    f.row = row


@handles("DeveloperLicence", "LicenceMinted")
def on_licence_minted(f: Fold, e: Event) -> None:
    """A developer licence was minted with its client id."""
    a = e.args
    prior = f.row or {}
    f.row = {
        "id": a["licenceId"],
        "client_id": a["clientId"],
        "owner": prior.get("owner", a["owner"]),
        "fee": a["fee"],
        "minted_at": e.block_timestamp,
        **_pos(e),
    }


@handles("DeveloperLicence", "SignerAdded", "SignerRemoved")
def on_licence_signer(f: Fold, e: Event) -> None:
    """A signer was added to or removed from a licence."""
    a = e.args
    rows = [r for r in f.out[s.licence_signers] if r["signer"] != a["signer"]]
    if e.name == "SignerAdded":
        rows.append({"licence_id": a["licenceId"], "signer": a["signer"], **_pos(e)})
    f.out[s.licence_signers] = rows


@handles("DeveloperLicence", "RedirectUriSet")
def on_redirect_uri_set(f: Fold, e: Event) -> None:
    """A redirect URI of a licence was enabled or disabled."""
    a = e.args
    rows = [r for r in f.out[s.licence_redirect_uris] if r["uri"] != a["uri"]]
    if a["enabled"]:
        rows.append({"licence_id": a["licenceId"], "uri": a["uri"], **_pos(e)})
    f.out[s.licence_redirect_uris] = rows


@dataclass(frozen=True)
class Kind:
    """What rows a kind of key owns: its main table and the interval/child tables."""

    main: Table
    owned: tuple[tuple[Table, tuple[str, ...]], ...]
    parse: Callable[[str], tuple[Any, ...]]
    #: the main row is only written once its creating event has been seen.
    required: str | None = None


def _split(ident: str, *casts: Callable[[str], Any]) -> tuple[Any, ...]:
    parts = ident.split(":")
    return tuple(c(p) for c, p in zip(casts, parts, strict=True))


def _event_key(ident: str) -> tuple[Any, ...]:
    tx, log = ident.split(":")
    return (tx, int(log))


KINDS: Final[dict[str, Kind]] = {
    "manufacturer": Kind(s.manufacturers, ((s.manufacturers, ("id",)),), lambda i: (int(i),)),
    "model": Kind(s.models, ((s.models, ("id",)),), lambda i: (int(i),)),
    "vehicle": Kind(s.vehicles, ((s.vehicles, ("id",)),), lambda i: (int(i),), "minted_block"),
    "device": Kind(
        s.devices,
        ((s.devices, ("address",)), (s.pairings, ("device",))),
        lambda i: (i,),
        "minted_block",
    ),
    "grant": Kind(
        s.grants,
        ((s.grants, ("vehicle_id", "grantee")), (s.grant_history, ("vehicle_id", "grantee"))),
        lambda i: _split(i, int, str),
    ),
    "product": Kind(s.products, ((s.products, ("id",)),), lambda i: (int(i),)),
    "optin": Kind(
        s.opt_ins, ((s.opt_ins, ("vehicle_id", "product_id")),), lambda i: _split(i, int, int)
    ),
    "licence": Kind(
        s.licences,
        ((s.licences, ("buyer", "product_id")), (s.purchases, ("buyer", "product_id"))),
        lambda i: _split(i, str, int),
    ),
    "claim": Kind(s.revenue_claims, ((s.revenue_claims, ("tx_hash", "log_index")),), _event_key),
    "settlement": Kind(
        s.settlement_payments,
        ((s.settlement_payments, ("payer", "settlement_id")),),
        lambda i: _split(i, str, str),
    ),
    "scredit": Kind(
        s.settlement_credits, ((s.settlement_credits, ("tx_hash", "log_index")),), _event_key
    ),
    "param": Kind(s.parameters, ((s.parameters, ("key",)),), lambda i: (i,)),
    "proposal": Kind(
        s.proposals,
        ((s.proposals, ("id",)), (s.votes, ("proposal_id",))),
        lambda i: (int(i),),
    ),
    "token": Kind(s.token_transfers, ((s.token_transfers, ("tx_hash", "log_index")),), _event_key),
    "repoch": Kind(s.reward_epochs, ((s.reward_epochs, ("epoch",)),), lambda i: (int(i),)),
    "devlicence": Kind(
        s.developer_licences,
        (
            (s.developer_licences, ("id",)),
            (s.licence_signers, ("licence_id",)),
            (s.licence_redirect_uris, ("licence_id",)),
        ),
        lambda i: (int(i),),
        "client_id",
    ),
    "rclaim": Kind(
        s.reward_claims,
        ((s.reward_claims, ("epoch", "vehicle_id")),),
        lambda i: _split(i, int, int),
    ),
}


def fold(key: str, events: Iterable[Event]) -> dict[Table, list[dict[str, Any]]]:
    """The rows of entity `key` after applying its events (already in chain order)."""
    kind = KINDS[key.split(":", 1)[0]]
    f = Fold(key)
    for e in events:
        handler = HANDLERS.get((e.contract, e.name))
        if handler is not None:
            handler(f, e)
    if f.row is not None and (kind.required is None or kind.required in f.row):
        f.out[kind.main].append(f.row)
    return f.out


def event_from_row(row: Any) -> Event:
    """An `Event` from a row of the `events` table."""
    return Event(
        block_number=row.block_number,
        tx_index=row.tx_index,
        log_index=row.log_index,
        tx_hash=row.tx_hash,
        block_timestamp=row.block_timestamp,
        address=row.address,
        contract=row.contract,
        name=row.name,
        args=msgspec.json.decode(row.args),
    )


#: Events that create their entity: no event about it can be older.
_CREATIONS: Final = {
    ("ManufacturerRegistry", "ManufacturerRegistered"),
    ("VehicleId", "ModelRegistered"),
    ("DataMarket", "ProductListed"),
    ("DataMarket", "SettlementPaid"),
    ("DimoGovernor", "ProposalCreated"),
}
#: Kinds keyed by one event (`kind:txhash:logindex`): always new in a forward step.
_PER_EVENT_KINDS: Final = ("token:", "claim:", "scredit:")


def _creates(key: str, e: Event) -> bool:
    """Whether `e`, the first event of `key` in chain order, is the entity's creation."""
    if key.startswith(_PER_EVENT_KINDS):
        return True
    if e.name == "Transfer" and e.contract in ("VehicleId", "DeviceId", "DeveloperLicence"):
        return bool(e.args["from"] == ZERO)  # the ERC-721 mint
    return (e.contract, e.name) in _CREATIONS


def _born_in(fresh: dict[str, list[Event]]) -> set[str]:
    """Keys whose first fresh event creates them: a forward step need not look up their older
    events (there are none). Each list of `fresh` is in chain order."""
    return {key for key, events in fresh.items() if events and _creates(key, events[0])}


@dataclass(frozen=True)
class Prefolded:
    """The projection rows of the entities a range creates, folded before its transaction.

    A forward step needs nothing from the database to fold them (no event about an entity can
    precede its creation), so the sync's prefetch thread does it while the previous range is
    written.
    """

    #: The entity keys whose first event in the range creates them.
    keys: frozenset[str]
    #: Their rows, as tuples in each table's column order, by table name (names, not
    #: `Table`s, cross a process boundary intact).
    rows: dict[str, list[tuple[Any, ...]]]


_COLUMN_NAMES: dict[Table, tuple[str, ...]] = {}


def _column_names(table: Table) -> tuple[str, ...]:
    names = _COLUMN_NAMES.get(table)
    if names is None:
        names = _COLUMN_NAMES[table] = tuple(c.name for c in table.columns)
    return names


def prefold(fresh: dict[str, list[Event]]) -> Prefolded:
    """Folds the entities created by a range's events (`fresh`, each key's list in chain
    order), for `Projector.rewrite(..., prefolded=)`."""
    born = _born_in(fresh)
    rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for key in born:
        for table, folded in fold(key, fresh[key]).items():
            names = _column_names(table)
            rows[table.name].extend(tuple(map(row.get, names)) for row in folded)
    return Prefolded(frozenset(born), dict(rows))


class Projector:
    """Rewrites the projection rows of entity keys from the `events` table."""

    def rewrite(
        self,
        conn: Connection,
        keys: set[str],
        fresh: dict[str, list[Event]] | None = None,
        below: int | None = None,
        replay: bool = True,
        prefolded: Prefolded | None = None,
    ) -> None:
        """Replaces the rows of `keys` with the fold of their events.

        Args:
            conn: a connection inside the sync's transaction.
            keys: entity keys (`kind:ident`) touched by inserted or deleted events.
            fresh: events of the keys from block `below` on, already in memory and each
                key's list in chain order (a forward step); only older events are then read
                from the database.
            below: see `fresh`.
            replay: whether events from `below` on may already be stored (a range indexed
                again). When not, entities created in `fresh` have no rows to delete.
            prefolded: `prefold(fresh)`, used only when not `replay`: its entities are
                inserted as folded, and only the other keys are folded here.
        """
        early = None
        if prefolded is not None and not replay and fresh is not None:
            early = prefolded
            keys = keys - early.keys
            fresh = {k: v for k, v in fresh.items() if k not in early.keys}
        if not keys and early is None:
            return
        by_key: dict[str, list[Event]] = defaultdict(list)
        ordered = sorted(keys)
        born = _born_in(fresh) if fresh is not None and below is not None else set()
        older = [k for k in ordered if k not in born]
        ev = s.events
        for i in range(0, len(older), CHUNK):
            chunk = older[i : i + CHUNK]
            query = select(ev).where(or_(ev.c.key1.in_(chunk), ev.c.key2.in_(chunk)))
            if fresh is not None and below is not None:
                query = query.where(ev.c.block_number < below)
            found = conn.execute(query).all()
            wanted = set(chunk)
            for row in found:
                e = event_from_row(row)
                if row.key1 in wanted:
                    by_key[row.key1].append(e)
                if row.key2 in wanted:
                    by_key[row.key2].append(e)
        if fresh is not None:
            for key, events in fresh.items():
                by_key[key].extend(events)
        deletes: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
        inserts: dict[Table, list[dict[str, Any]]] = defaultdict(list)
        for key in ordered:
            kind_name, ident = key.split(":", 1)
            kind = KINDS[kind_name]
            if replay or key not in born:
                values = kind.parse(ident)
                for table, cols in kind.owned:
                    deletes[(table, cols)].append(
                        {f"k_{c}": v for c, v in zip(cols, values, strict=True)}
                    )
            if key in born:  # only fresh events, already in chain order
                events = by_key[key]
            else:
                events = sorted(by_key.get(key, ()), key=lambda e: e.order)
            for table, rows in fold(key, events).items():
                inserts[table].extend(rows)
        for (table, cols), params in deletes.items():
            if len(cols) == 1:  # one IN list per chunk, not one statement per key
                col = cols[0]
                keyed = [p[f"k_{col}"] for p in params]
                for i in range(0, len(keyed), CHUNK):
                    conn.execute(delete(table).where(table.c[col].in_(keyed[i : i + CHUNK])))
                continue
            cond = and_(*(table.c[c] == bindparam(f"k_{c}") for c in cols))
            conn.execute(delete(table).where(cond), params)
        for table in s.PROJECTIONS:
            new = inserts.get(table)
            if new:
                insert_rows(conn, table, new)
            folded = early.rows.get(table.name) if early is not None else None
            if folded:
                insert_tuples(conn, table, _column_names(table), folded)
