"""What the `dimo` commands share as API clients: times people write, the saved token, the
default API URL and one-line problems."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from protocol.clisession import (
    DEFAULT_API_URL,
    CliError,
    check_answer,
    load_token,
    parse_when,
    save_token,
)
from stack.config import StackSettings

NOW = 1_780_000_000_000


def test_the_default_api_url_is_the_indexer_of_make_run() -> None:
    assert StackSettings(_env_file=None).indexer_url == DEFAULT_API_URL  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1750000000000", 1_750_000_000_000),
        ("now", NOW),
        ("7d", NOW - 7 * 86_400_000),
        ("12h", NOW - 12 * 3_600_000),
        ("90m", NOW - 90 * 60_000),
        ("1.5w", NOW - int(1.5 * 604_800_000)),
        ("2026-03-02", 1_772_409_600_000),
        ("2026-03-02T08:00Z", 1_772_409_600_000 + 8 * 3_600_000),
        ("2026-03-02T10:00+02:00", 1_772_409_600_000 + 8 * 3_600_000),
    ],
)
def test_a_time_is_unix_ms_a_span_back_from_now_or_an_iso_date(text: str, expected: int) -> None:
    assert parse_when(text, NOW) == expected


def test_a_time_that_is_none_of_these_says_which_forms_work() -> None:
    with pytest.raises(CliError, match=r"'last tuesday' is not a time: give unix ms, a span"):
        parse_when("last tuesday", NOW)


def test_a_saved_token_serves_its_api_only_until_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIMO_TOKEN_FILE", str(tmp_path / "dimo" / "token.json"))
    path = save_token("http://127.0.0.1:8700/", "0xabc", "tok", expires_at=1_000.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "only its owner reads a token"
    assert load_token("http://127.0.0.1:8700", now=999.0) == "tok"
    assert load_token("http://127.0.0.1:8700", now=1_000.0) is None, "expired"
    assert load_token("http://127.0.0.1:9999", now=999.0) is None, "another API's"


def test_no_saved_token_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIMO_TOKEN_FILE", str(tmp_path / "absent.json"))
    assert load_token(DEFAULT_API_URL) is None


def test_a_401_problem_is_one_line_that_says_how_to_sign_in() -> None:
    reply = httpx.Response(
        401,
        json={"title": "Not signed in", "detail": "send a bearer token"},
        request=httpx.Request("GET", "http://x/apps/battery/1"),
    )
    with pytest.raises(CliError) as caught:
        check_answer(reply)
    message = str(caught.value)
    assert message == (
        "401 Not signed in: send a bearer token. Sign in with `dimo indexer login` "
        "(or set DIMO_API_TOKEN)."
    )
