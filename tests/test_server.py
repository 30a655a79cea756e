import asyncio
import json

import httpx
import pytest

from inferlab import SimulatedModel, count_tokens, create_app
from inferlab.engine.clock import VirtualClock
from inferlab.serve.faults import Faults

pytestmark = pytest.mark.anyio


def _sse_payloads(body: str) -> list:
    lines = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def _completion_scope() -> dict:
    """The ASGI scope of a POST /v1/completions, for tests that drive the app's messages
    themselves (to hang up at a chosen moment, which an HTTP client cannot do on cue)."""
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/completions",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
        "http_version": "1.1",
        "scheme": "http",
        "server": ("t", 80),
        "client": ("c", 1),
        "root_path": "",
    }


async def test_a_string_prompt_gets_one_choice_and_usage(app_client):
    response = await app_client.post(
        "/completions", json={"prompt": "Hello there", "max_tokens": 5, "ignore_eos": True}
    )
    body = response.json()
    assert response.status_code == 200 and body["object"] == "text_completion"
    (choice,) = body["choices"]
    assert (choice["index"], choice["finish_reason"]) == (0, "length")
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}


async def test_a_list_of_prompts_gets_one_choice_per_prompt_and_summed_usage(app_client):
    """Prompts of 1, 2 and 3 tokens with 4 tokens each: usage 6 prompt + 12 completion."""
    prompts = ["One", "Two words", "Three more words"]
    response = await app_client.post(
        "/completions", json={"prompt": prompts, "max_tokens": 4, "ignore_eos": True}
    )
    body = response.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 12, "total_tokens": 18}
    single = await app_client.post(
        "/completions", json={"prompt": "Two words", "max_tokens": 4, "ignore_eos": True}
    )
    assert body["choices"][1]["text"] == single.json()["choices"][0]["text"]


async def test_n_samples_are_numbered_prompt_times_n_plus_sample(app_client):
    response = await app_client.post(
        "/completions", json={"prompt": ["A", "B"], "n": 2, "max_tokens": 3, "temperature": 0.8}
    )
    choices = response.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    assert choices[0]["text"] != choices[1]["text"]  # samples of one prompt differ
    assert response.json()["usage"]["prompt_tokens"] == 2  # each prompt counted once


async def test_usage_counts_exactly_the_tokens_of_the_text(app_client):
    """An answer that ends by itself: its usage is the token count of its text, no more."""
    response = await app_client.post("/completions", json={"prompt": "Hi", "max_tokens": 500})
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == count_tokens(body["choices"][0]["text"])


async def test_echo_puts_the_prompt_in_front(app_client):
    response = await app_client.post(
        "/completions", json={"prompt": "Echo", "echo": True, "max_tokens": 2}
    )
    assert response.json()["choices"][0]["text"].startswith("Echo ")


async def test_chat_answers_as_the_assistant(app_client):
    response = await app_client.post(
        "/chat/completions",
        json={
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            ],
            "max_completion_tokens": 6,
        },
    )
    body = response.json()
    message = body["choices"][0]["message"]
    assert body["object"] == "chat.completion" and message["role"] == "assistant"
    assert message["content"] and not message["content"].startswith(" ")
    assert body["usage"]["completion_tokens"] <= 6


