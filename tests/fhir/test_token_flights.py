"""The token cache's flights: one token request per key, awaited from any thread or event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from fhir_cm.fhir._tokens import Flight, TokenCache, TokenKey

KEY = TokenKey("https://auth.example.org/token", "fhir-cm", "system/*.rs", "key-1", "0123456789abcdef")
HANG_GUARD = 30  # seconds: only so that a waiter never woken fails the test instead of hanging it


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _flight(claimed: str | Flight) -> Flight:
    assert isinstance(claimed, Flight)
    return claimed


def test_a_waiter_on_another_thread_and_loop_gets_the_token_the_leader_fetched() -> None:
    cache = TokenCache()
    lead, wait = _flight(cache.claim(KEY)), _flight(cache.claim(KEY))
    assert (lead.leader, wait.leader) == (True, False)

    with ThreadPoolExecutor(1) as pool:
        waited = pool.submit(asyncio.run, wait.landed())
        cache.land(lead, "token-1", 300, 60)
        assert waited.result(timeout=HANG_GUARD) == "token-1"

    assert cache.claim(KEY) == "token-1"


def test_a_token_is_fetched_anew_within_the_margin_before_it_expires() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.land(_flight(cache.claim(KEY)), "token-1", 300, 60)

    clock.now += 239
    assert cache.claim(KEY) == "token-1"
    clock.now += 1
    assert _flight(cache.claim(KEY)).leader


def test_a_refused_token_is_fetched_anew_once_and_a_newer_one_is_kept() -> None:
    cache = TokenCache()
    cache.land(_flight(cache.claim(KEY)), "token-1", 300, 60)

    again = _flight(cache.claim(KEY, refused="token-1"))  # the server answered 401 to it
    assert again.leader and not _flight(cache.claim(KEY, refused="token-1")).leader  # the others wait
    cache.land(again, "token-2", 300, 60)

    assert cache.claim(KEY, refused="token-1") == "token-2"  # a 401 to the old one, met late


async def test_a_leader_giving_up_leaves_its_waiters_to_ask_again() -> None:
    cache = TokenCache()
    lead, wait = _flight(cache.claim(KEY)), _flight(cache.claim(KEY))

    cache.abandon(lead, None)  # cancelled, its client closed

    assert await wait.landed() is None
    assert _flight(cache.claim(KEY)).leader


async def test_the_token_endpoint_refusing_is_told_to_every_waiter_without_asking_again() -> None:
    cache = TokenCache()
    lead, waits = _flight(cache.claim(KEY)), [_flight(cache.claim(KEY)) for _ in range(3)]

    cache.abandon(lead, PermissionError("invalid_client"))

    for wait in waits:
        with pytest.raises(PermissionError, match="invalid_client"):
            await wait.landed()


async def test_a_waiter_cancelled_leaves_the_token_request_to_the_others() -> None:
    cache = TokenCache()
    lead, first, second = _flight(cache.claim(KEY)), _flight(cache.claim(KEY)), _flight(cache.claim(KEY))
    cancelled = asyncio.ensure_future(first.landed())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    cache.land(lead, "token-1", 300, 60)

    assert await second.landed() == "token-1"


def test_keys_differ_by_what_a_token_is_good_for_and_hold_no_secret() -> None:
    other_scope = TokenKey(KEY.token_endpoint, KEY.client_id, "system/*.cruds", KEY.key_id, KEY.public_key)
    cache = TokenCache()
    cache.land(_flight(cache.claim(KEY)), "token-1", 300, 60)

    assert _flight(cache.claim(other_scope)).leader
    assert "token-1" not in repr(cache.claim(other_scope))


async def test_a_flight_whose_leader_never_reports_is_taken_over_after_its_limit() -> None:
    # A leader on an event loop closed without closing its flow would otherwise hold every client of
    # the process waiting for ever.
    cache = TokenCache(flight_limit=0)
    lost, wait = _flight(cache.claim(KEY)), _flight(cache.claim(KEY))

    assert wait.leader  # the lost one is past its limit: the next client leads anew
    assert await lost.landed() is None
    cache.land(lost, "token-late", 300, 60)  # the lost one reporting at last: its token is good
    assert cache.claim(KEY) == "token-late"
