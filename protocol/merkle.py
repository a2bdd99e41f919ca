"""OpenZeppelin StandardMerkleTree, byte for byte as `@openzeppelin/merkle-tree` 1.x builds it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol, overload

from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_abi.grammar import ABIType, BasicType, TupleType, parse
from eth_abi.grammar import normalize as _abi_normalize
from eth_abi.registry import registry as abi_registry

from protocol.crypto import (
    address_bytes,
    checksum_address,
    double_keccak256_many,
    keccak256,
)
from protocol.exceptions import ProtocolError

__all__ = [
    "DUMP_FORMAT",
    "EmptyTreeError",
    "InvalidTreeDumpError",
    "LeafEncodingError",
    "LeafIndexError",
    "LeafNotInTreeError",
    "LeafValueError",
    "MerkleError",
    "StandardMerkleTree",
    "hash_pair",
    "leaf_encoder",
    "process_proof",
    "root_of_leaf_hashes",
    "standard_leaf_hash",
    "verify_proof",
]

DUMP_FORMAT: Final = "standard-v1"

Hash = bytes
"""A 32-byte tree node."""
HashLike = bytes | str
"""A node as 32 raw bytes or `0x`-prefixed hex, as OZ's JS library prints them."""
LeafValue = Sequence[Any]
"""One leaf: a value per type in the leaf encoding."""

# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


class MerkleError(ProtocolError):
    """Root of the Merkle tree errors."""


class EmptyTreeError(MerkleError, ValueError):
    """A tree was requested over zero values."""

    def __init__(self) -> None:
        super().__init__("a Merkle tree needs at least one value; skip empty batches instead")


class LeafEncodingError(MerkleError, ValueError):
    """A leaf encoding holds a type that is not a valid Solidity ABI type."""

    def __init__(self, leaf_encoding: Sequence[str], reason: str) -> None:
        self.leaf_encoding = tuple(leaf_encoding)
        self.reason = reason
        super().__init__(
            f"leaf encoding {list(leaf_encoding)} is invalid: {reason}; use ABI type names as "
            "`abi.encode` takes them, e.g. ['address', 'uint256']"
        )


class LeafValueError(MerkleError, ValueError):
    """A value does not fit the leaf encoding."""

    def __init__(self, value: object, leaf_encoding: Sequence[str], reason: str) -> None:
        self.value = value
        self.leaf_encoding = tuple(leaf_encoding)
        self.reason = reason
        super().__init__(
            f"value {value!r} does not fit leaf encoding {list(leaf_encoding)}: {reason}; "
            "integers may be int or decimal/0x strings, bytes may be bytes or 0x hex"
        )


class LeafIndexError(MerkleError, IndexError):
    """A value index is outside the tree."""

    def __init__(self, index: int, length: int) -> None:
        self.index = index
        self.length = length
        super().__init__(f"value index {index} is out of range for a tree of {length} values")


class LeafNotInTreeError(MerkleError, LookupError):
    """A value looked up by content is not one of the tree's values."""

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(
            f"value {value!r} is not in the tree; check each field against the tree's values, "
            "or ask for the proof by index"
        )