async def test_streamed_completion_chunks_end_with_usage_and_done(app_client):
    response = await app_client.post(
        "/completions",
        json={
            "prompt": ["A", "B"],
            "max_tokens": 3,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = _sse_payloads(response.text)
    *token_chunks, usage_chunk = chunks
    assert len(token_chunks) == 6 and {c["choices"][0]["index"] for c in token_chunks} == {0, 1}
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 6


async def test_streamed_chat_opens_with_the_role_and_closes_with_a_reason(app_client):
    response = await app_client.post(
        "/chat/completions",
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True},
    )
    chunks = _sse_payloads(response.text)
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in {"length", "stop"}


async def test_models_health_and_metrics(app_client):
    models = (await app_client.get("/models")).json()
    assert models["data"][0]["id"] == "h100-llama3-8b"
    assert (await app_client.get("http://inferlab.test/health")).json() == {"status": "ok"}
    await app_client.post(
        "/completions", json={"prompt": "Hi", "max_tokens": 3, "ignore_eos": True}
    )
    metrics = (await app_client.get("http://inferlab.test/metrics")).text
    labels = 'engine="0",model_name="h100-llama3-8b"'
    assert f"vllm:generation_tokens_total{{{labels}}} 3.0" in metrics
    success = 'engine="0",finished_reason="length",model_name="h100-llama3-8b"'
    assert f"vllm:request_success_total{{{success}}} 1.0" in metrics
    assert f"vllm:num_requests_running{{{labels}}} 0.0" in metrics
    assert "inferlab:step_duration_seconds_count 3.0" in metrics


LONG_PROMPT = "word " * 9000

BAD_REQUESTS = [
    # (what, path, body or raw bytes, status, param)
    ("malformed JSON", "/completions", b'{"prompt": "Hi",', 400, None),
    ("not an object", "/completions", [1, 2], 400, None),
    ("missing prompt", "/completions", {"max_tokens": 5}, 400, "prompt"),
    ("prompt of wrong type", "/completions", {"prompt": 42}, 400, "prompt"),
    ("token-id prompt", "/completions", {"prompt": [1, 2, 3]}, 400, "prompt"),
    ("empty prompt list", "/completions", {"prompt": []}, 400, "prompt"),
    ("max_tokens as text", "/completions", {"prompt": "Hi", "max_tokens": "5"}, 400, "max_tokens"),
    ("negative max_tokens", "/completions", {"prompt": "Hi", "max_tokens": -1}, 400, "max_tokens"),
    ("huge max_tokens", "/completions", {"prompt": "Hi", "max_tokens": 10**9}, 400, None),
    ("prompt over the context", "/completions", {"prompt": LONG_PROMPT}, 400, None),
    (
        "temperature out of range",
        "/completions",
        {"prompt": "Hi", "temperature": 5},
        400,
        "temperature",
    ),
    ("five stop strings", "/completions", {"prompt": "Hi", "stop": list("abcde")}, 400, "stop"),
    ("unknown model", "/completions", {"prompt": "Hi", "model": "gpt-9"}, 404, "model"),
    ("no messages", "/chat/completions", {"messages": []}, 400, "messages"),
    (
        "unknown role",
        "/chat/completions",
        {"messages": [{"role": "wizard", "content": "x"}]},
        400,
        "messages.0.role",
    ),
    (
        "image content",
        "/chat/completions",
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ]
        },
        400,
        None,
    ),
]


