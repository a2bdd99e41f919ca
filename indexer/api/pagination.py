"""Keyset pagination: opaque cursors over a list's sort key, page sizes, and the page body."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Row, Select, bindparam, tuple_
from sqlalchemy.sql.elements import ColumnElement

from indexer.exceptions import InvalidCursor
from indexer.schema import Uint256

#: Most items one page holds.
MAX_LIMIT: Final = 100
#: Items a page holds when the caller does not say.
DEFAULT_LIMIT: Final = 50
#: Longest cursor accepted (cursors this API makes are far shorter).
MAX_CURSOR_CHARS: Final = 1024
#: Longest text value inside a cursor (addresses and hashes are 42 and 66).
_MAX_TEXT: Final = 200
_INT64: Final = (-(1 << 63), (1 << 63) - 1)

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, in the list's fixed order."""

    items: list[T] = Field(description="At most `limit` items")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


@dataclass(frozen=True, slots=True)
class PageParams:
    """Where a page starts (`cursor`, None for the first page) and how many items it holds."""

    cursor: str | None
    limit: int


def page_params(
    cursor: Annotated[
        str | None,
        Query(
            description="`next_cursor` of the previous page (opaque); omit it, or leave it "
            "empty, for the first page"
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1..{MAX_LIMIT}")
    ] = DEFAULT_LIMIT,
) -> PageParams:
    """The `cursor` and `limit` query parameters of a list route (an empty `cursor=`, as a
    form or a client template sends it, means the first page)."""
    return PageParams(cursor or None, limit)


#: The paging query parameters of a list route.
Paging = Annotated[PageParams, Depends(page_params)]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyset:
    """The sort key of one list: its columns, ascending and unique together.

    A cursor is the base64url (unpadded) JSON array `[list name, *key of the last item]`. The
    list name keeps a cursor of one list from being read as a position in another. The next
    page is the rows whose key is greater than the cursor's, which an index on the key (after
    the list's equality filters) serves without an offset.

    Args:
        name: The list's name, written into its cursors.
        columns: The sort key's columns (integer or text; never `Uint256`, which SQLite stores
            as text and would sort as text).
    """

    def __init__(self, name: str, *columns: ColumnElement[Any]) -> None:
        if not columns:
            raise ValueError("a keyset needs at least one column")
        self.name = name
        self.columns = columns
        self.types: tuple[type, ...] = tuple(_key_type(c) for c in columns)

    def encode(self, key: Sequence[Any]) -> str:
        """The cursor that starts the page after the item with sort key `key`."""
        return _b64encode(json.dumps([self.name, *key], separators=(",", ":")).encode())

    def decode(self, cursor: str) -> tuple[Any, ...]:
        """The sort key inside `cursor`.

        Raises:
            InvalidCursor: `cursor` is not a cursor of this list.
        """
        if len(cursor) > MAX_CURSOR_CHARS:
            raise InvalidCursor(cursor[:64] + "...", f"longer than {MAX_CURSOR_CHARS} characters")
        try:
            value = json.loads(_b64decode(cursor).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            reason = "not a cursor of this API (bad base64url or JSON)"
            raise InvalidCursor(cursor, reason) from None
        if not isinstance(value, list) or not value or value[0] != self.name:
            raise InvalidCursor(cursor, f"not a cursor of the {self.name} list")
        key = tuple(value[1:])
        if len(key) != len(self.types):
            reason = f"holds {len(key)} key values, the list sorts by {len(self.types)}"
            raise InvalidCursor(cursor, reason)
        for item, expected in zip(key, self.types, strict=True):
            if expected is int:
                if type(item) is not int or not _INT64[0] <= item <= _INT64[1]:
                    raise InvalidCursor(cursor, f"key value {item!r} is not a 64-bit integer")
            elif type(item) is not str or len(item) > _MAX_TEXT:
                raise InvalidCursor(cursor, f"key value {item!r} is not a short text")
        return key

    def apply(self, query: Select[Any], paging: PageParams) -> Select[Any]:
        """`query` restricted to the page after `paging.cursor`, ordered, with one row extra.

        The extra row only says whether a next page exists; `page` drops it.

        Raises:
            InvalidCursor: the cursor is not one of this list.
        """
        if paging.cursor is not None:
            key = self.decode(paging.cursor)
            bound = [
                bindparam(None, value, type_=column.type)
                for column, value in zip(self.columns, key, strict=True)
            ]
            if len(self.columns) == 1:
                query = query.where(self.columns[0] > bound[0])
            else:
                query = query.where(tuple_(*self.columns) > tuple_(*bound))
        return query.order_by(*self.columns).limit(paging.limit + 1)

    def key_of(self, row: Row[Any]) -> tuple[Any, ...]:
        """The sort key of a row selected with the keyset's columns."""
        mapping = row._mapping
        return tuple(mapping[c] for c in self.columns)

    def split(
        self, rows: Sequence[Row[Any]], paging: PageParams
    ) -> tuple[Sequence[Row[Any]], str | None]:
        """The rows of `apply`'s query this page shows, and the cursor of the next page."""
        kept = rows[: paging.limit]
        more = len(rows) > paging.limit
        return kept, self.encode(self.key_of(kept[-1])) if more else None

    def page(
        self, rows: Sequence[Row[Any]], paging: PageParams, convert: Callable[[Row[Any]], T]
    ) -> Page[T]:
        """The page of the rows of `apply`'s query: at most `limit` items and the next cursor."""
        kept, cursor = self.split(rows, paging)
        return Page(items=[convert(r) for r in kept], next_cursor=cursor)


def _key_type(column: ColumnElement[Any]) -> type:
    """int or str: what a sort key column holds."""
    if isinstance(column.type, Uint256):
        raise TypeError(f"column {column} is a Uint256, which SQLite sorts as text")
    python_type = column.type.python_type
    if issubclass(python_type, int):
        return int
    if issubclass(python_type, str):
        return str
    raise TypeError(f"column {column} of type {column.type} cannot be a keyset column")
