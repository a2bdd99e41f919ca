"""IPFS CIDs of UnixFS files, computed byte-exactly as Kubo's `ipfs add` does."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from protocol.exceptions import ProtocolError

CHUNK_SIZE = 262_144
"""Kubo's default chunker, `size-262144`."""
MAX_LINKS = 174
"""Kubo's default maximum number of links of one node in a balanced file DAG."""

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
_DIGEST_SIZE = 32

CidVersion = Literal[0, 1]

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}

# Protobuf wire types.
_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5


class InvalidCid(ProtocolError, ValueError):
    """A string is not a CID this platform can use (CIDv0 or CIDv1, sha2-256, dag-pb or raw)."""

    def __init__(self, cid: str, reason: str) -> None:
        self.cid = cid
        self.reason = reason
        super().__init__(
            f"invalid CID {cid!r}: {reason}; expected a CIDv0 ('Qm...') or a CIDv1 "
            "('bafy...' / 'bafk...') of a sha2-256 dag-pb or raw block, as `ipfs add` prints"
        )


class MalformedBlock(ProtocolError, ValueError):
    """A block's bytes are not a valid dag-pb node or UnixFS Data message."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"malformed dag-pb/UnixFS block: {reason}; the block was not written by a UnixFS "
            "importer, or was damaged: fetch it again from a trusted node"
        )


class UnixFsType(IntEnum):
    """The `Type` of a UnixFS Data message."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


# ---------------------------------------------------------------- varint and multibase


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as an unsigned LEB128 varint (protobuf, multiformats).

    Args:
        value: The integer, at least 0.

    Returns:
        The varint bytes.

    Raises:
        ValueError: If `value` is negative.
    """
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf: bytes, offset: int = 0) -> tuple[int, int]:
    """Decode an unsigned LEB128 varint.

    Args:
        buf: The bytes holding the varint.
        offset: Where the varint starts.

    Returns:
        The value and the offset just past the varint.

    Raises:
        MalformedBlock: If the varint is truncated or longer than 10 bytes.
    """
    value = 0
    shift = 0
    for index in range(offset, min(len(buf), offset + 10)):
        byte = buf[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise MalformedBlock(f"truncated or overlong varint at offset {offset}")


def b58encode(data: bytes) -> str:
    """Encode bytes in base58btc (the Bitcoin alphabet), as CIDv0 uses."""
    number = int.from_bytes(data, "big")
    chars: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(_B58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(chars))


def b58decode(text: str) -> bytes:
    """Decode base58btc text.

    Raises:
        ValueError: If `text` has a character outside the base58btc alphabet.
    """
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"{char!r} is not a base58btc character")
        number = number * 58 + digit
    leading_ones = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading_ones + body


def b32encode(data: bytes) -> str:
    """Encode bytes in RFC 4648 base32, lower case, unpadded (multibase `b`)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    """Decode lower-case unpadded RFC 4648 base32 (multibase `b`).

    Raises:
        ValueError: If `text` is not valid base32.
    """
    if text != text.lower():
        raise ValueError("multibase 'b' is lower-case base32")
    padded = text.upper() + "=" * (-len(text) % 8)
    return base64.b32decode(padded)


# ---------------------------------------------------------------- CID


