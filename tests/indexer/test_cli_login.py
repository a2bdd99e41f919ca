"""`dimo indexer login` signs in with Ethereum and saves a token that `dimo apps` then uses;
connection, sign-in and input errors are one line with the fix, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from sqlalchemy import Engine
from typer.testing import CliRunner

from indexer.apps.cli import app as apps_app
from indexer.cli import app as indexer_app
from oracle.cli import app as oracle_app
from rewards.cli import app as rewards_app
from tests.indexer.test_api_basics import Clock, Served, clock, engine, make_app
from tests.indexer.test_cli import free_port

__all__ = ["clock", "engine"]  # fixtures

DEV_2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # anvil dev account 2
runner = CliRunner()


@pytest.fixture
def api_url(engine: Engine, clock: Clock) -> Iterator[str]:
    with Served(make_app(engine, clock)) as served:
        yield served.url


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "token.json"
    monkeypatch.setenv("DIMO_TOKEN_FILE", str(path))
    monkeypatch.delenv("DIMO_API_TOKEN", raising=False)
    return path


def one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert "Traceback" not in output
    assert len(lines) == 1, output
    assert lines[0].startswith("error "), output
    return lines[0]


def test_login_with_a_dev_account_saves_a_token_the_api_accepts(
    api_url: str, token_file: Path
) -> None:
    result = runner.invoke(indexer_app, ["login", "--dev", "2", "--api-url", api_url])
    assert result.exit_code == 0, result.output
    assert f"signed in as {DEV_2}" in result.output
    saved = json.loads(token_file.read_text())
    assert saved["api_url"] == api_url
    me = httpx.get(
        f"{api_url}/auth/me", headers={"Authorization": f"Bearer {saved['access_token']}"}
    )
    assert me.json()["address"] == DEV_2


def test_print_token_puts_the_bare_token_alone_on_standard_output(
    api_url: str, token_file: Path
) -> None:
    """`TOKEN=$(dimo indexer login --dev 2 --print-token)`, as the README's first screen does."""
    result = runner.invoke(
        indexer_app, ["login", "--dev", "2", "--api-url", api_url, "--print-token"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(token_file.read_text())
    assert result.stdout.strip() == saved["access_token"]


def test_login_with_a_keystore_signs_in_as_its_account(
    api_url: str, token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account.create()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "hunter2", iterations=2)))
    monkeypatch.setenv("DIMO_KEYSTORE_PASSWORD", "hunter2")
    result = runner.invoke(
        indexer_app, ["login", "--keystore", str(keystore), "--api-url", api_url]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(token_file.read_text())["address"] == account.address

    monkeypatch.setenv("DIMO_KEYSTORE_PASSWORD", "wrong")
    result = runner.invoke(
        indexer_app, ["login", "--keystore", str(keystore), "--api-url", api_url]
    )
    assert result.exit_code == 2
    assert "not a keystore, or the password is wrong" in one_line_error(result.output)


def test_the_apps_use_the_saved_token_and_a_relative_window(api_url: str, token_file: Path) -> None:
    args = ["battery", "--vehicle", "1", "--since", "7d", "--until", "now", "--api-url", api_url]
    signed_out = runner.invoke(apps_app, args)
    assert signed_out.exit_code == 2
    assert "dimo indexer login" in one_line_error(signed_out.output)

    assert runner.invoke(indexer_app, ["login", "--dev", "2", "--api-url", api_url]).exit_code == 0
    signed_in = runner.invoke(apps_app, args)
    assert signed_in.exit_code == 2
    line = one_line_error(signed_in.output)
    assert line.startswith("error 404 Unknown vehicle"), "signed in: past the 401, to the lookup"


def test_an_unreachable_api_is_one_line_that_names_make_run(token_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for app, args in (
        (apps_app, ["finance", "--vehicle", "1", "--since", "2026-03-01", "--end", "now"]),
        (indexer_app, ["login", "--dev", "2"]),
    ):
        result = runner.invoke(app, [*args, "--api-url", url])
        assert result.exit_code == 2
        line = one_line_error(result.output)
        assert f"cannot reach the API at {url}" in line
        assert "make run" in line


def test_a_window_that_is_not_a_time_is_a_usage_error_naming_the_forms() -> None:
    result = runner.invoke(
        apps_app, ["battery", "--vehicle", "1", "--since", "lately", "--end", "1"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "span back from now" in result.output


def test_rewards_verify_reads_the_deployment_it_is_given(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "31337.json"
    result = runner.invoke(rewards_app, ["verify", "--epoch", "0", "--deployment", str(missing)])
    assert result.exit_code == 1
    assert f"no deployment record at {missing}" in result.output.replace("\n", "")


def test_the_oracle_signer_reads_the_deployment_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNER_KEY", "0x" + "11" * 32)
    missing = tmp_path / "elsewhere" / "31337.json"
    args = ["signer", "--key-env", "SIGNER_KEY", "--port", "1", "--deployment", str(missing)]
    result = runner.invoke(oracle_app, args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"no deployment record at {missing}" in result.output.replace("\n", "")
