"""A request the server dropped before answering a byte is sent once more (#14 item 6).

Against a bare TCP server whose drops are real (tests/dropping_upstream.py): dropped once, the
caller gets its answer and the proxy's metrics count one resend; dropped every time, each
caller gets a 502 in OpenAI's error shape and nobody hangs; dropped after a byte of the answer
(a plain head, a stream's first chunk), nothing is sent again."""

import asyncio

import httpx
import pytest

from inferlab.proxy.app import BatchingProxy
from inferlab.proxy.settings import ProxySettings
from inferlab.wire._http1 import Http1Transport
from inferlab.wire.resend import DroppedBeforeResponse, dropped_unanswered, resend_if_dropped

from .dropping_upstream import DroppingServer

pytestmark = pytest.mark.anyio

BODY = {"model": "fake", "max_tokens": 1}


async def _through_proxy(url: str, bodies: list[dict]) -> tuple[list[httpx.Response], str]:
    """The callers' answers through a proxy in front of `url`, and the proxy's /metrics."""
    settings = ProxySettings(upstream=url, batch_wait_timeout_s=0.05, dispatch_when_idle=False)
    proxy = BatchingProxy(settings)
    transport = httpx.ASGITransport(app=proxy.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://p", timeout=30) as c:
        answers = await asyncio.wait_for(  # a hang fails here, not at the suite's timeout
            asyncio.gather(*(c.post("/v1/" + b.pop("path"), json=b) for b in bodies)), 30
        )
        metrics = (await c.get("/metrics")).text
    await proxy.upstream.aclose()
    return list(answers), metrics


def _resends(metrics: str) -> float:
    (line,) = [m for m in metrics.splitlines() if m.startswith("inferlab_proxy:upstream_resends")]
    return float(line.split()[-1])


def _completion(prompt: str, **extra: object) -> dict:
    return {"path": "completions", **BODY, "prompt": prompt, **extra}


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_batch_dropped_once_unanswered_is_sent_again_and_every_caller_answered(how):
    fake = DroppingServer(drops=1, how=how)
    async with fake as url:
        answers, metrics = await _through_proxy(url, [_completion(p) for p in "abc"])
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["choices"][0]["text"] for a in answers] == [" a!", " b!", " c!"]
    assert fake.requests == 2  # one batch, dropped, then sent once more
    assert _resends(metrics) == 1


async def test_a_stream_dropped_before_its_head_is_sent_again():
    fake = DroppingServer(drops=1)
    async with fake as url:
        (answer,), metrics = await _through_proxy(url, [_completion("s", stream=True)])
    assert answer.status_code == 200 and " s!" in answer.text and "[DONE]" in answer.text
    assert fake.requests == 2 and _resends(metrics) == 1


async def test_a_chat_dropped_once_is_sent_again():
    fake = DroppingServer(drops=1)
    chat = {"path": "chat/completions", **BODY, "messages": [{"role": "user", "content": "hi"}]}
    async with fake as url:
        (answer,), metrics = await _through_proxy(url, [chat])
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "hi"
    assert _resends(metrics) == 1


async def test_an_upstream_that_always_drops_gives_each_caller_a_clear_502():
    fake = DroppingServer(drops=100)
    async with fake as url:
        answers, metrics = await _through_proxy(url, [_completion(p) for p in "abc"])
    for answer in answers:
        assert answer.status_code == 502
        error = answer.json()["error"]
        assert "without answering, twice" in error["message"]
        assert {"message", "type", "param", "code"} <= error.keys()
    assert fake.requests == 2  # once, and once more: never a third time
    assert _resends(metrics) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_nothing_is_sent_again_once_a_byte_of_the_answer_arrived(stream):
    fake = DroppingServer(drops=1, how="half")
    async with fake as url:
        (answer,), metrics = await _through_proxy(url, [_completion("x", stream=stream)])
    assert fake.requests == 1 and _resends(metrics) == 0
    if stream:  # its 200 went out with the first chunk: the error comes inside the stream
        assert " half" in answer.text and '"code":502' in answer.text.replace(" ", "")
    else:
        assert answer.status_code == 502


async def test_the_helper_also_knows_httpx_s_own_transport():
    """tests/test_real_server.py sends its direct requests with httpx's default transport:
    httpcore says "Server disconnected without sending a response", and that is resent."""
    fake = DroppingServer(drops=1)
    async with fake as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await resend_if_dropped(
            lambda extensions: client.post("/completions", json=BODY, extensions=extensions)
        )
    assert response.json()["choices"][0]["text"] == " !"
    assert fake.requests == 2


async def test_a_drop_is_told_apart_from_a_broken_answer():
    assert dropped_unanswered(DroppedBeforeResponse("gone"))
    assert dropped_unanswered(
        httpx.RemoteProtocolError("Server disconnected without sending a response.")
    )
    assert not dropped_unanswered(httpx.RemoteProtocolError("incomplete chunked read"))
    assert not dropped_unanswered(httpx.ReadTimeout("slow"))
    fake = DroppingServer(drops=1, how="half")
    async with fake as url, httpx.AsyncClient(transport=Http1Transport()) as client:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await client.post(url + "/completions", json=BODY)
    assert not dropped_unanswered(caught.value)
