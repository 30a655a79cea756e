"""Exact usage and per-caller errors through the proxy, against a fake llama.cpp's quirks."""

import asyncio

import httpx
import pytest

from inferlab import ServerThread
from inferlab.errors import APIStatusError
from inferlab.proxy.app import create_proxy_app
from inferlab.wire.client import AsyncClient
from inferlab.wire.server_profiles import LLAMA_CPP, detect

from .fake_upstream import TOO_LONG, make_fake_upstream, server_tokens

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def fake():
    app = make_fake_upstream()
    with ServerThread(app) as server:
        yield app, server


def _proxy(url):
    app = create_proxy_app(url, batch_wait_timeout_s=0.05, dispatch_when_idle=False)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://proxy/v1", timeout=30)


def _server_usage(prompts, max_tokens):
    prompt_tokens = sum(server_tokens(p, special=True) for p in prompts)
    completion_tokens = max_tokens * len(prompts)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


async def test_the_fake_is_detected_as_llama_cpp(fake):
    _, server = fake
    async with httpx.AsyncClient() as http:
        profile = await detect(http, server.base_url)
    assert (profile.name, profile.counts_lists, profile.metrics, profile.slots) == (
        LLAMA_CPP.name,
        False,
        False,
        4,
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_each_caller_gets_the_servers_own_count(fake, stream):
    """Callers of 1 to 3 prompts in one batch; the fake counts a list's first prompt only,
    but each caller gets the sum over its own prompts, as the server counts them."""
    _, server = fake
    callers = [["one"], ["two words", "three"], ["a b c", "d", "e f"]]
    body = {"max_tokens": 3, "stream": stream, "stream_options": {"include_usage": True}}
    if not stream:
        body.pop("stream_options")
    async with _proxy(server.base_url) as client:
        answers = await asyncio.gather(
            *(client.post("/completions", json={**body, "prompt": p}) for p in callers)
        )
    for prompts, answer in zip(callers, answers, strict=True):
        assert answer.status_code == 200
        if stream:
            chunks = [line for line in answer.text.splitlines() if '"usage"' in line]
            usage = httpx.Response(200, content=chunks[-1][6:]).json()["usage"]
        else:
            usage = answer.json()["usage"]
        assert usage == _server_usage(prompts, 3)


async def test_a_list_sent_alone_is_counted_in_full(fake):
    """llama.cpp's own usage for ["x", "y z"] is x's alone; the proxy gives both prompts'."""
    _, server = fake
    async with _proxy(server.base_url) as client:
        answer = await client.post("/completions", json={"prompt": ["x", "y z"], "max_tokens": 2})
    assert answer.json()["usage"] == _server_usage(["x", "y z"], 2)


async def test_one_bad_stream_gets_its_own_400_and_nobody_elses_answer_changes(fake):
    """Six streams, one over the context: llama answers 200, `data: null`, then an in-stream
    {"error": {"code": 400}}. The bad caller gets 400; the five others what they get alone."""
    _, server = fake
    prompts = [f"caller {i}" for i in range(5)] + [f"{TOO_LONG} caller"]
    body = {"max_tokens": 2, "stream": True}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as direct:
        alone = [
            (await direct.post("/completions", json={**body, "prompt": p})).text
            for p in prompts[:5]
        ]
    async with _proxy(server.base_url) as client:
        answers = await asyncio.gather(
            *(client.post("/completions", json={**body, "prompt": p}) for p in prompts)
        )
    assert [a.status_code for a in answers] == [200] * 5 + [400]
    for answer, want in zip(answers[:5], alone, strict=True):
        assert _texts(answer.text) == _texts(want)


def _texts(sse_text):
    """The text a stream carried, joined in order."""
    texts = []
    for line in sse_text.splitlines():
        if line.startswith("data: {"):
            chunk = httpx.Response(200, content=line[6:]).json()
            texts += [choice.get("text", "") for choice in chunk.get("choices") or []]
    return "".join(texts)


async def test_the_client_keeps_the_servers_code_from_inside_a_stream(fake):
    _, server = fake
    async with AsyncClient(server.base_url) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(f"{TOO_LONG}", max_tokens=2, stream=True)
    assert caught.value.status_code == 400
