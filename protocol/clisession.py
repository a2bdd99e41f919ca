"""What the `dimo` commands share as API clients: the API's default URL, the token `dimo indexer
login` saves, time windows people write (`7d`, ISO dates, unix ms) and one-line errors."""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

import httpx

__all__ = [
    "DEFAULT_API_URL",
    "DEV_MNEMONIC",
    "LOCAL_CHAIN_ID",
    "CliError",
    "api_errors",
    "auth_headers",
    "check_answer",
    "load_token",
    "one_line_errors",
    "parse_when",
    "save_token",
    "siwe_message",
    "token_file",
]

#: The indexer API of `make run` (DIMO_STACK_INDEXER_PORT's default, 8700).
DEFAULT_API_URL: Final = "http://127.0.0.1:8700"
#: The mnemonic of anvil's public dev accounts (local chains only; never hold value with them).
DEV_MNEMONIC: Final = "test test test test test test test test test test test junk"
#: Chain id of the local anvil chain, the only one `--dev` accounts may sign in to.
LOCAL_CHAIN_ID: Final = 31337
#: Seconds in each unit of a relative time (`7d`).
_UNITS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_RELATIVE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A command failed for a reason the user can fix; the message is one line with the fix."""


def token_file() -> Path:
    """Where `dimo indexer login` keeps its token: DIMO_TOKEN_FILE, else
    `$XDG_CONFIG_HOME/dimo/token.json` (`~/.config/dimo/token.json`)."""
    if os.environ.get("DIMO_TOKEN_FILE"):
        return Path(os.environ["DIMO_TOKEN_FILE"])
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "dimo" / "token.json"


def save_token(api_url: str, address: str, token: str, expires_at: float) -> Path:
    """Saves a sign-in token for `api_url` (readable by its owner only); returns the file."""
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    body = {
        "api_url": api_url.rstrip("/"),
        "address": address,
        "access_token": token,
        "expires_at": expires_at,
    }
    tmp.write_text(json.dumps(body))
    tmp.replace(path)
    return path


def load_token(api_url: str, now: float | None = None) -> str | None:
    """The saved token for `api_url`, unless there is none, it is for another API or expired."""
    try:
        saved = json.loads(token_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("api_url") != api_url.rstrip("/"):
        return None
    if float(saved.get("expires_at", 0)) <= (time.time() if now is None else now):
        return None
    token = saved.get("access_token")
    return token if isinstance(token, str) and token else None


def auth_headers(token: str | None) -> dict[str, str]:
    """The Authorization header for `token`; none at all without a token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def parse_when(text: str, now_ms: int | None = None) -> int:
    """A time as unix ms, from unix ms, a span back from now (`7d`, `12h`, `90m`, `2w`), `now`,
    or an ISO 8601 date or date-time (UTC unless it says otherwise).

    Raises:
        CliError: none of these.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    if value == "now":
        return now
    relative = _RELATIVE.fullmatch(value)
    if relative is not None:
        return now - int(float(relative[1]) * _UNITS[relative[2]] * 1000)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{text!r} is not a time: give unix ms, a span back from now (7d, 12h, 30m), "
            "now, or an ISO date (2026-03-02, 2026-03-02T08:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def check_answer(reply: httpx.Response) -> None:
    """Turns an API problem answer into a one-line CliError with what to do.

    Raises:
        CliError: the answer is not a success.
    """
    if reply.is_success:
        return
    try:
        problem = reply.json()
        detail = f"{problem.get('title')}: {problem.get('detail')}"
    except (ValueError, AttributeError):
        detail = reply.text[:300].strip() or reply.reason_phrase
    fix = ""
    if reply.status_code == 401:
        fix = " Sign in with `dimo indexer login` (or set DIMO_API_TOKEN)."
    elif reply.status_code == 403:
        fix = " Your account's on-chain rights do not cover this."
    elif reply.status_code == 429:
        fix = " Wait a minute and try again."
    elif reply.status_code >= 500:
        fix = " The server logged it; see its log."
    raise CliError(f"{reply.status_code} {detail}.{fix}".replace("..", "."))


@contextmanager
def api_errors(api_url: str) -> Iterator[None]:
    """Turns connection failures to the API at `api_url` into one-line CliErrors."""
    try:
        yield
    except httpx.TimeoutException:
        raise CliError(
            f"the API at {api_url} did not answer in time; is it busy or stuck? Its log says"
        ) from None
    except httpx.TransportError as exc:
        raise CliError(
            f"cannot reach the API at {api_url} ({type(exc).__name__}): start the platform "
            "with `make run`, or point --api-url (DIMO_API_URL) at a running indexer"
        ) from None


def one_line_errors(
    fail: Callable[[str], BaseException],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a command so that a CliError or a failed connection ends it with
    `fail(message)`: one line, no traceback."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except CliError as exc:
                raise fail(str(exc)) from None
            except httpx.TransportError as exc:
                raise fail(
                    f"a connection failed ({type(exc).__name__}: {exc}); is the platform "
                    "running (`make run`), and are --api-url and --rpc-url right?"
                ) from None

        return run

    return decorate


def siwe_message(nonce: dict[str, object], address: str, statement: str) -> str:
    """The EIP-4361 message to sign for `GET /auth/nonce`'s answer `nonce`."""
    return (
        f"{nonce['domain']} wants you to sign in with your Ethereum account:\n"
        f"{address}\n\n{statement}\n\n"
        f"URI: {nonce['uri']}\nVersion: 1\nChain ID: {nonce['chain_id']}\n"
        f"Nonce: {nonce['nonce']}\nIssued At: {nonce['issued_at']}"
    )
