"""A batched stream that fails after some of its callers already have text (#14).

The proxy sends a batch's 200 to a caller only with its first chunk, so when the upstream
fails mid-stream the callers split in two: those who got text are told inside their stream
(an error event, then [DONE]: never a silent truncation), and those who got nothing still get
a proper HTTP status (a 502, or their own answer if the error was a 4xx, for which each is
retried alone). Nobody hangs. The fake upstream streams the last prompt's tokens first."""

import asyncio
import json

import httpx
import pytest

from inferlab import ServerThread
from inferlab.proxy.app import BatchingProxy
from inferlab.proxy.settings import ProxySettings

from .fake_upstream import make_fake_upstream

pytestmark = pytest.mark.anyio

BODY = {"max_tokens": 3, "stream": True}


@pytest.fixture(scope="module")
def fake():
    app = make_fake_upstream()
    with ServerThread(app) as server:
        yield app, server


@pytest.fixture(autouse=True)
def _reset(fake):
    app, _ = fake
    app.state.mode, app.state.requests, app.state.break_stream = "llama", [], None


def _events(text: str) -> list[dict | str]:
    return [
        line[6:] if line == "data: [DONE]" else json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


async def _three_callers(server, break_stream, app):
    """Callers a, b, c in one batch; the stream breaks after the last prompt's first token.
    Returns {prompt: answer} (the batch's order is the order the callers arrived in)."""
    app.state.break_stream = break_stream
    proxy = BatchingProxy(
        ProxySettings(upstream=server.base_url, batch_wait_timeout_s=0.05, dispatch_when_idle=False)
    )
    transport = httpx.ASGITransport(app=proxy.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://p/v1", timeout=30) as c:
        answers = await asyncio.wait_for(
            asyncio.gather(*(c.post("/completions", json={**BODY, "prompt": p}) for p in "abc")),
            timeout=30,  # a hang fails here, not at the suite's timeout
        )
    app.state.break_stream = None
    (batch,) = [r["prompt"] for r in app.state.requests if isinstance(r["prompt"], list)]
    return batch, dict(zip("abc", answers, strict=True))


def _texts(answer: httpx.Response) -> str:
    return "".join(e["choices"][0]["text"] for e in _events(answer.text) if "choices" in e)


@pytest.mark.parametrize("how", [500, "drop"])
async def test_an_upstream_failure_mid_stream_reaches_every_caller(fake, how):
    app, server = fake
    batch, answers = await _three_callers(server, (1, how), app)
    *nothing_yet, started = batch
    # the caller who had its first token: the text, then an error event, then [DONE]
    answer = answers[started]
    assert answer.status_code == 200
    events = _events(answer.text)
    assert _texts(answer) == f" {started}_0"
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["code"] == 502 and error["message"]
    # those who had nothing: a status of their own, not a 200 that ends early
    for prompt in nothing_yet:
        assert answers[prompt].status_code == 502, answers[prompt].text
        assert answers[prompt].json()["error"]["message"]
    assert len(app.state.requests) == 1  # a 5xx or a dropped stream is not retried


async def test_a_4xx_mid_stream_retries_the_callers_who_got_nothing_alone(fake):
    app, server = fake
    batch, answers = await _three_callers(server, (1, 400), app)
    *nothing_yet, started = batch
    events = _events(answers[started].text)
    assert answers[started].status_code == 200 and _texts(answers[started]) == f" {started}_0"
    # not the caller's fault as far as anyone can tell: a 502, as for any broken batch
    assert events[-2]["error"]["code"] == 502 and events[-1] == "[DONE]"
    # the others were retried one by one (the fake breaks one stream only): answered
    for prompt in nothing_yet:
        assert answers[prompt].status_code == 200
        assert _texts(answers[prompt]) == f" {prompt}_0 {prompt}_1 {prompt}_2"
    assert sorted(r["prompt"] for r in app.state.requests[1:]) == sorted(nothing_yet)


async def test_a_caller_alone_keeps_the_upstreams_own_code_mid_stream(fake):
    app, server = fake
    app.state.break_stream = (1, 400)
    proxy = BatchingProxy(ProxySettings(upstream=server.base_url, batch_wait_timeout_s=0.0))
    transport = httpx.ASGITransport(app=proxy.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://p/v1", timeout=30) as c:
        answer = await c.post("/completions", json={**BODY, "prompt": "solo"})
    events = _events(answer.text)
    assert _texts(answer) == " solo_0"
    assert events[-2]["error"]["code"] == 400 and events[-1] == "[DONE]"
