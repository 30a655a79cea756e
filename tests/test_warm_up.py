"""Warm-ups resend a request the server dropped before answering (#14 item 6), and nothing else.

The fake (tests/dropping_upstream.py) is a bare TCP server, so the drop is a real one: it reads
the request and closes the socket without a byte of answer (httpx: "Server disconnected without
sending a response"), as llama-server did to one of 05's 32 concurrent warm-ups about one run
in six."""

import pytest

from inferlab.errors import ConnectionLostError, NoResponseError
from inferlab.wire import AsyncClient, warm_up
from inferlab.wire import warmup as warm_up_module

from .dropping_upstream import DroppingServer

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.setattr(warm_up_module, "FIRST_PAUSE_S", 0.0)


async def test_a_request_dropped_before_any_answer_is_a_no_response_error():
    fake = DroppingServer(drops=1)
    async with fake as url, AsyncClient(url, model="fake") as client:
        with pytest.raises(NoResponseError):
            await client.complete("x", max_tokens=1)
        assert (await client.complete("x", max_tokens=1)).text == " x!"


async def test_a_warm_up_resends_what_was_dropped_unanswered():
    fake = DroppingServer(drops=2)
    async with fake as url, AsyncClient(url, model="fake") as client:
        assert await warm_up(client, count=3) == 2
    assert fake.requests == 5  # three warm-ups, and the two dropped ones again


async def test_a_warm_up_that_keeps_being_dropped_says_what_to_check():
    fake = DroppingServer(drops=100)
    async with fake as url, AsyncClient(url, model="fake") as client:
        with pytest.raises(NoResponseError, match="inferlab doctor --base-url"):
            await warm_up(client, attempts=3)
    assert fake.requests == 3


async def test_a_connection_that_broke_mid_answer_is_not_resent():
    """Headers came back: the server saw the request, so this is no longer a free retry."""
    fake = DroppingServer(drops=1, how="half")
    async with fake as url, AsyncClient(url, model="fake") as client:
        with pytest.raises(ConnectionLostError) as caught:
            await warm_up(client)
    assert not isinstance(caught.value, NoResponseError)
    assert fake.requests == 1
