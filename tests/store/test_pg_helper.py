"""The PostgreSQL test helper: a missing server is a plain skip on a laptop and a failure in CI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import pg

NOWHERE = "postgresql+psycopg://nobody@127.0.0.1:1/test"


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(pg.ENV_URL, NOWHERE)
    pg.postgres_admin_url.cache_clear()
    yield
    pg.postgres_admin_url.cache_clear()  # the next test looks for the real server again


def test_an_unreachable_server_is_a_plain_skip(no_server: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"PostgreSQL not reachable at 127\.0\.0\.1:1: nobody: "):
        pg.require_postgres()


def test_an_unreachable_server_fails_in_ci(no_server: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set, so this is a failure"):
        pg.require_postgres()