@pytest.mark.parametrize(
    ("what", "path", "body", "status", "param"),
    BAD_REQUESTS,
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_bad_input_gets_a_clear_openai_error(app_client, what, path, body, status, param):
    if isinstance(body, bytes):
        response = await app_client.post(
            path, content=body, headers={"content-type": "application/json"}
        )
    else:
        response = await app_client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


async def test_a_body_over_the_limit_is_refused_with_413(virtual_model):
    """Refused whether the client declares its length or sends chunks without one."""
    app = create_app(virtual_model, max_body_bytes=1000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post("/v1/completions", json={"prompt": "x" * 2000})
        chunked = await c.post("/v1/completions", content=_chunks(b'{"prompt": "', b"x" * 2000))
    assert response.status_code == 413 and "1000 bytes" in response.json()["error"]["message"]
    assert chunked.status_code == 413


async def test_the_api_key_guards_v1_but_not_health(virtual_model):
    app = create_app(virtual_model, api_key="sesame")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        refused = await c.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        allowed = await c.get("/v1/models", headers={"Authorization": "Bearer sesame"})
        health = await c.get("/health")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert allowed.status_code == 200 and health.status_code == 200


async def test_a_client_that_hangs_up_mid_stream_frees_its_sequence():
    """Drive the ASGI app by hand: the client disconnects right after the first chunk."""
    model = SimulatedModel(time_scale=1.0)  # slow enough that the answer cannot finish first
    app = create_app(model)
    first_chunk = asyncio.Event()
    body = json.dumps(
        {"prompt": "Hi", "max_tokens": 2000, "ignore_eos": True, "stream": True}
    ).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            first_chunk.set()

    await app(_completion_scope(), receive, send)
    assert first_chunk.is_set()
    assert model.num_running == 0 and model.num_waiting == 0
    await model.aclose()


async def test_one_request_at_a_time_queues_requests_but_batches_prompts_within_one():
    """Static batching, one request at a time: two single-prompt requests take two rounds,
    one request with both prompts takes one. 3 tokens each: 3 steps of the flat cost."""
    model = SimulatedModel(batching="static", clock=VirtualClock())
    app = create_app(model, max_concurrent_requests=1)
    body = {"max_tokens": 3, "ignore_eos": True}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await asyncio.gather(
            *(c.post("/v1/completions", json={**body, "prompt": p}) for p in ("a", "b"))
        )
        separate_s = model.clock.now()
        await c.post("/v1/completions", json={**body, "prompt": ["a", "b"]})
        together_s = model.clock.now() - separate_s
    assert separate_s == pytest.approx(2 * together_s, rel=0.01)


async def test_faults_fail_and_stall_a_share_of_requests_on_purpose(virtual_model):
    """fail_rate=1: every /v1 request is a 500 at once; /health is never touched."""
    app = create_app(virtual_model, faults=Faults(fail_rate=1.0, seed=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        failed = await c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2})
        healthy = await c.get("/health")
        changed = await c.put("/admin/faults", json={"fail_rate": 0.0})
        served = await c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2})
        refused = await c.put("/admin/faults", json={"fail_rate": 2})
    assert failed.status_code == 500 and "injected fault" in failed.json()["error"]["message"]
    assert healthy.status_code == 200 and changed.json()["fail_rate"] == 0.0
    assert served.status_code == 200 and refused.status_code == 400


async def test_put_faults_echoes_every_setting_it_applied(virtual_model):
    """PUT /admin/faults answers with every fault setting in force, not only some: one that
    changes all eight gets all eight back, and a later PUT that changes one keeps the rest."""
    changes = {
        "fail_rate": 0.1,
        "stall_rate": 0.2,
        "stall_s": 0.3,
        "cold_start_s": 0.4,
        "jitter_s": 0.05,
        "break_rate": 0.6,
        "break_after_chunks": 3,
        "seed": 11,
    }
    app = create_app(virtual_model)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        echoed = (await c.put("/admin/faults", json=changes)).json()
        later = (await c.put("/admin/faults", json={"fail_rate": 0.0})).json()
    assert echoed == changes
    assert later == {**changes, "fail_rate": 0.0}


def test_a_cold_start_holds_everyone_until_the_first_request_has_warmed_the_server_up():
    """Going cold at any time; the next request (at t=10) starts a 2 s warm-up, so a request
    at 11.5 waits 0.5 s and one at 12.5 not at all. Warm stays warm until told otherwise."""
    faults = Faults()
    assert faults.warm_up_left_s(5.0) == 0.0
    faults.update(cold_start_s=2.0)
    assert [faults.warm_up_left_s(t) for t in (10.0, 11.5, 12.5, 30.0)] == [2.0, 0.5, 0.0, 0.0]
    faults.update(fail_rate=0.1)  # other changes leave a warm server warm
    assert faults.warm_up_left_s(40.0) == 0.0
    faults.update(cold_start_s=0.0)
    assert faults.warm_up_left_s(50.0) == 0.0
    with pytest.raises(ValueError):
        faults.update(cold_start_s=-1)


