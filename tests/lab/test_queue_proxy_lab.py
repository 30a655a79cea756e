"""Autograder for lab 05: does your QueueProxy keep the three promises the naive one broke?

Each test drives QueueProxy against a fake upstream (httpx.MockTransport) that records every
request and answers each prompt with "answer to <prompt>". A proxy that hangs fails within a few
seconds with a message saying which promise it broke, instead of stalling the run.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

pytestmark = pytest.mark.anyio

ANSWER_WITHIN_S = 5.0


class FakeUpstream:
    def __init__(self, *, fail: bool = False):
        self.bodies: list[dict] = []
        self.fail = fail

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.fail:
            return httpx.Response(500, json={"error": {"message": "the GPU fell over"}})
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [
            {"index": i, "text": f"answer to {p}", "finish_reason": "length"}
            for i, p in enumerate(prompts)
        ]
        return httpx.Response(200, json={"object": "text_completion", "choices": choices})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


async def ask_all(proxy, prompts: list[str], promise: str) -> list:
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(proxy.complete(p) for p in prompts), return_exceptions=True),
            ANSWER_WITHIN_S,
        )
    except asyncio.TimeoutError:
        pytest.fail(f"{len(prompts)} callers waited {ANSWER_WITHIN_S} s with no answer. {promise}")
    finally:
        await proxy.aclose()


def todo_or(result: object) -> object:
    if isinstance(result, NotImplementedError):
        pytest.fail(f"Not built yet: {result}")
    return result


async def test_each_caller_gets_the_answer_to_its_own_prompt(queue_proxy):
    upstream = FakeUpstream()
    proxy = queue_proxy.QueueProxy(
        "http://fake/v1", batch_size=8, flush_interval_s=0.01, http=upstream.client()
    )
    prompts = [f"question {i}" for i in range(5)]
    answers = [
        todo_or(a)
        for a in await ask_all(
            proxy, prompts, "Does complete() await a future that _send() resolves?"
        )
    ]
    expected = [f"answer to {p}" for p in prompts]
    assert answers == expected, (
        f"Expected each caller to get the answer to its own prompt:\n  {expected}\n"
        f"but they got:\n  {answers}\n"
        "Send the prompts as a list (prompt=[...]); the server returns one choice per prompt, "
        "and choice['index'] says which. Joining them into one string gives everyone the same "
        "answer."
    )
    sent = upstream.bodies[0]["prompt"]
    assert isinstance(sent, list), (
        f"The upstream got prompt={sent!r}; it should be a list with one entry per caller."
    )


async def test_a_full_batch_goes_at_once_as_one_request(queue_proxy):
    upstream = FakeUpstream()
    proxy = queue_proxy.QueueProxy(
        "http://fake/v1", batch_size=4, flush_interval_s=60, http=upstream.client()
    )
    await ask_all(
        proxy,
        [f"q{i}" for i in range(4)],
        "With batch_size=4, four callers make a full batch: send it without waiting "
        "for the flush interval (60 s here).",
    )
    assert [len(body["prompt"]) for body in upstream.bodies] == [4], (
        f"Expected one upstream request with 4 prompts, got "
        f"{[body['prompt'] for body in upstream.bodies]}."
    )


async def test_a_lone_request_goes_once_the_flush_interval_has_passed(queue_proxy):
    upstream = FakeUpstream()
    proxy = queue_proxy.QueueProxy(
        "http://fake/v1", batch_size=8, flush_interval_s=0.05, http=upstream.client()
    )
    (answer,) = await ask_all(
        proxy,
        ["alone"],
        "A lone request must go once it has waited flush_interval_s, "
        "even though its batch never fills.",
    )
    assert todo_or(answer) == "answer to alone"
    assert len(upstream.bodies) == 1


async def test_more_callers_than_a_batch_are_all_answered_in_batches(queue_proxy):
    upstream = FakeUpstream()
    proxy = queue_proxy.QueueProxy(
        "http://fake/v1", batch_size=4, flush_interval_s=0.01, http=upstream.client()
    )
    answers = await ask_all(
        proxy,
        [f"q{i}" for i in range(10)],
        "Ten callers with batch_size=4: three batches, everyone answered.",
    )
    assert [todo_or(a) for a in answers] == [f"answer to q{i}" for i in range(10)]
    sizes = [len(body["prompt"]) for body in upstream.bodies]
    assert max(sizes) <= 4, f"Batches of {sizes}: none may exceed batch_size=4."


async def test_an_upstream_failure_reaches_every_caller(queue_proxy):
    upstream = FakeUpstream(fail=True)
    proxy = queue_proxy.QueueProxy(
        "http://fake/v1", batch_size=8, flush_interval_s=0.01, http=upstream.client()
    )
    results = await ask_all(
        proxy,
        ["a", "b", "c"],
        "When the upstream fails, every caller must get the exception: "
        "call future.set_exception() for each one.",
    )
    for result in results:
        todo_or(result)
        assert isinstance(result, Exception), (
            f"The upstream answered 500, yet a caller got {result!r} instead of an exception."
        )
