"""A schema-2 bundle disclosed signal by signal (`DisclosedBundle`): what the indexer serves and
exports, checked from the leaf, the signature, the commitments and the openings alone."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.bundle import (
    CommitmentMismatchError,
    SignedBundle,
    decode_signed_bundle,
    encode_signed_bundle,
    sign_bundle,
)
from protocol.crypto import InvalidSignerError, keccak256, private_key_to_address
from protocol.disclosure import DisclosedBundle, TamperedOpeningError, disclose
from tests.protocol.test_disclosure import DOMAIN, bundles

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
OTHER_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")


def signed_by_its_device(data: st.DataObject) -> SignedBundle:
    bundle = dataclasses.replace(data.draw(bundles()), device=private_key_to_address(KEY))
    return sign_bundle(bundle, KEY, DOMAIN)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_disclosure_verifies_to_exactly_the_opened_signals_and_survives_json(
    data: st.DataObject,
) -> None:
    signed = signed_by_its_device(data)
    # Round trip through the wire form first: the indexer discloses what it stored.
    signed = decode_signed_bundle(encode_signed_bundle(signed))
    names = list(signed.bundle.readings)
    opened = data.draw(st.lists(st.sampled_from(names), unique=True))
    disclosed = disclose(signed, opened)
    again = DisclosedBundle.from_json(json.loads(json.dumps(disclosed.as_json())))
    assert again == disclosed
    got = again.verify(DOMAIN)
    assert got == {n: signed.bundle.readings[n] for n in opened}
    assert again.device == signed.bundle.device
    # Nothing of an unopened signal but its name and commitment is in the document.
    doc = json.dumps(disclosed.as_json())
    for name in set(names) - set(opened):
        assert signed.bundle.salts is not None
        assert signed.bundle.salts[name].hex() not in doc


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_a_disclosure_with_an_opening_moved_to_another_name_is_tampered(
    data: st.DataObject,
) -> None:
    signed = signed_by_its_device(data)
    names = list(signed.bundle.readings)
    if len(names) < 2:
        return
    doc = disclose(signed, names[:1]).as_json()
    doc["openings"][0]["name"] = names[1]
    with pytest.raises(TamperedOpeningError):
        DisclosedBundle.from_json(doc).verify(DOMAIN)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_a_disclosure_with_another_signature_or_commitment_is_refused(
    data: st.DataObject,
) -> None:
    signed = signed_by_its_device(data)
    names = list(signed.bundle.readings)
    doc = disclose(signed, names).as_json()
    # Another key's signature over the same bundle: the leaf's sigHash no longer matches.
    resigned = sign_bundle(signed.bundle, OTHER_KEY, DOMAIN)
    swapped = copy.deepcopy(doc)
    swapped["signature"] = "0x" + resigned.signature.hex()
    with pytest.raises(TamperedOpeningError):
        DisclosedBundle.from_json(swapped).verify(DOMAIN)
    # ... and with the leaf's sigHash fixed up, the signer is not the device.
    swapped["leaf"][6] = "0x" + keccak256(resigned.signature).hex()
    with pytest.raises(InvalidSignerError):
        DisclosedBundle.from_json(swapped).verify(DOMAIN)
    # A commitment list that does not lead to the signed dataHash.
    changed = copy.deepcopy(doc)
    changed["commitments"][0][1] = "0x" + "00" * 32
    with pytest.raises((CommitmentMismatchError, TamperedOpeningError)):
        DisclosedBundle.from_json(changed).verify(DOMAIN)


def test_a_malformed_disclosure_is_a_tampered_opening() -> None:
    with pytest.raises(TamperedOpeningError):
        DisclosedBundle.from_json({"leaf": [1, 2], "signature": "0x", "commitments": []})
