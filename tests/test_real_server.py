"""Against a real model server (vLLM in `make test-real`): the openai client, and the proxy's
exactness: every caller's text and usage through the proxy equal its direct request's.

    INFERLAB_REAL_BASE_URL=http://127.0.0.1:8765/v1 .venv/bin/pytest tests/test_real_server.py

Skipped unless INFERLAB_REAL_BASE_URL is set, so the normal suite needs no real server.
"""

import asyncio
import os

import httpx
import openai
import pytest

from inferlab import ServerThread
from inferlab.proxy.app import create_proxy_app
from inferlab.wire.resend import resend_if_dropped
from inferlab.wire.server_profiles import detect

REAL_URL = os.environ.get("INFERLAB_REAL_BASE_URL", "").rstrip("/")
pytestmark = [
    pytest.mark.real_server,
    pytest.mark.skipif(not REAL_URL, reason="INFERLAB_REAL_BASE_URL is not set"),
]

# Greedy decoding, so a prompt's answer is the same alone and in a batch.
OPTIONS = {"max_tokens": 6, "temperature": 0, "ignore_eos": True}
CALLERS = [[f"Question {i}"] + [f"and {j} more" for j in range(i % 3)] for i in range(12)]


@pytest.fixture(scope="module")
def model():
    return httpx.get(REAL_URL + "/models", timeout=30).json()["data"][0]["id"]


@pytest.fixture(scope="module")
def proxy_url():
    app = create_proxy_app(REAL_URL, max_batch_size=16, batch_wait_timeout_s=0.2)
    with ServerThread(app) as server:
        yield server.base_url


def test_the_openai_client_works_unchanged(model):
    client = openai.OpenAI(base_url=REAL_URL, api_key="unused", max_retries=0)
    completion = client.completions.create(model=model, prompt=["One", "Two"], max_tokens=3)
    assert sorted(choice.index for choice in completion.choices) == [0, 1]
    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=4
    )
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    stream = client.completions.create(
        model=model, prompt="Hi", max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    assert [chunk for chunk in stream][-1].usage.completion_tokens == 4


def test_the_server_is_profiled(model):
    async def profile():
        async with httpx.AsyncClient(timeout=30) as http:
            return await detect(http, REAL_URL)

    # test.sh files run this against vLLM, scripts/real_llamacpp/test.sh against llama.cpp
    assert asyncio.run(profile()).name == os.environ.get("INFERLAB_REAL_SERVER", "vllm")


async def _answer(client, model, prompts, stream):
    body = {**OPTIONS, "model": model, "prompt": prompts if len(prompts) > 1 else prompts[0]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    # llama-server drops some of many connections opened at once before answering: resent
    response = await resend_if_dropped(
        lambda extensions: client.post("/completions", json=body, extensions=extensions)
    )
    assert response.status_code == 200, response.text
    if not stream:
        data = response.json()
        texts = [c["text"] for c in sorted(data["choices"], key=lambda c: c["index"])]
        return texts, _counts(data["usage"])
    texts: dict[int, str] = {}
    usage = None
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            chunk = httpx.Response(200, content=line[6:]).json()
            for choice in chunk.get("choices") or []:
                texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
            usage = chunk.get("usage") or usage
    return [texts[i] for i in sorted(texts)], _counts(usage)


def _counts_lists() -> bool:
    async def profile():
        async with httpx.AsyncClient(timeout=30) as http:
            return await detect(http, REAL_URL)

    return asyncio.run(profile()).counts_lists


async def _summed_alone(model, stream, direct):
    """Each caller's direct texts, with the usage of its prompts sent one by one and added."""
    async with httpx.AsyncClient(base_url=REAL_URL, timeout=120) as client:
        summed = []
        for prompts, (texts, _) in zip(CALLERS, direct, strict=True):
            alone = [(await _answer(client, model, [p], stream))[1] for p in prompts]
            summed.append((texts, {key: sum(u[key] for u in alone) for key in alone[0]}))
        return summed


def _counts(usage):
    return {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_every_usage_and_text_through_the_proxy_equals_the_direct_request(model, proxy_url, stream):
    async def run(url, concurrently):
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            if not concurrently:
                return [await _answer(client, model, p, stream) for p in CALLERS]
            return await asyncio.gather(*(_answer(client, model, p, stream) for p in CALLERS))

    direct = asyncio.run(run(REAL_URL, concurrently=False))
    if not _counts_lists():  # llama.cpp: a list's own usage is its first prompt's, so the
        direct = asyncio.run(_summed_alone(model, stream, direct))  # truth is each alone, summed
    proxied = asyncio.run(run(proxy_url, concurrently=True))
    usages_equal = sum(d[1] == p[1] for d, p in zip(direct, proxied, strict=True))
    texts_equal = sum(d[0] == p[0] for d, p in zip(direct, proxied, strict=True))
    print(f"{usages_equal} of {len(CALLERS)} usages, {texts_equal} texts equal ({stream=})")
    assert usages_equal == len(CALLERS), [
        (d[1], p[1]) for d, p in zip(direct, proxied, strict=True)
    ]
    assert texts_equal == len(CALLERS)


def test_a_bad_request_in_a_batch_gets_its_own_4xx(model, proxy_url):
    async def run():
        async with httpx.AsyncClient(base_url=proxy_url, timeout=120) as client:
            body = {**OPTIONS, "model": model}
            good = [
                client.post("/completions", json={**body, "prompt": f"ok {i}"}) for i in range(3)
            ]
            bad = client.post("/completions", json={**body, "prompt": "word " * 600})
            return await asyncio.gather(*good, bad)

    answers = asyncio.run(run())
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert 400 <= answers[3].status_code < 500
