"""Log decoding: the word-slicing fast path gives exactly what eth_abi gives, for every static
type, and events with dynamic data still go through eth_abi."""

from __future__ import annotations

from typing import Any

from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from indexer.handlers import _plain, build_decoders

ADDRESS = "0x" + "11" * 20
STATIC = ["address", "bool", "uint8", "uint32", "uint256", "int8", "int256", "bytes4", "bytes32"]


def _abi(name: str, types: list[str]) -> list[dict[str, Any]]:
    inputs = [{"name": "who", "type": "address", "indexed": True}] + [
        {"name": f"a{i}", "type": t, "indexed": False} for i, t in enumerate(types)
    ]
    return [{"type": "event", "name": name, "inputs": inputs, "anonymous": False}]


DECODERS = build_decoders(
    {
        "Static": (ADDRESS, _abi("AllStatic", STATIC)),
        "Dynamic": (ADDRESS, _abi("WithString", ["uint256", "string", "bytes"])),
    }
)


def _decoder(name: str) -> Any:
    return next(d for d in DECODERS.values() if d.name == name)


def _value(abi_type: str) -> st.SearchStrategy[Any]:
    if abi_type == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if abi_type == "bool":
        return st.booleans()
    if abi_type.startswith("uint"):
        return st.integers(0, 2 ** int(abi_type[4:]) - 1)
    if abi_type.startswith("int"):
        bits = int(abi_type[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    size = int(abi_type[5:])
    return st.binary(min_size=size, max_size=size)


@given(st.tuples(*(_value(t) for t in STATIC)))
def test_the_fast_path_equals_eth_abi_for_every_static_type(values: tuple[Any, ...]) -> None:
    decoder = _decoder("AllStatic")
    assert decoder.word_decoders is not None
    data = "0x" + encode(STATIC, list(values)).hex()
    topics = ["0x" + "00" * 32, "0x" + "00" * 12 + "ab" * 20]
    fast = decoder.decode(topics, data)
    reference = [_plain(v) for v in decoder.data_decoder(_stream(data))]
    assert [fast[f"a{i}"] for i in range(len(STATIC))] == reference
    assert fast["who"] == "0x" + "ab" * 20


def _stream(data: str) -> Any:
    from eth_abi.decoding import ContextFramesBytesIO

    return ContextFramesBytesIO(bytes.fromhex(data[2:]))


def test_an_event_with_dynamic_data_goes_through_eth_abi() -> None:
    decoder = _decoder("WithString")
    assert decoder.word_decoders is None
    data = "0x" + encode(["uint256", "string", "bytes"], [7, "héllo", b"\x01\x02"]).hex()
    args = decoder.decode(["0x" + "00" * 32, "0x" + "00" * 32], data)
    assert (args["a0"], args["a1"], args["a2"]) == (7, "héllo", "0x0102")
