"""The top-level `dimo login` signs in as `dimo indexer login` does, and `dimo certify serve`
reads the deployment record that `--deployment` names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from stack.cli import app as dimo_app
from tests.indexer.test_api_basics import Clock, Served, clock, engine, make_app
from tests.indexer.test_cli_login import DEV_2, token_file

__all__ = ["clock", "engine", "token_file"]  # fixtures

runner = CliRunner()


@pytest.fixture
def api_url(engine: Engine, clock: Clock) -> Iterator[str]:
    with Served(make_app(engine, clock)) as served:
        yield served.url


def test_dimo_login_saves_a_token_the_api_accepts(api_url: str, token_file: Path) -> None:
    result = runner.invoke(dimo_app, ["login", "--dev", "2", "--api-url", api_url])
    assert result.exit_code == 0, result.output
    assert f"signed in as {DEV_2}" in result.output
    saved = json.loads(token_file.read_text())
    me = httpx.get(
        f"{api_url}/auth/me", headers={"Authorization": f"Bearer {saved['access_token']}"}
    )
    assert me.json()["address"] == DEV_2


def test_dimo_help_lists_login_among_the_commands() -> None:
    result = runner.invoke(dimo_app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "login" in result.output
    assert "Sign in with Ethereum" in result.output


def test_dimo_login_without_an_account_is_one_line_naming_both_choices(
    api_url: str, token_file: Path
) -> None:
    result = runner.invoke(dimo_app, ["login", "--api-url", api_url])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "--keystore" in result.output
    assert "--dev" in result.output
    assert not token_file.exists()


def test_certify_serve_reads_the_deployment_that_the_option_names(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "31337.json"
    result = runner.invoke(dimo_app, ["certify", "serve", "--deployment", str(missing)])
    assert result.exit_code == 2, result.output
    assert str(missing) in result.output.replace("\n", "")
