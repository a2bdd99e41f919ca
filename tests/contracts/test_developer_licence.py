"""DeveloperLicence: minting for the governed fee, signers, redirect URIs and ERC-1271."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

MAGIC = bytes.fromhex("1626ba7e")
INVALID = bytes.fromhex("ffffffff")


def _mint(licences: Any, who: Any) -> tuple[int, str]:
    tx = licences.mint(sender=who)
    event = tx.events.filter(licences.LicenceMinted)[0]
    return int(event.licenceId), str(event.clientId)


def _account(project_contract: Any, address: str) -> Any:
    from ape import project

    return project.DeveloperLicenceAccount.at(address)


@pytest.fixture
def licence(developer_licence: Any, developer: Any) -> tuple[int, str]:
    return _mint(developer_licence, developer)


def _personal_digest(text: str) -> bytes:
    data = text.encode()
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


def test_mint_gives_the_caller_a_licence_with_its_own_client_id(
    developer_licence: Any, developer: Any
) -> None:
    first, client_a = _mint(developer_licence, developer)
    second, client_b = _mint(developer_licence, developer)
    assert second == first + 1
    assert client_a != client_b
    assert developer_licence.ownerOf(first) == developer.address
    assert developer_licence.clientIdOf(first) == client_a
    assert developer_licence.licenceOf(client_a) == first
    assert developer_licence.licenceOf(developer.address) == 0


def test_mint_charges_the_fee_governance_set_to_the_treasury(
    developer_licence: Any, developer: Any, parameters: Any, token: Any, admin: Any, timelock: Any
) -> None:
    key = parameters.DEVELOPER_LICENCE_FEE()
    fee = 25 * 10**18
    parameters.setUint(key, fee, sender=admin)
    try:
        token.mint(developer, fee, sender=admin)
        token.approve(developer_licence, fee, sender=developer)
        before = token.balanceOf(timelock)
        tx = developer_licence.mint(sender=developer)
        assert tx.events.filter(developer_licence.LicenceMinted)[0].fee == fee
        assert token.balanceOf(timelock) - before == fee
    finally:
        parameters.setUint(key, 0, sender=admin)


def test_mint_without_the_fee_approved_reverts(
    developer_licence: Any, stranger: Any, parameters: Any, admin: Any, token: Any
) -> None:
    key = parameters.DEVELOPER_LICENCE_FEE()
    parameters.setUint(key, 10**18, sender=admin)
    try:
        with ape.reverts(token.ERC20InsufficientAllowance):
            developer_licence.mint(sender=stranger)
    finally:
        parameters.setUint(key, 0, sender=admin)


def test_owner_adds_and_removes_a_signer(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    signer = Account.create().address
    tx = developer_licence.addSigner(licence_id, signer, sender=developer)
    assert tx.events.filter(developer_licence.SignerAdded)[0].signer == signer
    assert developer_licence.isSigner(licence_id, signer) is True
    tx = developer_licence.removeSigner(licence_id, signer, sender=developer)
    assert tx.events.filter(developer_licence.SignerRemoved)[0].signer == signer
    assert developer_licence.isSigner(licence_id, signer) is False


def test_adding_a_signer_by_another_account_reverts(
    developer_licence: Any, stranger: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    with ape.reverts(
        developer_licence.DeveloperLicenceNotOwner,
        licenceId=licence_id,
        caller=stranger.address,
        owner=developer.address,
    ):
        developer_licence.addSigner(licence_id, stranger, sender=stranger)


def test_adding_a_signer_to_an_unknown_licence_reverts(
    developer_licence: Any, developer: Any
) -> None:
    with ape.reverts(developer_licence.DeveloperLicenceUnknownLicence, licenceId=10**9):
        developer_licence.addSigner(10**9, developer, sender=developer)


def test_adding_the_zero_signer_reverts(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    with ape.reverts(developer_licence.DeveloperLicenceZeroSigner, licenceId=licence_id):
        developer_licence.addSigner(licence_id, "0x" + "00" * 20, sender=developer)


def test_adding_a_signer_twice_reverts(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    signer = Account.create().address
    developer_licence.addSigner(licence_id, signer, sender=developer)
    with ape.reverts(
        developer_licence.DeveloperLicenceSignerExists, licenceId=licence_id, signer=signer
    ):
        developer_licence.addSigner(licence_id, signer, sender=developer)


def test_removing_a_non_signer_reverts(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    signer = Account.create().address
    with ape.reverts(
        developer_licence.DeveloperLicenceNotSigner, licenceId=licence_id, signer=signer
    ):
        developer_licence.removeSigner(licence_id, signer, sender=developer)


def test_removing_a_signer_by_another_account_reverts(
    developer_licence: Any, developer: Any, stranger: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    developer_licence.addSigner(licence_id, stranger, sender=developer)
    with ape.reverts(developer_licence.DeveloperLicenceNotOwner):
        developer_licence.removeSigner(licence_id, stranger, sender=stranger)


def test_owner_enables_and_disables_a_redirect_uri(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    uri = "https://app.example/callback"
    tx = developer_licence.setRedirectUri(licence_id, uri, True, sender=developer)
    event = tx.events.filter(developer_licence.RedirectUriSet)[0]
    assert (event.uri, event.enabled) == (uri, True)
    assert developer_licence.isRedirectUri(licence_id, uri) is True
    developer_licence.setRedirectUri(licence_id, uri, False, sender=developer)
    assert developer_licence.isRedirectUri(licence_id, uri) is False


def test_an_empty_or_too_long_redirect_uri_reverts(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    with ape.reverts(developer_licence.DeveloperLicenceInvalidUri, length=0, maxLength=2048):
        developer_licence.setRedirectUri(licence_id, "", True, sender=developer)
    with ape.reverts(developer_licence.DeveloperLicenceInvalidUri, length=2049, maxLength=2048):
        developer_licence.setRedirectUri(licence_id, "h" * 2049, True, sender=developer)


def test_setting_a_redirect_uri_to_its_current_state_reverts(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    uri = "https://app.example/other"
    with ape.reverts(developer_licence.DeveloperLicenceUriUnchanged, uri=uri, enabled=False):
        developer_licence.setRedirectUri(licence_id, uri, False, sender=developer)


def test_setting_a_redirect_uri_by_another_account_reverts(
    developer_licence: Any, stranger: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    with ape.reverts(developer_licence.DeveloperLicenceNotOwner):
        developer_licence.setRedirectUri(licence_id, "https://x.example", True, sender=stranger)


def test_the_new_owner_of_a_licence_administers_it(
    developer_licence: Any, developer: Any, stranger: Any, licence: tuple[int, str]
) -> None:
    licence_id, _ = licence
    developer_licence.transferFrom(developer, stranger, licence_id, sender=developer)
    developer_licence.addSigner(licence_id, stranger, sender=stranger)
    with ape.reverts(developer_licence.DeveloperLicenceNotOwner):
        developer_licence.addSigner(licence_id, developer, sender=developer)


def test_client_id_accepts_a_signers_login_signature_by_erc1271(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, client_id = licence
    key = Account.create()
    developer_licence.addSigner(licence_id, key.address, sender=developer)
    account = _account(None, client_id)
    message = "127.0.0.1 wants you to sign in"
    signature = Account.sign_message(encode_defunct(text=message), key.key).signature
    assert account.isValidSignature(_personal_digest(message), signature) == MAGIC
    assert account.licence() == (developer_licence.address, licence_id)


def test_client_id_refuses_a_non_signer_a_removed_signer_and_garbage(
    developer_licence: Any, developer: Any, licence: tuple[int, str]
) -> None:
    licence_id, client_id = licence
    key = Account.create()
    account = _account(None, client_id)
    digest = _personal_digest("hello")
    signature = Account.sign_message(encode_defunct(text="hello"), key.key).signature
    assert account.isValidSignature(digest, signature) == INVALID
    developer_licence.addSigner(licence_id, key.address, sender=developer)
    assert account.isValidSignature(digest, signature) == MAGIC
    developer_licence.removeSigner(licence_id, key.address, sender=developer)
    assert account.isValidSignature(digest, signature) == INVALID
    assert account.isValidSignature(digest, b"\x01" * 10) == INVALID
