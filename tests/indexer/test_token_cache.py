"""`TokenCache` answers as `verify_token` does: a remembered token still expires, and only
good tokens are remembered, under their key and issuer."""

from __future__ import annotations

import pytest

from indexer.api.auth import TokenCache, issue_token, verify_token
from indexer.exceptions import InvalidToken, TokenExpired

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
ADDRESS = "0x" + "ab" * 20
NOW = 1_700_000_000.0


def test_a_remembered_token_still_expires() -> None:
    cache = TokenCache()
    token, claims = issue_token(ADDRESS, KEY, "api", NOW, 60)
    assert cache.verify(token, KEY, "api", NOW) == claims
    assert cache.verify(token, KEY, "api", NOW + 59) == verify_token(token, KEY, "api", NOW + 59)
    with pytest.raises(TokenExpired):
        cache.verify(token, KEY, "api", NOW + 60)


def test_a_remembered_token_is_refused_under_another_key_or_issuer() -> None:
    cache = TokenCache()
    token, _ = issue_token(ADDRESS, KEY, "api", NOW, 60)
    cache.verify(token, KEY, "api", NOW)
    with pytest.raises(InvalidToken):
        cache.verify(token, OTHER_KEY, "api", NOW)
    with pytest.raises(InvalidToken):
        cache.verify(token, KEY, "another-api", NOW)


def test_a_token_from_the_future_is_refused_every_time() -> None:
    cache = TokenCache()
    token, _ = issue_token(ADDRESS, KEY, "api", NOW + 3_600, 7_200)
    for _ in range(2):
        with pytest.raises(InvalidToken, match="future"):
            cache.verify(token, KEY, "api", NOW)


def test_the_oldest_tokens_go_first_past_the_size() -> None:
    cache = TokenCache(size=2)
    tokens = [issue_token(ADDRESS, KEY, "api", NOW + i, 60)[0] for i in range(3)]
    for token in tokens:
        cache.verify(token, KEY, "api", NOW + 10)
    assert [t for t, _, _ in cache._good] == tokens[1:]