class InvalidTreeDumpError(MerkleError, ValueError):
    """A dump is not a consistent `standard-v1` tree."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"invalid StandardMerkleTree dump: {reason}; load only what `dump()` or OZ's "
            "`StandardMerkleTree.dump()` wrote"
        )


# ------------------------------------------------------------------------------------------------
# Leaf encoding
# ------------------------------------------------------------------------------------------------


def normalize(abi_type: str) -> str:
    """Return the canonical spelling of an ABI type (`uint` -> `uint256`)."""
    return str(_abi_normalize(abi_type))  # type: ignore[no-untyped-call]


_STATIC_RE: Final = re.compile(r"(uint|int|bytes)(\d+)|address|bool")
_FieldEncoder = Callable[[Any], bytes]
LeafEncoder = Callable[[LeafValue], bytes]
_ZERO_31: Final = bytes(31)


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value[:2] in ("0x", "0X") else int(value, 10)
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"{value!r} is not an integer")


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str) and value[:2] == "0x" and len(value) % 2 == 0:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not bytes or 0x-prefixed hex")


def _uint_encoder(bits: int) -> _FieldEncoder:
    limit = 1 << bits

    def encode_uint(value: Any) -> bytes:
        n = value if type(value) is int else _to_int(value)
        if n < 0 or n >= limit:
            raise ValueError(f"{n} does not fit uint{bits}")
        return n.to_bytes(32, "big")

    return encode_uint


def _int_encoder(bits: int) -> _FieldEncoder:
    bound = 1 << (bits - 1)

    def encode_int(value: Any) -> bytes:
        n = value if type(value) is int else _to_int(value)
        if n < -bound or n >= bound:
            raise ValueError(f"{n} does not fit int{bits}")
        return n.to_bytes(32, "big", signed=True)

    return encode_int


def _bytes_encoder(size: int) -> _FieldEncoder:
    def encode_fixed_bytes(value: Any) -> bytes:
        raw = value if type(value) is bytes else _to_bytes(value)
        if len(raw) > size:
            raise ValueError(f"{len(raw)} bytes do not fit bytes{size}")
        return raw.ljust(32, b"\0")

    return encode_fixed_bytes


def _encode_address(value: Any) -> bytes:
    if type(value) is bytes and len(value) == 20:
        return b"\0" * 12 + value
    return b"\0" * 12 + address_bytes(value)


def _encode_bool(value: Any) -> bytes:
    if value is True:
        return _ZERO_31 + b"\x01"
    if value is False:
        return bytes(32)
    raise ValueError(f"{value!r} is not a bool")


def _static_field_encoder(abi_type: str) -> _FieldEncoder | None:
    match = _STATIC_RE.fullmatch(abi_type)
    if match is None:
        return None
    if abi_type == "address":
        return _encode_address
    if abi_type == "bool":
        return _encode_bool
    kind, size = match.group(1), int(match.group(2))
    if kind == "bytes":
        return _bytes_encoder(size) if 1 <= size <= 32 else None
    if size % 8 or not 8 <= size <= 256:
        return None
    return _uint_encoder(size) if kind == "uint" else _int_encoder(size)


def _normalise(abi_type: ABIType, value: Any) -> Any:
    # Turns JSON-shaped values (decimal strings, 0x hex) into what eth_abi expects.
    if abi_type.is_array:
        return [_normalise(abi_type.item_type, item) for item in value]
    if isinstance(abi_type, TupleType):
        if len(value) != len(abi_type.components):
            raise ValueError(f"a tuple of {len(abi_type.components)} fields is expected")
        return tuple(_normalise(c, v) for c, v in zip(abi_type.components, value, strict=True))
    assert isinstance(abi_type, BasicType)
    if abi_type.base in ("uint", "int"):
        return _to_int(value)
    if abi_type.base == "bytes":
        return _to_bytes(value)
    return value


def _inline(index: int, abi_type: str, env: dict[str, Any]) -> str:
    # A Python expression encoding field `a{index}` with no call on the common path; anything
    # unusual falls back to the validating encoder `e{index}`.
    a, e = f"a{index}", f"e{index}"
    if abi_type == "address":
        return f"Z12 + ({a} if type({a}) is bytes and len({a}) == 20 else address_bytes({a}))"
    match = _STATIC_RE.fullmatch(abi_type)
    assert match is not None
    if abi_type == "bool":
        return f"{e}({a})"
    kind, size = match.group(1), int(match.group(2))
    if kind == "uint":
        env[f"L{index}"] = 1 << size
        return f'{a}.to_bytes(32, "big") if type({a}) is int and 0 <= {a} < L{index} else {e}({a})'
    if kind == "int":
        env[f"B{index}"] = 1 << (size - 1)
        return (
            f'{a}.to_bytes(32, "big", signed=True) '
            f"if type({a}) is int and -B{index} <= {a} < B{index} else {e}({a})"
        )
    if size == 32:
        return f"{a} if type({a}) is bytes and len({a}) == 32 else {e}({a})"
    return f"{e}({a})"


def _compile_static(
    encoders: list[_FieldEncoder], normalised: tuple[str, ...], types: tuple[str, ...]
) -> LeafEncoder:
    # Generated once per leaf encoding (as `collections.namedtuple` does): unrolling the fields
    # makes encoding about 2.5x faster than a loop over per-field functions.
    env: dict[str, Any] = {"Z12": bytes(12), "address_bytes": address_bytes}
    env.update({f"e{i}": enc for i, enc in enumerate(encoders)})
    names = ", ".join(f"a{i}" for i in range(len(encoders)))
    parts = ",\n        ".join(_inline(i, t, env) for i, t in enumerate(normalised))
    source = f"def encode_static(value):\n    {names}, = value\n    return b''.join(({parts},))\n"
    exec(source, env)  # the source is built from validated ABI type names only
    fast: Callable[[LeafValue], bytes] = env["encode_static"]
    width = len(types)

    def encode_static(value: LeafValue) -> bytes:
        if isinstance(value, str | bytes) or len(value) != width:
            raise LeafValueError(value, types, f"expected a sequence of {width} fields")
        try:
            return fast(value)
        except (ValueError, TypeError) as exc:
            raise LeafValueError(value, types, str(exc)) from exc

    return encode_static


def leaf_encoder(leaf_encoding: Sequence[str]) -> LeafEncoder:
    """Compile a function returning `abi.encode(values)` for one leaf encoding.

    Static types (`address`, `bool`, `uintN`, `intN`, `bytesN`) are encoded by hand, word by
    word; any other type goes through eth_abi. Integers may be given as `int` or as decimal or
    `0x` strings and bytes as `bytes` or `0x` hex, so values read back from a JSON dump encode
    exactly as the originals.

    Args:
        leaf_encoding: ABI type names, e.g. `["address", "uint256"]`.

    Returns:
        A function from one leaf's values to their ABI encoding.

    Raises:
        LeafEncodingError: a type is not a valid ABI type.
    """
    types = tuple(leaf_encoding)
    if not types:
        raise LeafEncodingError(types, "it has no types")
    try:
        normalised = tuple(normalize(t) for t in types)
        parsed = tuple(parse(t) for t in normalised)
        for p in parsed:
            p.validate()
        unknown = [t for t in normalised if not abi_registry.has_encoder(t)]
    except Exception as exc:  # eth_abi raises ParseError/ABITypeError/ValueError
        raise LeafEncodingError(types, str(exc)) from exc
    if unknown:
        raise LeafEncodingError(types, f"no ABI encoder for {unknown}")
    fields = [_static_field_encoder(t) for t in normalised]
    if all(f is not None for f in fields):
        return _compile_static([f for f in fields if f is not None], normalised, types)
    width = len(types)

    def encode_dynamic(value: LeafValue) -> bytes:
        if len(value) != width:
            raise LeafValueError(value, types, f"expected {width} fields, got {len(value)}")
        try:
            ready = [_normalise(p, v) for p, v in zip(parsed, value, strict=True)]
            return abi_encode(normalised, ready)
        except (EncodingError, ValueError, TypeError) as exc:
            raise LeafValueError(value, types, str(exc)) from exc

    return encode_dynamic


def standard_leaf_hash(leaf_encoding: Sequence[str], value: LeafValue) -> Hash:
    """Return `keccak256(bytes.concat(keccak256(abi.encode(value))))`, OZ's standard leaf.

    Args:
        leaf_encoding: ABI type names of the leaf's fields.
        value: One value per type.

    Returns:
        The 32-byte leaf hash.
    """
    return keccak256(keccak256(leaf_encoder(leaf_encoding)(value)))


# ------------------------------------------------------------------------------------------------
# Nodes and proofs
# ------------------------------------------------------------------------------------------------


def _node(value: HashLike) -> Hash:
    raw = value
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raw = b""
    if not isinstance(raw, bytes | bytearray) or len(raw) != 32:
        raise ValueError(f"{value!r} is not a 32-byte node (bytes or 0x hex)")
    return bytes(raw)


def hash_pair(a: Hash, b: Hash) -> Hash:
    """Return OZ's node hash: Keccak-256 of the two children, smaller first."""
    return keccak256(a + b if a < b else b + a)