async def test_every_answer_carries_the_engines_own_timing(app_client, virtual_model):
    """On virtual time a lone request's account is exact: the API server's work, no queue, the
    prefill step, then one decode step per token after the first, as simulate() predicts.

    A prompt of 32 tokens and 16 generated: TTFT = 10 ms + 32 x 7.5 µs of API server, the
    prefill step of 32 tokens and one token's delivery; the end is TTFT + 15 decode steps. The
    body says so, the TGI-style headers (inference: after the API server) say so in ms.
    """
    from inferlab import simulate
    from inferlab.engine.timing import EngineTiming

    prompt = " ".join(["word"] * 32)
    body = {"prompt": prompt, "max_tokens": 16, "ignore_eos": True}
    response = await app_client.post("/completions", json=body)
    engine = EngineTiming.from_json(response.json()["engine_timing"])
    (predicted,) = simulate([(0.0, count_tokens(prompt), 16)], virtual_model.profile)
    assert engine is not None and engine.output_tokens == 16
    assert engine.queue_s == 0.0
    assert engine.api_server_s == pytest.approx(predicted.queued_s) == pytest.approx(0.01024)
    assert engine.ttft_s == pytest.approx(predicted.first_token_s)
    assert engine.e2e_latency_s == pytest.approx(predicted.finished_s)
    assert float(response.headers["x-queue-time"]) == 0.0
    assert float(response.headers["x-inference-time"]) == pytest.approx(
        (predicted.finished_s - predicted.queued_s) * 1000, abs=1e-3
    )
    streamed = await app_client.post("/completions", json={**body, "stream": True})
    chunks = _sse_payloads(streamed.text)
    assert "engine_timing" in chunks[-1] and all("engine_timing" not in c for c in chunks[:-1])
    assert chunks[-1]["engine_timing"]["e2e_latency_s"] == pytest.approx(predicted.finished_s)


async def test_the_client_reads_the_engines_timing_beside_its_own(virtual_model):
    from inferlab import AsyncClient

    transport = httpx.ASGITransport(app=create_app(virtual_model))
    http = httpx.AsyncClient(transport=transport)
    async with AsyncClient("http://inferlab.test/v1", http=http) as client:
        answer = await client.complete("Hello there", max_tokens=8, ignore_eos=True)
    assert answer.timing.engine is not None
    assert answer.timing.engine.output_tokens == answer.completion_tokens == 8


@pytest.mark.parametrize(
    "change",
    [
        {"fail_rate": 2},
        {"fail_rate": "0.5"},
        {"fail_rate": True},
        {"stall_s": float("inf")},
        {"cold_start_s": float("nan")},
        {"stall_rate": 0.5, "seed": "x"},  # one bad setting refuses the good one beside it
        {"stall_rate": 0.5, "colour": 1},
    ],
)
async def test_a_refused_fault_setting_changes_nothing(virtual_model, change):
    """PUT /admin/faults is all or nothing: a 400 leaves every setting as it was, and the
    server keeps serving. Infinity travels as JSON's non-standard token, as Python writes it."""
    app = create_app(virtual_model)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        before = (await c.put("/admin/faults", json={})).json()
        refused = await c.put(
            "/admin/faults",
            content=json.dumps(change),
            headers={"content-type": "application/json"},
        )
        after = (await c.put("/admin/faults", json={})).json()
        served = await c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2})
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
    assert after == before and served.status_code == 200


_LONE_SURROGATE_BODIES = [
    ("/v1/completions", json.dumps({"prompt": "\ud800"}).encode()),  # JSON's \ud800 escape
    ("/v1/completions", b'{"prompt": ["ok", "\xed\xa0\x80"]}'),  # a surrogate's UTF-8 bytes
    ("/v1/completions", json.dumps({"prompt": "ok", "stop": ["\udfff"]}).encode()),
    ("/v1/completions", json.dumps({"prompt": "ok", "model": "\ud800"}).encode()),
    ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "\ud800"}]})),
]


@pytest.mark.parametrize(("path", "body"), _LONE_SURROGATE_BODIES)
async def test_text_that_is_not_unicode_is_a_400_and_hurts_no_one_else(virtual_model, path, body):
    """A lone surrogate is valid JSON but no text: refused at the edge in OpenAI's shape,
    while 20 innocent requests sent alongside it are all served."""
    app = create_app(virtual_model)
    headers = {"content-type": "application/json"}
    innocent = {"prompt": "Hi", "max_tokens": 4, "ignore_eos": True}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        refused, *served = await asyncio.gather(
            c.post(path, content=body, headers=headers),
            *(c.post("/v1/completions", json=innocent) for _ in range(20)),
        )
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and "not valid Unicode" in error["message"]
    assert [response.status_code for response in served] == [200] * 20