@dataclass(frozen=True)
class Cid:
    """A content identifier of a sha2-256 block: its version, codec and digest."""

    version: CidVersion
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != _DIGEST_SIZE:
            raise InvalidCid(self.digest.hex(), f"sha2-256 digest must be {_DIGEST_SIZE} bytes")
        if self.codec not in (DAG_PB, RAW):
            raise InvalidCid(self.digest.hex(), f"codec 0x{self.codec:x} is neither dag-pb nor raw")
        if self.version == 0 and self.codec != DAG_PB:
            raise InvalidCid(self.digest.hex(), "a CIDv0 is always dag-pb")

    @classmethod
    def of_block(cls, block: bytes, *, version: CidVersion, codec: int) -> Cid:
        """The CID of a block's bytes.

        Args:
            block: The block's bytes, as stored.
            version: 0 or 1.
            codec: `DAG_PB` or `RAW` (a CIDv0 is always dag-pb).

        Returns:
            The block's CID.
        """
        return cls(version, codec, hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse a CID string: CIDv0 (`Qm...`) or CIDv1 in base32 (`b...`) or base58btc (`z...`).

        Args:
            text: The CID as `ipfs add` or an IPFS RPC API prints it.

        Returns:
            The parsed CID.

        Raises:
            InvalidCid: If `text` is not a sha2-256 dag-pb or raw CID.
        """
        if not isinstance(text, str) or not text:
            raise InvalidCid(str(text), "empty or not a string")
        try:
            if len(text) == 46 and text.startswith("Qm"):
                return cls.from_bytes(b58decode(text))
            if text[0] == "b":
                raw = b32decode(text[1:])
            elif text[0] == "z":
                raw = b58decode(text[1:])
            else:
                raise InvalidCid(text, f"unsupported multibase prefix {text[0]!r}")
        except ValueError as exc:
            if isinstance(exc, InvalidCid):
                raise
            raise InvalidCid(text, str(exc)) from exc
        try:
            cid = cls.from_bytes(raw)
        except InvalidCid as exc:
            raise InvalidCid(text, exc.reason) from exc
        if cid.version != 1:
            raise InvalidCid(text, "a multibase-prefixed CID must be CIDv1")
        return cid

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cid:
        """Parse a binary CID (as inside a dag-pb link).

        Raises:
            InvalidCid: If `raw` is not a sha2-256 dag-pb or raw CID.
        """
        try:
            if raw[:2] == bytes((SHA2_256, _DIGEST_SIZE)) and len(raw) == 2 + _DIGEST_SIZE:
                return cls(0, DAG_PB, raw[2:])
            version, offset = decode_varint(raw)
            codec, offset = decode_varint(raw, offset)
            hash_code, offset = decode_varint(raw, offset)
            length, offset = decode_varint(raw, offset)
        except MalformedBlock as exc:
            raise InvalidCid(raw.hex(), "truncated binary CID") from exc
        if version != 1:
            raise InvalidCid(raw.hex(), f"unsupported CID version {version}")
        if hash_code != SHA2_256 or length != _DIGEST_SIZE:
            raise InvalidCid(raw.hex(), f"multihash 0x{hash_code:x}/{length} is not sha2-256")
        if len(raw) != offset + _DIGEST_SIZE:
            raise InvalidCid(raw.hex(), "digest length does not match the multihash")
        return cls(1, codec, raw[offset:])

    @property
    def multihash(self) -> bytes:
        """The sha2-256 multihash: code, length, digest."""
        return bytes((SHA2_256, _DIGEST_SIZE)) + self.digest

    def to_bytes(self) -> bytes:
        """The binary CID, as a dag-pb link holds it."""
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def encode(self) -> str:
        """The canonical string: base58btc for CIDv0, base32 (`b`) for CIDv1, as Kubo prints."""
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(self.to_bytes())

    def __str__(self) -> str:
        return self.encode()

    def matches(self, block: bytes) -> bool:
        """Whether `block`'s sha2-256 digest is this CID's digest."""
        return hashlib.sha256(block).digest() == self.digest


# ---------------------------------------------------------------- protobuf


def _key(field_number: int, wire_type: int) -> bytes:
    return encode_varint(field_number << 3 | wire_type)


def _len_field(field_number: int, payload: bytes) -> bytes:
    return _key(field_number, _LEN) + encode_varint(len(payload)) + payload


def _varint_field(field_number: int, value: int) -> bytes:
    return _key(field_number, _VARINT) + encode_varint(value)


def _iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    offset = 0
    while offset < len(buf):
        key, offset = decode_varint(buf, offset)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise MalformedBlock("protobuf field number 0")
        value: int | bytes
        if wire_type == _VARINT:
            value, offset = decode_varint(buf, offset)
        elif wire_type == _LEN:
            length, offset = decode_varint(buf, offset)
            if offset + length > len(buf):
                raise MalformedBlock(f"field {number} runs past the end of the message")
            value, offset = buf[offset : offset + length], offset + length
        elif wire_type in (_I64, _I32):
            size = 8 if wire_type == _I64 else 4
            if offset + size > len(buf):
                raise MalformedBlock(f"field {number} runs past the end of the message")
            value, offset = int.from_bytes(buf[offset : offset + size], "little"), offset + size
        else:
            raise MalformedBlock(f"unsupported protobuf wire type {wire_type}")
        yield number, wire_type, value


@dataclass(frozen=True)
class PbLink:
    """A dag-pb link: the child's CID, its name and the total size of its sub-DAG."""

    cid: Cid
    name: str = ""
    tsize: int = 0


@dataclass(frozen=True)
class PbNode:
    """A dag-pb node: links, then opaque data (a UnixFS Data message for files)."""

    links: tuple[PbLink, ...] = ()
    data: bytes | None = None

    def encode(self) -> bytes:
        """Encode canonically, as go-codec-dagpb does: every link (Hash, Name, Tsize), then Data."""
        out = bytearray()
        for link in self.links:
            body = (
                _len_field(1, link.cid.to_bytes())
                + _len_field(2, link.name.encode("utf-8"))
                + _varint_field(3, link.tsize)
            )
            out += _len_field(2, body)
        if self.data is not None:
            out += _len_field(1, self.data)
        return bytes(out)

    @classmethod
    def decode(cls, block: bytes) -> PbNode:
        """Decode a dag-pb block.

        Raises:
            MalformedBlock: If `block` is not a dag-pb node with valid link CIDs.
        """
        links: list[PbLink] = []
        data: bytes | None = None
        for number, wire_type, value in _iter_fields(block):
            if wire_type != _LEN or not isinstance(value, bytes):
                raise MalformedBlock(f"PBNode field {number} has wire type {wire_type}")
            if number == 1:
                data = value
            elif number == 2:
                links.append(_decode_link(value))
            else:
                raise MalformedBlock(f"PBNode has unknown field {number}")
        return cls(tuple(links), data)


def _decode_link(buf: bytes) -> PbLink:
    cid: Cid | None = None
    name = ""
    tsize = 0
    for number, _, value in _iter_fields(buf):
        if number == 1 and isinstance(value, bytes):
            try:
                cid = Cid.from_bytes(value)
            except InvalidCid as exc:
                raise MalformedBlock(f"link hash: {exc.reason}") from exc
        elif number == 2 and isinstance(value, bytes):
            name = value.decode("utf-8", errors="strict")
        elif number == 3 and isinstance(value, int):
            tsize = value
        else:
            raise MalformedBlock(f"PBLink field {number} is unknown or of the wrong type")
    if cid is None:
        raise MalformedBlock("PBLink without Hash")
    return PbLink(cid, name, tsize)


@dataclass(frozen=True)
class UnixFsData:
    """The UnixFS Data message of a file node (Type, Data, filesize, blocksizes)."""

    type: UnixFsType = UnixFsType.FILE
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default=())

    def encode(self) -> bytes:
        """Encode as go-unixfs (gogo-protobuf, proto2) does: fields in order, unpacked sizes."""
        out = bytearray(_varint_field(1, self.type))
        if self.data is not None:
            out += _len_field(2, self.data)
        if self.filesize is not None:
            out += _varint_field(3, self.filesize)
        for size in self.blocksizes:
            out += _varint_field(4, size)
        return bytes(out)

    @classmethod
    def decode(cls, buf: bytes) -> UnixFsData:
        """Decode a UnixFS Data message; fields other than these four are skipped.

        Raises:
            MalformedBlock: If `buf` is not a UnixFS Data message.
        """
        type_: int | None = None
        data: bytes | None = None
        filesize: int | None = None
        blocksizes: list[int] = []
        for number, wire_type, value in _iter_fields(buf):
            if number == 1 and isinstance(value, int):
                type_ = value
            elif number == 2 and isinstance(value, bytes):
                data = value
            elif number == 3 and isinstance(value, int):
                filesize = value
            elif number == 4 and isinstance(value, int):
                blocksizes.append(value)
            elif number == 4 and isinstance(value, bytes):  # packed, as some encoders write it
                offset = 0
                while offset < len(value):
                    size, offset = decode_varint(value, offset)
                    blocksizes.append(size)
            elif number in (1, 2, 3, 4):
                raise MalformedBlock(f"UnixFS field {number} has wire type {wire_type}")
        if type_ is None:
            raise MalformedBlock("UnixFS Data without Type")
        try:
            unixfs_type = UnixFsType(type_)
        except ValueError as exc:
            raise MalformedBlock(f"unknown UnixFS type {type_}") from exc
        return cls(unixfs_type, data, filesize, tuple(blocksizes))


