"""Queries behind DIMO's Identity API: vehicles by owner or privileged licence, grants, rewards.

Plain functions over the index (SQLAlchemy Core); `indexer.api.graphql.identity` resolves
GraphQL fields with them. Addresses come back checksummed, as DIMO's API writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Integer, Select, bindparam, func, select

from indexer import schema as s
from protocol.crypto import checksum_address

#: EIP-55 of an address as the index stores it (lowercase): a page of vehicles repeats its
#: owner's, and hashing it again for every row was a tenth of a query's CPU.
_checksum = lru_cache(maxsize=16_384)(checksum_address)


class VehicleRow(NamedTuple):
    """A vehicle with its definition and paired device, in one row (a named tuple: a frozen
    dataclass took four times as long to make, a page makes up to a thousand)."""

    token_id: int
    owner: str
    minted_at: int
    make: str | None
    model: str | None
    year: int
    device: str | None
    device_owner: str | None
    device_paired_at: int | None
    manufacturer_id: int | None
    manufacturer_name: str | None


@dataclass(frozen=True, slots=True)
class GrantRow:
    """A live grant (DIMO's SACD) of a vehicle."""

    grantee: str
    scopes: int
    granted_at: int
    expiry: int
    terms_cid: str


def _vehicle_filter(owner: bool, privileged: bool) -> list[Any]:
    """The conditions of the filters used, with bound parameters `owner` and `privileged`
    (lowercase addresses) and `now_s`."""
    v, g = s.vehicles.c, s.grants.c
    conds: list[Any] = []
    if owner:
        conds.append(v.owner == bindparam("owner"))
    if privileged:
        live = (
            select(g.vehicle_id)
            .where(
                g.grantee == bindparam("privileged"),
                g.vehicle_id == v.id,
                g.epoch == v.epoch,
                g.expiry > bindparam("now_s"),
            )
            .exists()
        )
        conds.append(live)
    return conds


def _filter_params(owner: str | None, privileged: str | None, now_s: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if owner is not None:
        params["owner"] = owner.lower()
    if privileged is not None:
        params["privileged"] = privileged.lower()
        params["now_s"] = now_s
    return params


@cache
def _page_query(
    owner: bool, privileged: bool, after: bool, before: bool, from_end: bool
) -> Select[Any]:
    """The statement of `vehicle_page` for one shape of its arguments, built once (building
    it cost as much as running it); its other parameters are `after_id`, `before_id` and
    `limit`."""
    v, m, d, mf = s.vehicles.c, s.models.c, s.devices.c, s.manufacturers.c
    conds = _vehicle_filter(owner, privileged)
    if after:
        conds.append(v.id < bindparam("after_id"))
    if before:
        conds.append(v.id > bindparam("before_id"))
    joined = (
        s.vehicles.outerjoin(s.models, m.id == v.model_id)
        .outerjoin(s.devices, d.address == v.device)
        .outerjoin(s.manufacturers, mf.id == d.manufacturer_id)
    )
    return (
        select(
            v.id,
            v.owner,
            v.minted_at,
            m.make,
            m.model,
            v.year,
            v.device,
            d.owner.label("device_owner"),
            d.paired_since,
            d.manufacturer_id,
            mf.name,
        )
        .select_from(joined)
        .where(*conds)
        .order_by(v.id.asc() if from_end else v.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )


def vehicle_page(
    conn: Connection,
    *,
    owner: str | None,
    privileged: str | None,
    now_s: int,
    limit: int,
    before_id: int | None,
    after_id: int | None,
    from_end: bool,
) -> list[VehicleRow]:
    """Vehicles matching the filters, newest token id first, `limit` of them.

    `after_id`/`before_id` bound the ids (exclusive, in the descending order: after means
    smaller ids); `from_end` takes the last `limit` of the range (relay's `last`).
    """
    query = _page_query(
        owner is not None,
        privileged is not None,
        after_id is not None,
        before_id is not None,
        from_end,
    )
    params = _filter_params(owner, privileged, now_s)
    params["limit"] = limit
    if after_id is not None:
        params["after_id"] = after_id
    if before_id is not None:
        params["before_id"] = before_id
    # Fetched at once, the columns in `VehicleRow`'s order: a page is up to a thousand rows,
    # and row-by-row fetches with attribute access cost more than the query itself.
    rows = [
        VehicleRow(
            token_id,
            _checksum(owner_),
            minted_at,
            make,
            model,
            year,
            None if device is None else _checksum(device),
            None if device_owner is None else _checksum(device_owner),
            *device_rest,
        )
        for (
            token_id,
            owner_,
            minted_at,
            make,
            model,
            year,
            device,
            device_owner,
            *device_rest,
        ) in conn.execute(query, params).all()
    ]
    return rows[::-1] if from_end else rows


def vehicle_count(
    conn: Connection, *, owner: str | None, privileged: str | None, now_s: int
) -> int:
    """How many vehicles match the filters (an index scan on `owner` when filtered by it)."""
    query = _count_query(owner is not None, privileged is not None)
    return int(conn.execute(query, _filter_params(owner, privileged, now_s)).scalar_one())


@cache
def _count_query(owner: bool, privileged: bool) -> Select[Any]:
    """The statement of `vehicle_count` for the filters used, built once."""
    return select(func.count()).select_from(s.vehicles).where(*_vehicle_filter(owner, privileged))


def vehicle_one(conn: Connection, token_id: int, now_s: int) -> VehicleRow | None:
    """One vehicle by token id, or None."""
    v = s.vehicles.c
    rows = vehicle_page(
        conn,
        owner=None,
        privileged=None,
        now_s=now_s,
        limit=1,
        before_id=token_id - 1,
        after_id=token_id + 1,
        from_end=False,
    )
    del v
    return rows[0] if rows else None


def live_grants(conn: Connection, token_id: int, now_s: int) -> list[GrantRow]:
    """The vehicle's live grants (current transfer epoch, not expired), by grantee."""
    g, v = s.grants.c, s.vehicles.c
    query = (
        select(g.grantee, g.scopes, g.granted_at, g.expiry, g.terms_cid)
        .select_from(s.grants.join(s.vehicles, v.id == g.vehicle_id))
        .where(g.vehicle_id == token_id, g.epoch == v.epoch, g.expiry > now_s)
        .order_by(g.grantee)
    )
    return [
        GrantRow(_checksum(r.grantee), r.scopes, r.granted_at, r.expiry, r.terms_cid)
        for r in conn.execute(query)
    ]


def vehicle_rewards(conn: Connection, token_id: int) -> list[tuple[int, int, str, int]]:
    """The vehicle's claimed rewards as (epoch, amount wei, owner paid, claimed at), newest
    first."""
    c = s.reward_claims.c
    query = (
        select(c.epoch, c.amount, c.owner, c.claimed_at)
        .where(c.vehicle_id == token_id)
        .order_by(c.epoch.desc())
    )
    return [(r.epoch, r.amount, _checksum(r.owner), r.claimed_at) for r in conn.execute(query)]


def user_rewards_total(conn: Connection, user: str) -> int:
    """DIMO wei of rewards paid to `user`, over every vehicle it claimed for."""
    c = s.reward_claims.c
    amounts = conn.execute(select(c.amount).where(c.owner == user.lower())).scalars()
    return sum(int(a) for a in amounts)
