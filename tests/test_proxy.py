"""The batching proxy, in front of the embedded server and of a misbehaving fake upstream."""

import asyncio
import json

import httpx
import openai
import pytest

from inferlab import ServerThread, count_tokens
from inferlab.proxy._capacity import QueueBound
from inferlab.proxy.app import BatchingProxy, create_proxy_app
from inferlab.proxy.settings import ProxySettings
from inferlab.wire.upstream import Call

from .fake_upstream import make_fake_upstream, release_stall

pytestmark = pytest.mark.anyio


def proxy_client(upstream_url, **options):
    """A BatchingProxy in-process (no sockets) and a client for it."""
    proxy = BatchingProxy(ProxySettings(upstream=upstream_url, **options))
    transport = httpx.ASGITransport(app=proxy.app)
    return proxy, httpx.AsyncClient(transport=transport, base_url="http://proxy/v1", timeout=30)


@pytest.fixture(scope="module")
def fake():
    app = make_fake_upstream()
    with ServerThread(app) as server:
        yield app, server


@pytest.fixture(autouse=True)
def _reset_fake(request):
    if "fake" in request.fixturenames:
        app, _ = request.getfixturevalue("fake")
        app.state.mode, app.state.requests, app.state.release = "llama", [], None
        app.state.arrived.clear()


def _sse(text):
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def test_callers_share_one_upstream_call_and_each_gets_its_own_answer(live_server):
    """Six callers, batch size 8: the direct answers and the proxied ones are identical."""
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as direct:
        expected = [
            (
                await direct.post(
                    "/completions",
                    json={"prompt": f"Question {i}", "max_tokens": 4, "ignore_eos": True},
                )
            ).json()
            for i in range(6)
        ]
    app, client = proxy_client(
        live_server.base_url, max_batch_size=8, batch_wait_timeout_s=0.05, dispatch_when_idle=False
    )
    async with client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/completions",
                    json={"prompt": f"Question {i}", "max_tokens": 4, "ignore_eos": True},
                )
                for i in range(6)
            )
        )
    for answer, want in zip(answers, expected, strict=True):
        assert answer.json()["choices"] == want["choices"]
        assert answer.json()["usage"] == want["usage"]
    assert app.completions.stats.batch_sizes == {6: 1}