# ---------------------------------------------------------------- file DAG


@dataclass(frozen=True)
class Block:
    """One block of a DAG: its CID and its bytes."""

    cid: Cid
    data: bytes


@dataclass(frozen=True)
class FileDag:
    """A file's UnixFS DAG: its root CID and every block, children before their parents."""

    root: Cid
    blocks: tuple[Block, ...]


@dataclass
class _Built:
    cid: Cid
    tsize: int
    filesize: int


class _Builder:
    """Kubo's balanced layout (boxo `ipld/unixfs/importer/balanced`), step for step."""

    def __init__(self, data: bytes, version: CidVersion, chunk_size: int, max_links: int) -> None:
        self._view = memoryview(data)
        self._offset = 0
        self._version: CidVersion = version
        self._raw_leaves = version == 1
        self._chunk_size = chunk_size
        self._max_links = max_links
        self.blocks: list[Block] = []

    def done(self) -> bool:
        return self._offset >= len(self._view)

    def _emit(self, block: bytes, codec: int) -> Cid:
        cid = Cid.of_block(block, version=self._version, codec=codec)
        self.blocks.append(Block(cid, block))
        return cid

    def leaf(self) -> _Built:
        chunk = bytes(self._view[self._offset : self._offset + self._chunk_size])
        self._offset += len(chunk)
        if self._raw_leaves:
            return _Built(self._emit(chunk, RAW), len(chunk), len(chunk))
        unixfs = UnixFsData(UnixFsType.FILE, chunk or None, len(chunk))
        block = PbNode(data=unixfs.encode()).encode()
        return _Built(self._emit(block, DAG_PB), len(block), len(chunk))

    def commit(self, children: list[_Built]) -> _Built:
        filesize = sum(child.filesize for child in children)
        unixfs = UnixFsData(
            UnixFsType.FILE, None, filesize, tuple(child.filesize for child in children)
        )
        links = tuple(PbLink(child.cid, "", child.tsize) for child in children)
        block = PbNode(links, unixfs.encode()).encode()
        tsize = len(block) + sum(child.tsize for child in children)
        return _Built(self._emit(block, DAG_PB), tsize, filesize)

    def fill(self, children: list[_Built], depth: int) -> _Built:
        while len(children) < self._max_links and not self.done():
            children.append(self.leaf() if depth == 1 else self.fill([], depth - 1))
        return self.commit(children)

    def build(self) -> _Built:
        root = self.leaf()  # an empty file is one empty leaf
        depth = 1
        while not self.done():
            root = self.fill([root], depth)
            depth += 1
        return root