def process_proof(leaf: HashLike, proof: Sequence[HashLike]) -> Hash:
    """Fold a proof onto a leaf hash, as `MerkleProof.processProof` does on-chain.

    Args:
        leaf: The leaf hash.
        proof: Sibling hashes from the leaf up.

    Returns:
        The root this proof leads to.
    """
    node = _node(leaf)
    for sibling in proof:
        other = _node(sibling)
        node = keccak256(node + other if node < other else other + node)
    return node


def verify_proof(
    root: HashLike, leaf_encoding: Sequence[str], value: LeafValue, proof: Sequence[HashLike]
) -> bool:
    """Check that `value` is a leaf of the tree with `root`, as OZ's static `verify`.

    Args:
        root: The tree root (bytes or 0x hex).
        leaf_encoding: ABI type names of the leaf's fields.
        value: The leaf's values.
        proof: The sibling hashes from `proof()`.

    Returns:
        True if the proof leads from the value's leaf hash to `root`.

    Raises:
        LeafValueError: `value` does not fit `leaf_encoding`.
        ValueError: `root` or a proof node is not 32 bytes.
    """
    return process_proof(standard_leaf_hash(leaf_encoding, value), proof) == _node(root)


def _make_tree(leaves: list[Hash]) -> list[Hash]:
    # OZ's array layout: leaves in reverse at the end, node i has children 2i+1 and 2i+2.
    n = len(leaves)
    tree: list[Hash] = [b""] * (n - 1)
    tree.extend(reversed(leaves))
    for i in range(n - 2, -1, -1):
        a = tree[2 * i + 1]
        b = tree[2 * i + 2]
        tree[i] = keccak256(a + b if a < b else b + a)
    return tree