async def test_an_engine_failure_is_a_500_in_openai_shape():
    """Not the client's fault, so a server_error; still JSON an OpenAI client can read."""

    class BrokenClock(VirtualClock):
        async def sleep_until(self, when_s):
            raise OSError("the accelerator fell off the bus")

    app = create_app(SimulatedModel(clock=BrokenClock()))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2})
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"


async def test_a_client_that_hangs_up_on_a_plain_request_cancels_its_sequences():
    """No stream, 64 prompts x n=4 x 4,000 tokens: the client hangs up once the engine has
    started, and the engine drops all 256 sequences instead of generating a million tokens."""
    model = SimulatedModel(clock=VirtualClock())
    app = create_app(model, max_tokens_per_request=10**7)
    started = asyncio.Event()
    model.step_listeners.append(lambda step: started.set())
    body = {"prompt": [f"p{i}" for i in range(64)], "n": 4, "max_tokens": 4000}
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(_completion_scope(), receive, send)
    assert sent[0]["status"] == 499
    assert model.num_running == 0 and model.num_waiting == 0
    assert model.scheduler.steps_done < 4000
    await model.aclose()


async def test_a_request_for_too_much_work_is_a_400_before_any_is_done(virtual_model):
    """1,024 prompts x n=16 x 64 tokens = 1,048,576 tokens: past the 262,144 a request may
    ask for. The same prompts with 16 tokens (262,144) are within it."""
    app = create_app(virtual_model)
    prompts = [f"p{i}" for i in range(1024)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        refused = await c.post(
            "/v1/completions", json={"prompt": prompts, "n": 16, "max_tokens": 64}
        )
        steps_for_refused = virtual_model.scheduler.steps_done
        chat = await c.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Hi"}], "n": 16, "max_tokens": 8000},
        )
    assert refused.status_code == 400 and "1,048,576 tokens" in refused.json()["error"]["message"]
    assert refused.json()["error"]["param"] == "max_tokens"
    assert steps_for_refused == 0
    assert chat.status_code == 200
    small = create_app(virtual_model, max_tokens_per_request=10)
    transport = httpx.ASGITransport(app=small)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        over = await c.post("/v1/completions", json={"prompt": ["a", "b"], "max_tokens": 6})
    assert over.status_code == 400


async def test_with_a_key_everything_but_health_wants_it_and_faults_wait_for_it(virtual_model):
    """/metrics, /openapi.json and /docs are behind the key (/health is not, as in vLLM); an
    unauthenticated request is refused before any fault touches it, so it neither stalls nor
    consumes a seeded draw: with every request failing on purpose, it still gets its 401."""
    app = create_app(virtual_model, api_key="sesame", faults=Faults(fail_rate=1.0, seed=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/health")).status_code == 200
        body = {"prompt": "Hi", "max_tokens": 2}
        anonymous = await client.post("/v1/completions", json=body)
        keyed = await client.post(
            "/v1/completions", json=body, headers={"Authorization": "Bearer sesame"}
        )
        described = await client.get("/openapi.json", headers={"Authorization": "Bearer sesame"})
    assert anonymous.status_code == 401  # not the injected 500
    assert keyed.status_code == 500 and "injected fault" in keyed.json()["error"]["message"]
    assert "/v1/completions" in described.json()["paths"]


def test_the_server_key_can_come_from_vllms_variable(monkeypatch):
    from inferlab.cli._hosting import key_from_environment
    from inferlab.cli.main import build_parser
    from inferlab.serve.settings import ServerSettings

    monkeypatch.setenv("VLLM_API_KEY", "from-the-environment")
    args = build_parser().parse_args(["serve"])
    assert ServerSettings.from_arguments(args, **key_from_environment()).api_key == (
        "from-the-environment"
    )
