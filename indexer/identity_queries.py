"""Queries behind DIMO's Identity API: vehicles by owner or privileged licence, grants, rewards.

Plain functions over the index (SQLAlchemy Core); `indexer.api.graphql.identity` resolves
GraphQL fields with them. Addresses come back checksummed, as DIMO's API writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from indexer import schema as s
from protocol.crypto import checksum_address


@dataclass(frozen=True, slots=True)
class VehicleRow:
    """A vehicle with its definition and paired device, in one row."""

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


def _vehicle_filter(owner: str | None, privileged: str | None, now_s: int) -> list[Any]:
    v, g = s.vehicles.c, s.grants.c
    conds: list[Any] = []
    if owner is not None:
        conds.append(v.owner == owner.lower())
    if privileged is not None:
        live = (
            select(g.vehicle_id)
            .where(
                g.grantee == privileged.lower(),
                g.vehicle_id == v.id,
                g.epoch == v.epoch,
                g.expiry > now_s,
            )
            .exists()
        )
        conds.append(live)
    return conds


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
    v, m, d, mf = s.vehicles.c, s.models.c, s.devices.c, s.manufacturers.c
    conds = _vehicle_filter(owner, privileged, now_s)
    if after_id is not None:
        conds.append(v.id < after_id)
    if before_id is not None:
        conds.append(v.id > before_id)
    joined = (
        s.vehicles.outerjoin(s.models, m.id == v.model_id)
        .outerjoin(s.devices, d.address == v.device)
        .outerjoin(s.manufacturers, mf.id == d.manufacturer_id)
    )
    query = (
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
        .limit(limit)
    )
    rows = [
        VehicleRow(
            token_id=r.id,
            owner=checksum_address(r.owner),
            minted_at=r.minted_at,
            make=r.make,
            model=r.model,
            year=r.year,
            device=None if r.device is None else checksum_address(r.device),
            device_owner=None if r.device_owner is None else checksum_address(r.device_owner),
            device_paired_at=r.paired_since,
            manufacturer_id=r.manufacturer_id,
            manufacturer_name=r.name,
        )
        for r in conn.execute(query)
    ]
    return rows[::-1] if from_end else rows


def vehicle_count(
    conn: Connection, *, owner: str | None, privileged: str | None, now_s: int
) -> int:
    """How many vehicles match the filters (an index scan on `owner` when filtered by it)."""
    conds = _vehicle_filter(owner, privileged, now_s)
    query = select(func.count()).select_from(s.vehicles).where(*conds)
    return int(conn.execute(query).scalar_one())


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
        GrantRow(checksum_address(r.grantee), r.scopes, r.granted_at, r.expiry, r.terms_cid)
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
    return [
        (r.epoch, r.amount, checksum_address(r.owner), r.claimed_at) for r in conn.execute(query)
    ]


def user_rewards_total(conn: Connection, user: str) -> int:
    """DIMO wei of rewards paid to `user`, over every vehicle it claimed for."""
    c = s.reward_claims.c
    amounts = conn.execute(select(c.amount).where(c.owner == user.lower())).scalars()
    return sum(int(a) for a in amounts)