def build_file_dag(
    data: bytes,
    *,
    cid_version: CidVersion = 0,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> FileDag:
    """Build the UnixFS DAG that `ipfs add` builds for `data`.

    CIDv0 gives dag-pb leaves (Kubo's default); CIDv1 gives raw leaves (`--cid-version=1`
    implies `--raw-leaves`), and a file of one chunk is then a single raw block.

    Args:
        data: The file's content.
        cid_version: 0 (Kubo's default) or 1.
        chunk_size: Bytes per leaf; Kubo's default `size-262144` unless testing.
        max_links: Links per node; Kubo's default 174 unless testing.

    Returns:
        The root CID and every block, each child before its parent.

    Raises:
        ValueError: If `cid_version`, `chunk_size` or `max_links` is out of range.
    """
    if cid_version not in (0, 1):
        raise ValueError(f"cid_version must be 0 or 1, got {cid_version!r}")
    if chunk_size < 1 or max_links < 2:
        raise ValueError(f"need chunk_size >= 1 and max_links >= 2, got {chunk_size}, {max_links}")
    builder = _Builder(data, cid_version, chunk_size, max_links)
    root = builder.build()
    return FileDag(root.cid, tuple(builder.blocks))


def compute_cid(data: bytes, *, cid_version: CidVersion = 0) -> str:
    """The CID that `ipfs add` (Kubo defaults) prints for `data`.

    Args:
        data: The file's content.
        cid_version: 0 for `ipfs add` (`Qm...`), 1 for `ipfs add --cid-version=1`
            (`bafy...`, or `bafk...` for a file of one chunk).

    Returns:
        The CID string, as Kubo prints it.
    """
    return build_file_dag(data, cid_version=cid_version).root.encode()


def verify(cid: str, data: bytes) -> bool:
    """Whether `data` is the content that `cid` names, in that CID's own version.

    Args:
        cid: A CID as `ipfs add` printed it, with or without `--cid-version=1`.
        data: The file's content.

    Returns:
        True if adding `data` the same way gives the same CID.

    Raises:
        InvalidCid: If `cid` is not a CID.
    """
    expected = Cid.parse(cid)
    return build_file_dag(data, cid_version=expected.version).root == expected
