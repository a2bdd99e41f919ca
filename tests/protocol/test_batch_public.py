"""The public batch document (`dimo-batch-v2`) and the readings request signature."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account

from protocol.batch import (
    PUBLIC_FORMAT,
    InvalidBatchContent,
    build_content,
    build_public,
    leaf_of_row,
    parse_any,
    parse_content,
    parse_public,
    readings_request_header,
    readings_request_signer,
    wire_form,
)
from protocol.bundle import SCHEMA_SIGNALS, Bundle, SignedBundle, sign_bundle
from protocol.crypto import MalformedSignatureError
from protocol.eip712 import dimo_domain

DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = bytes.fromhex("11" * 32)
DEVICE = Account.from_key(KEY).address
T0 = 1_767_225_600_000


def _signed(n: int = 4) -> list[SignedBundle]:
    return [
        sign_bundle(
            Bundle(
                DEVICE,
                3,
                i,
                T0 + 60_000 * i,
                T0 + 60_000 * (i + 1),
                {
                    "Vehicle.Speed": [(T0 + 60_000 * i + 5, 33.25 + i)],
                    "Vehicle.CurrentLocation.Latitude": [(T0 + 60_000 * i + 5, 48.1371 + i)],
                },
                schema_version=SCHEMA_SIGNALS if i % 2 else 1,
            ),
            KEY,
            DOMAIN,
        )
        for i in range(n)
    ]


def _leaves(signed: list[SignedBundle]) -> list[tuple[str, int, int, int, int, bytes, bytes]]:
    return [
        leaf_of_row(
            s.bundle.device,
            s.bundle.vehicle_id,
            s.bundle.sequence,
            s.bundle.window_start,
            s.bundle.window_end,
            s.bundle.data_hash,
            s.signature,
        )
        for s in signed
    ]


def _public(signed: list[SignedBundle]) -> bytes:
    raw, _ = build_public(
        5,
        [s.bundle.encoding for s in signed],
        [s.signature for s in signed],
        _leaves(signed),
    )
    return raw


def _reencode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def test_the_public_document_rebuilds_the_root_of_the_readings_document() -> None:
    signed = _signed()
    wires = [wire_form(s.bundle.encoding, s.signature) for s in signed]
    readings, tree = build_content(5, wires, _leaves(signed))
    public = parse_public(_public(signed), DOMAIN, 5)
    assert public.tree.root == tree.root == parse_content(readings, DOMAIN, 5).tree.root
    assert public.count == 4
    assert [e.schema for e in public.entries] == [1, 2, 1, 2]
    assert public.entries[1].signals == dict(signed[1].bundle.commitments)
    assert public.entries[0].signals == dict.fromkeys(signed[0].bundle.readings)
    assert isinstance(parse_any(_public(signed), DOMAIN, 5), type(public))


def test_the_public_document_holds_no_value_salt_or_encoding() -> None:
    signed = _signed()
    text = _public(signed).decode()
    assert json.loads(text)["format"] == PUBLIC_FORMAT
    for s in signed:
        assert s.bundle.encoding.hex() not in text
        for name, samples in s.bundle.readings.items():
            for _, value in samples:
                assert repr(value) not in text
            if s.bundle.salts is not None:
                assert s.bundle.salts[name].hex() not in text


def test_an_altered_commitment_is_refused() -> None:
    doc = json.loads(_public(_signed()))
    doc["bundles"][1]["signals"][0][1] = "0x" + "22" * 32
    with pytest.raises(InvalidBatchContent, match="dataHash"):
        parse_public(_reencode(doc), DOMAIN, 5)


def test_a_dropped_signal_is_refused() -> None:
    doc = json.loads(_public(_signed()))
    del doc["bundles"][1]["signals"][0]
    with pytest.raises(InvalidBatchContent, match="dataHash"):
        parse_public(_reencode(doc), DOMAIN, 5)


def test_a_signature_of_another_bundle_is_refused() -> None:
    doc = json.loads(_public(_signed()))
    doc["bundles"][0]["signature"] = doc["bundles"][2]["signature"]
    with pytest.raises(InvalidBatchContent, match="sigHash"):
        parse_public(_reencode(doc), DOMAIN, 5)


def test_a_leaf_changed_under_its_signature_is_refused() -> None:
    doc = json.loads(_public(_signed()))
    doc["tree"]["values"][0]["value"][1] = "4"  # another vehicle
    with pytest.raises(InvalidBatchContent):
        parse_public(_reencode(doc), DOMAIN, 5)


def test_a_commitment_on_a_schema_1_entry_is_refused() -> None:
    doc = json.loads(_public(_signed()))
    doc["bundles"][0]["signals"][0][1] = "0x" + "33" * 32
    with pytest.raises(InvalidBatchContent):
        parse_public(_reencode(doc), DOMAIN, 5)


def test_a_readings_request_recovers_to_its_indexer_for_its_batch_only() -> None:
    header = readings_request_header(DOMAIN, KEY, 7, T0)
    assert readings_request_signer(DOMAIN, header, 7) == (DEVICE, T0)
    assert readings_request_signer(DOMAIN, header, 8)[0] != DEVICE
    with pytest.raises(MalformedSignatureError):
        readings_request_signer(DOMAIN, "not a header", 7)