async def test_list_prompts_and_n_are_split_back_by_index(fake):
    """A: 1 prompt, B: 2 prompts, n=2: upstream sees 3 prompts, choices 0..5; B gets 0..3."""
    app, server = fake
    _, client = proxy_client(server.base_url, batch_wait_timeout_s=0.05, dispatch_when_idle=False)
    async with client:
        a, b = await asyncio.gather(
            client.post("/completions", json={"prompt": "a", "n": 2, "max_tokens": 2}),
            client.post("/completions", json={"prompt": ["b", "c"], "n": 2, "max_tokens": 2}),
        )
    assert app.state.requests == [{"prompt": ["a", "b", "c"], "n": 2, "max_tokens": 2}]
    assert [c["index"] for c in b.json()["choices"]] == [0, 1, 2, 3]
    # the fake's own count (its /tokenize adds a BOS), not the course's
    assert a.json()["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


async def test_requests_with_different_options_never_share_a_batch(fake):
    app, server = fake
    _, client = proxy_client(server.base_url, batch_wait_timeout_s=0.05, dispatch_when_idle=False)
    async with client:
        short, long = await asyncio.gather(
            client.post("/completions", json={"prompt": "a", "max_tokens": 1}),
            client.post("/completions", json={"prompt": "b", "max_tokens": 3}),
        )
    assert sorted(len(r["prompt"]) for r in app.state.requests) == [1, 1]
    assert (short.json()["choices"][0]["text"], long.json()["choices"][0]["text"]) == (
        " a_0",
        " b_0 b_1 b_2",
    )


async def test_llama_cpp_streams_are_split_and_usage_is_counted_per_caller(fake):
    """llama.cpp interleaves prompts, opens with `data: null` and reports a list's usage for its
    first prompt only; each prompt's final chunk has that prompt's own usage, which B gets."""
    _, server = fake
    _, client = proxy_client(server.base_url, batch_wait_timeout_s=0.05, dispatch_when_idle=False)
    body = {"max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}
    async with client:
        one, two = await asyncio.gather(
            client.post("/completions", json={**body, "prompt": "one"}),
            client.post("/completions", json={**body, "prompt": ["two words", "three"]}),
        )
    chunks = _sse(two.text)
    texts: dict[int, str] = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert texts == {0: " two_words_0 two_words_1 two_words_2", 1: " three_0 three_1 three_2"}
    # the server's count: a BOS on each prompt, 3 tokens each (not the course's count_tokens)
    assert chunks[-1]["usage"]["prompt_tokens"] == count_tokens("two words three") + 2
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert chunks[-1]["id"] == chunks[0]["id"]
    assert two.text.rstrip().endswith("data: [DONE]") and "data: null" not in one.text


async def test_upstreams_without_list_prompts_get_one_request_per_caller(fake):
    app, server = fake
    app.state.mode = "no_lists"
    _, client = proxy_client(
        server.base_url, list_prompts=False, batch_wait_timeout_s=0.05, dispatch_when_idle=False
    )
    async with client:
        answers = await asyncio.gather(
            *(client.post("/completions", json={"prompt": p, "max_tokens": 1}) for p in "xyz")
        )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(isinstance(r["prompt"], str) for r in app.state.requests)


async def test_one_bad_request_does_not_fail_the_others_in_its_batch(fake):
    _, server = fake
    _, client = proxy_client(server.base_url, batch_wait_timeout_s=0.05, dispatch_when_idle=False)
    async with client:
        good, bad = await asyncio.gather(
            client.post("/completions", json={"prompt": "fine", "max_tokens": 1}),
            client.post("/completions", json={"prompt": "poison", "max_tokens": 1}),
        )
    assert (good.status_code, bad.status_code) == (200, 400)
    assert bad.json()["error"]["message"] == "poisoned prompt"


async def test_an_upstream_failure_is_a_502_with_its_message(fake):
    app, server = fake
    app.state.mode = "fail"
    _, client = proxy_client(server.base_url)
    async with client:
        answer = await client.post("/completions", json={"prompt": "x"})
    assert answer.status_code == 502 and "GPU fell over" in answer.json()["error"]["message"]


async def test_an_unreachable_upstream_is_a_502():
    _, client = proxy_client("http://127.0.0.1:9/v1")
    async with client:
        answer = await client.post("/completions", json={"prompt": "x"})
    assert answer.status_code == 502 and "could not be reached" in answer.json()["error"]["message"]


async def test_a_stalled_upstream_is_a_504_at_the_deadline_and_overload_a_429(fake):
    """One request stalls upstream; the queue holds one more; a third is refused at once."""
    app, server = fake
    app.state.mode = "stall"
    _, client = proxy_client(
        server.base_url,
        request_timeout_s=0.5,
        max_queue_size=1,
        max_concurrent_batches=1,
        max_batch_size=1,
    )
    try:
        async with client:
            stalled = asyncio.ensure_future(client.post("/completions", json={"prompt": "a"}))
            assert await asyncio.to_thread(app.state.arrived.wait, 10)  # "a" is upstream now
            b, c = await asyncio.gather(
                client.post("/completions", json={"prompt": "b"}),
                client.post("/completions", json={"prompt": "c"}),
            )
            assert sorted([b.status_code, c.status_code]) == [429, 504]
            refused = b if b.status_code == 429 else c
            assert int(refused.headers["retry-after"]) >= 1
            assert (await stalled).status_code == 504
    finally:
        release_stall(app)


async def test_chat_goes_through_one_by_one(live_server):
    _, client = proxy_client(live_server.base_url)
    async with client:
        plain = await client.post(
            "/chat/completions",
            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
        )
        streamed = await client.post(
            "/chat/completions",
            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True},
        )
    assert plain.json()["choices"][0]["message"]["content"]
    assert streamed.text.rstrip().endswith("data: [DONE]") and len(_sse(streamed.text)) >= 3


async def test_settings_change_at_run_time(fake):
    _, server = fake
    app, client = proxy_client(server.base_url)
    async with client:
        changed = await client.put(
            "http://proxy/admin/batching",
            json={"max_batch_size": 32, "batch_wait_timeout_s": 0.002},
        )
        refused = await client.put("http://proxy/admin/batching", json={"max_batch_size": 0})
    assert changed.json()["max_batch_size"] == 32
    assert app.completions.settings.batch_wait_timeout_s == 0.002
    assert app.settings.max_batch_size == 32  # the typed settings follow, the refusal did not
    assert refused.status_code == 400 and "max_batch_size" in refused.json()["error"]["message"]


def test_the_openai_client_works_through_the_proxy(live_server):
    with ServerThread(create_proxy_app(live_server.base_url)) as proxy:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0)
        completion = client.completions.create(
            model="h100-llama3-8b", prompt=["a", "b"], max_tokens=3
        )
        stream = client.completions.create(
            model="h100-llama3-8b",
            prompt="c",
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        chat = client.chat.completions.create(
            model="h100-llama3-8b", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        models = client.models.list()
    assert [c.index for c in completion.choices] == [0, 1]
    assert chunks[-1].usage.completion_tokens == 3 and chat.choices[0].message.content
    assert models.data[0].id == "h100-llama3-8b"


def test_callers_that_hang_up_are_dropped_not_sent(fake):
    """One request stalls upstream; 20 more queue behind it and their callers give up. The
    proxy must drop them: once the stall ends, the upstream has seen only the first."""
    import threading

    app, server = fake
    app.state.mode = "stall"
    proxy = BatchingProxy(
        ProxySettings(upstream=server.base_url, max_batch_size=1, max_concurrent_batches=1)
    )
    proxy_app, batcher = proxy.app, proxy.completions
    all_gone = threading.Event()
    answered = batcher._on_answered

    def counting(pending, future):  # a test hook: learn when the 20 cancellations landed
        answered(pending, future)
        if batcher.stats.cancelled >= 20:
            all_gone.set()

    batcher._on_answered = counting

    async def impatient(url, i):
        async with httpx.AsyncClient(timeout=0.3) as client:
            try:
                await client.post(f"{url}/completions", json={"prompt": f"q{i}"})
            except httpx.TimeoutException:
                pass  # the caller gives up and hangs up

    try:
        with ServerThread(proxy_app) as proxy:
            first = threading.Thread(
                target=lambda: httpx.post(
                    f"{proxy.base_url}/completions", json={"prompt": "first"}, timeout=30
                )
            )
            first.start()
            assert app.state.arrived.wait(10)

            async def crowd():
                await asyncio.gather(*(impatient(proxy.base_url, i) for i in range(20)))

            asyncio.run(crowd())
            assert all_gone.wait(10), f"only {batcher.stats.cancelled} of 20 were dropped"
            release_stall(app)
            first.join(10)
        assert [body["prompt"] for body in app.state.requests] == ["first"]
    finally:
        release_stall(app)


async def test_non_finite_numbers_are_a_400_not_a_502(fake):
    """Python reads `Infinity` and `NaN` as JSON, but they cannot be sent on: found by the
    fuzz test, first in a passed-through field, then inside chat messages."""
    _, client = proxy_client(fake[1].base_url)
    async with client:
        completion = await client.post(
            "/completions",
            content=b'{"prompt": "x", "logit_bias": {"1": Infinity}}',
            headers={"content-type": "application/json"},
        )
        chat = await client.post(
            "/chat/completions",
            content=b'{"messages": [{"role": "user", "content": NaN}]}',
            headers={"content-type": "application/json"},
        )
    assert completion.status_code == chat.status_code == 400
    assert "finite" in completion.json()["error"]["message"]
    assert fake[0].state.requests == []


def test_the_queue_bound_follows_the_measured_completion_rate():
    """27 req/s finished with a queue standing, 300 s timeout: 27 × 300 × 0.5 = 4,050 may wait.
    Idle windows only show a lower bound (they never lower it); a stalled upstream (nothing
    finished, a queue standing) drops it to the floor; it never passes the ceiling."""
    bound = QueueBound(request_timeout_s=300, floor=32, start=256, ceiling=10_000)
    assert bound.limit == 256  # nothing measured yet
    bound.observe(0.0, completed=0, queued=0)
    bound.observe(1.0, completed=1, queued=0)  # idle: 1 req/s is a lower bound only
    assert bound.limit == 256
    bound.observe(2.0, completed=28, queued=10)
    assert (bound.rate_per_s, bound.limit) == (27.0, 4050)
    bound.observe(3.0, completed=29, queued=0)  # idle again: the estimate stays
    assert bound.limit == 4050
    for second in range(4, 40):
        bound.observe(float(second), completed=29, queued=50)  # stalled, queue standing
    assert bound.limit == 32
    bound.observe(40.0, completed=1029, queued=50)  # 1,000 req/s: capped
    assert bound.limit == 10_000


async def test_by_default_the_queue_is_bounded_and_overload_is_a_429(fake):
    """Without --max-queue-size the proxy does not queue 10,000 requests in front of a stalled
    upstream: past its measured bound (256 before any measurement) the next caller gets a 429."""
    app, server = fake
    app.state.mode = "stall"
    proxy, client = proxy_client(server.base_url, request_timeout_s=5)
    limit = proxy.live_settings()["max_queue_size"]
    assert proxy.live_settings()["max_queue_size_measured"] and limit == 256
    held = []
    try:
        async with client:
            for i in range(limit + 1):  # the first goes upstream and stalls; the rest queue
                call = Call({"prompt": f"q{i}", "max_tokens": 2}, [f"q{i}"], 1, False, False)
                held.append(proxy.completions.submit_nowait(call, timeout_s=5))
                await asyncio.sleep(0)  # a turn of the loop: the first goes alone when idle
            assert proxy.completions.pending == limit
            refused = await client.post("/completions", json={"prompt": "one too many"})
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["type"] == "rate_limit_error"
    finally:
        release_stall(app)
        for future in held:
            future.cancel()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/completions", {"prompt": ["ok", "\ud800"]}),
        ("/completions", {"prompt": "ok", "top_k": {"\udfff": 1}}),  # passed-through fields too
        ("/chat/completions", {"messages": [{"role": "user", "content": "\ud800"}]}),
    ],
)
async def test_text_that_is_not_unicode_is_a_400_and_its_batch_mates_are_served(
    live_server, path, body
):
    """Refused before it joins a batch, so the callers it would have ridden with get answers."""
    app, client = proxy_client(live_server.base_url, max_batch_size=8, batch_wait_timeout_s=0.05)
    innocent = {"prompt": "Hi", "max_tokens": 2, "ignore_eos": True}
    headers = {"content-type": "application/json"}
    async with client:
        refused, *served = await asyncio.gather(
            client.post(path, content=json.dumps(body), headers=headers),
            *(client.post("/completions", json=innocent) for _ in range(7)),
        )
    assert refused.status_code == 400, refused.text
    assert "not valid Unicode" in refused.json()["error"]["message"]
    assert [response.status_code for response in served] == [200] * 7
    await app.upstream.aclose()  # ASGITransport runs no lifespan to close it
