"""A developer licence's rows are the fold of its events: owner, signers and redirect URIs."""

from __future__ import annotations

from typing import Any

from indexer import schema as s
from indexer.handlers import Event, fold, keys_of

ZERO = "0x" + "00" * 20
DEV, BUYER = "0x" + "aa" * 20, "0x" + "bb" * 20
CLIENT, SIGNER_A, SIGNER_B = "0x" + "cc" * 20, "0x" + "01" * 20, "0x" + "02" * 20


def _event(n: int, name: str, **args: Any) -> Event:
    return Event(n, 0, 0, f"0x{n:064x}", 1_700_000_000 + n, "0x", "DeveloperLicence", name, args)


EVENTS = [
    _event(1, "Transfer", **{"from": ZERO, "to": DEV, "tokenId": 7}),
    _event(2, "LicenceMinted", licenceId=7, clientId=CLIENT, owner=DEV, fee=5),
    _event(3, "SignerAdded", licenceId=7, signer=SIGNER_A),
    _event(4, "SignerAdded", licenceId=7, signer=SIGNER_B),
    _event(5, "SignerRemoved", licenceId=7, signer=SIGNER_A),
    _event(6, "RedirectUriSet", licenceId=7, uri="https://a.example", enabled=True),
    _event(7, "RedirectUriSet", licenceId=7, uri="https://b.example", enabled=True),
    _event(8, "RedirectUriSet", licenceId=7, uri="https://a.example", enabled=False),
    _event(9, "Transfer", **{"from": DEV, "to": BUYER, "tokenId": 7}),
]


def test_every_licence_event_is_keyed_by_its_licence() -> None:
    assert {keys_of(e) for e in EVENTS} == {("devlicence:7", None)}


def test_the_fold_keeps_the_current_owner_signers_and_uris() -> None:
    rows = fold("devlicence:7", EVENTS)
    (licence,) = rows[s.developer_licences]
    assert (licence["client_id"], licence["owner"], licence["fee"]) == (CLIENT, BUYER, 5)
    assert [r["signer"] for r in rows[s.licence_signers]] == [SIGNER_B]
    assert [r["uri"] for r in rows[s.licence_redirect_uris]] == ["https://b.example"]


def test_a_licence_is_not_written_before_its_mint_event() -> None:
    rows = fold("devlicence:7", EVENTS[:1])
    assert rows.get(s.developer_licences, []) == []