def _json_value(abi_type: ABIType, value: Any) -> Any:
    # Values as OZ users dump them: numbers as decimal strings, bytes as 0x hex.
    if abi_type.is_array:
        return [_json_value(abi_type.item_type, v) for v in value]
    if isinstance(abi_type, TupleType):
        return [_json_value(c, v) for c, v in zip(abi_type.components, value, strict=True)]
    assert isinstance(abi_type, BasicType)
    if abi_type.base in ("uint", "int") and type(value) is int:
        return str(value)
    if abi_type.base == "address" and isinstance(value, bytes | bytearray):
        return checksum_address(bytes(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    return value


# ------------------------------------------------------------------------------------------------
# The tree
# ------------------------------------------------------------------------------------------------


def root_of_leaf_hashes(leaf_hashes: Sequence[Hash]) -> Hash:
    """Return the root `StandardMerkleTree.of` builds over leaves with these hashes.

    Args:
        leaf_hashes: The double-hashed leaves, in any order (at least one).

    Returns:
        The 32-byte root.

    Raises:
        EmptyTreeError: no leaf.
    """
    if not leaf_hashes:
        raise EmptyTreeError()
    return _make_tree(sorted(leaf_hashes))[0]


class _StaticVerify(Protocol):
    def __call__(
        self,
        root: HashLike,
        leaf_encoding: Sequence[str],
        value: LeafValue,
        proof: Sequence[HashLike],
    ) -> bool: ...


class _BoundVerify(Protocol):
    def __call__(self, value: int | LeafValue, proof: Sequence[HashLike]) -> bool: ...


class _Verify:
    """`StandardMerkleTree.verify(root, enc, value, proof)` on the class, `tree.verify(v, p)`."""

    @overload
    def __get__(self, tree: None, owner: type[StandardMerkleTree]) -> _StaticVerify: ...
    @overload
    def __get__(
        self, tree: StandardMerkleTree, owner: type[StandardMerkleTree] | None = None
    ) -> _BoundVerify: ...
    def __get__(
        self, tree: StandardMerkleTree | None, owner: type[StandardMerkleTree] | None = None
    ) -> _StaticVerify | _BoundVerify:
        if tree is None:
            return verify_proof
        return tree._verify_bound


class StandardMerkleTree:
    """A Merkle tree over ABI-encoded values with OZ's `StandardMerkleTree` layout.

    Leaves are `keccak256(keccak256(abi.encode(value)))`, sorted by hash; the tree is a complete
    binary tree in one array (root at 0, leaves at the end, reversed); parents hash their sorted
    children. Roots and proofs equal those of `@openzeppelin/merkle-tree` for the same values and
    verify with `MerkleProof.verify` on-chain.
    """

    verify: Final = _Verify()

    def __init__(
        self,
        tree: list[Hash],
        values: list[LeafValue],
        tree_indices: list[int],
        leaf_encoding: Sequence[str],
    ) -> None:
        """Wrap an already built tree; use `of` or `load` instead."""
        self._tree = tree
        self._values = values
        self._tree_indices = tree_indices
        self._leaf_encoding = tuple(leaf_encoding)
        self._encode = leaf_encoder(self._leaf_encoding)
        self._lookup: dict[Hash, int] | None = None

    @classmethod
    def of(cls, values: Sequence[LeafValue], leaf_encoding: Sequence[str]) -> StandardMerkleTree:
        """Build the tree over `values`, as OZ's `StandardMerkleTree.of(values, leafEncoding)`.

        Args:
            values: The leaves, each a sequence with one value per type.
            leaf_encoding: ABI type names, e.g. `["address", "uint256"]`.

        Returns:
            The tree.

        Raises:
            EmptyTreeError: `values` is empty.
            LeafEncodingError: a type is not an ABI type.
            LeafValueError: a value does not fit the encoding.
        """
        if not values:
            raise EmptyTreeError()
        encode = leaf_encoder(leaf_encoding)
        hashes = double_keccak256_many([encode(v) for v in values])
        # Stable sort by hash, as JS's Array.prototype.sort with OZ's byte comparison.
        order = sorted(range(len(hashes)), key=hashes.__getitem__)
        tree = _make_tree([hashes[i] for i in order])
        last = len(tree) - 1
        tree_indices = [0] * len(values)
        for leaf_index, value_index in enumerate(order):
            tree_indices[value_index] = last - leaf_index
        return cls(tree, list(values), tree_indices, leaf_encoding)

    # -- reading -------------------------------------------------------------------------------

    @property
    def root(self) -> Hash:
        """The 32-byte root (`"0x" + root.hex()` is what OZ's `tree.root` prints)."""
        return self._tree[0]

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        """The ABI type names of each leaf's fields."""
        return self._leaf_encoding

    @property
    def values(self) -> list[LeafValue]:
        """The values in the order they were given (not the tree's order)."""
        return list(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def at(self, index: int) -> LeafValue:
        """Return the value given at `index`."""
        self._check_index(index)
        return self._values[index]

    def entries(self) -> Iterator[tuple[int, LeafValue]]:
        """Yield `(index, value)` in the order the values were given."""
        yield from enumerate(self._values)

    def leaf_hash(self, value: LeafValue) -> Hash:
        """Return the standard leaf hash of `value` under this tree's encoding."""
        return keccak256(keccak256(self._encode(value)))

    def leaf_index(self, value: LeafValue) -> int:
        """Return the index of `value` among the tree's values (the last one if repeated).

        Raises:
            LeafNotInTreeError: no value hashes to the same leaf.
        """
        if self._lookup is None:
            self._lookup = {self._tree[t]: i for i, t in enumerate(self._tree_indices)}
        index = self._lookup.get(self.leaf_hash(value))
        if index is None:
            raise LeafNotInTreeError(value)
        return index

    def proof(self, value: int | LeafValue) -> list[Hash]:
        """Return the proof for a value, as OZ's `getProof`.

        Args:
            value: The value's index in the given order, or the value itself.

        Returns:
            Sibling hashes from the leaf up, ready for `MerkleProof.verify`.

        Raises:
            LeafIndexError: the index is out of range.
            LeafNotInTreeError: the value is not in the tree.
        """
        index = value if isinstance(value, int) else self.leaf_index(value)
        self._check_index(index)
        i = self._tree_indices[index]
        tree = self._tree
        proof: list[Hash] = []
        while i > 0:
            proof.append(tree[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return proof

    @property
    def whole_depth(self) -> int:
        """The depth of the deepest whole level: `floor(log2(len(self)))`.

        Every level from the root (depth 0) down to it holds `2 ** depth` nodes, and every leaf
        lies at least that deep, so every proof has at least this many elements.
        """
        return len(self._values).bit_length() - 1

    def level(self, depth: int) -> list[Hash]:
        """The `2 ** depth` nodes at `depth`, in tree order (what `Rewards.cacheLevel` takes).

        Raises:
            MerkleError: `depth` is negative or deeper than `whole_depth`.
        """
        if not 0 <= depth <= self.whole_depth:
            raise MerkleError(f"level {depth} is not whole (0 to {self.whole_depth} are)")
        return self._tree[(1 << depth) - 1 : (2 << depth) - 1]

    def _verify_bound(self, value: int | LeafValue, proof: Sequence[HashLike]) -> bool:
        if isinstance(value, int):
            self._check_index(value)
            value = self._values[value]
        return process_proof(self.leaf_hash(value), proof) == self.root

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self._values) or isinstance(index, bool):
            raise LeafIndexError(index, len(self._values))

    # -- dump and load ---------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Return the tree in OZ's JSON dump format (`"format": "standard-v1"`).

        Integers become decimal strings and bytes become 0x hex, so the dump is plain JSON and
        loads in OZ's JS library and in `load`.
        """
        parsed = [parse(normalize(t)) for t in self._leaf_encoding]
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(self._leaf_encoding),
            "tree": ["0x" + node.hex() for node in self._tree],
            "values": [
                {
                    "value": [_json_value(p, v) for p, v in zip(parsed, value, strict=True)],
                    "treeIndex": t,
                }
                for value, t in zip(self._values, self._tree_indices, strict=True)
            ],
        }

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> StandardMerkleTree:
        """Load and fully check a dump written by `dump` or by OZ's JS library.

        Args:
            data: The parsed JSON dump.

        Returns:
            The tree.

        Raises:
            InvalidTreeDumpError: wrong format, malformed nodes, or a node or value that does not
                match the tree.
        """
        if data.get("format") != DUMP_FORMAT:
            raise InvalidTreeDumpError(
                f"format is {data.get('format')!r}, expected {DUMP_FORMAT!r}"
            )
        leaf_encoding = data.get("leafEncoding")
        if not isinstance(leaf_encoding, list) or not all(
            isinstance(t, str) for t in leaf_encoding
        ):
            raise InvalidTreeDumpError("leafEncoding must be a list of ABI type names")
        raw_tree, raw_values = data.get("tree"), data.get("values")
        if not isinstance(raw_tree, list) or not raw_tree or not isinstance(raw_values, list):
            raise InvalidTreeDumpError("tree must be a non-empty list and values a list")
        try:
            tree = [_node(n) for n in raw_tree]
        except ValueError as exc:
            raise InvalidTreeDumpError(str(exc)) from exc
        n = len(tree)
        if n % 2 == 0:
            raise InvalidTreeDumpError(f"a complete tree has an odd number of nodes, got {n}")
        for i in range((n - 1) // 2):
            if tree[i] != hash_pair(tree[2 * i + 1], tree[2 * i + 2]):
                raise InvalidTreeDumpError(f"node {i} is not the hash of its children")
        values: list[LeafValue] = []
        indices: list[int] = []
        encode = leaf_encoder(leaf_encoding)
        for position, entry in enumerate(raw_values):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("value"), list):
                raise InvalidTreeDumpError(
                    f"values[{position}] must be {{value: [...], treeIndex}}"
                )
            t = entry.get("treeIndex")
            if type(t) is not int or not (n - 1) // 2 <= t < n:
                raise InvalidTreeDumpError(
                    f"values[{position}].treeIndex {t!r} is not a leaf index"
                )
            try:
                leaf = keccak256(keccak256(encode(entry["value"])))
            except LeafValueError as exc:
                raise InvalidTreeDumpError(f"values[{position}]: {exc.reason}") from exc
            if leaf != tree[t]:
                raise InvalidTreeDumpError(f"values[{position}] does not hash to node {t}")
            values.append(entry["value"])
            indices.append(t)
        if not values:
            raise InvalidTreeDumpError("values is empty")
        return cls(tree, values, indices, leaf_encoding)
