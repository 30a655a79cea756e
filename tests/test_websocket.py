"""The WebSocket endpoint's contract, against real thread-hosted servers: chunks in order and
equal to SSE's, many requests on one socket, cancel stops the engine, bad frames get an error
frame and leave the socket open, a wrong key or the proxy closes with a reason; and (on one
connection alone) a request that fails mid-answer ends with its error frame."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import nullcontext

import pytest
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import connect

from inferlab import AsyncClient, ServerThread, WebSocketClient, create_app
from inferlab.errors import APIStatusError, ConnectionLostError
from inferlab.proxy.app import create_proxy_app
from inferlab.serve.websocket import Gauges, _Connection
from inferlab.wire.websocket import websocket_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def slow_server() -> Iterator[ServerThread]:
    """A server 10x faster than an H100: a 2,000-token answer takes ~2 s, time to cancel it."""
    with ServerThread(create_app(time_scale=0.1)) as server:
        yield server


async def raw_frames(url: str, *frames: str, replies: int) -> list[dict]:
    async with connect(websocket_url(url), proxy=None) as socket:
        for frame in frames:
            await socket.send(frame)
        return [json.loads(await socket.recv()) for _ in range(replies)]


async def test_a_websocket_stream_carries_the_same_chunks_as_sse_in_order(live_server):
    params = {"max_tokens": 12, "ignore_eos": True, "seed": 3}
    async with AsyncClient(live_server.base_url) as http:
        over_sse = await http.complete("Order matters", stream=True, **params)
    async with WebSocketClient(live_server.base_url) as ws:
        over_socket = await ws.complete("Order matters", **params)
    assert over_socket.text == over_sse.text
    assert over_socket.completion_tokens == 12
    times = over_socket.timing.token_times_s
    assert times == sorted(times) and len(times) == len(over_sse.timing.token_times_s)
    assert over_socket.timing.ttft_s <= over_socket.timing.e2e_latency_s


async def test_many_requests_share_one_socket_and_each_gets_its_own_answer(live_server):
    prompts = [f"Prompt number {i}" for i in range(12)]
    async with AsyncClient(live_server.base_url) as http:
        expected = [(await http.complete(p, max_tokens=6, stream=True)).text for p in prompts]
    async with WebSocketClient(live_server.base_url) as ws:
        answers = await asyncio.gather(*(ws.complete(p, max_tokens=6) for p in prompts))
        chat = await ws.chat("Hello there", max_tokens=4)
    assert [a.text for a in answers] == expected
    assert chat.text and chat.finish_reasons == ["length"]


async def test_frames_name_their_request_and_interleave(live_server):
    frames = [
        json.dumps({"type": "completions", "id": name, "body": {"prompt": name, "max_tokens": 3}})
        for name in ("a", "b")
    ]
    # each answer: 3 tokens + the usage chunk (none asked: so 3 chunks) + done = 4 frames
    replies = await raw_frames(live_server.base_url, *frames, replies=8)
    for name in ("a", "b"):
        mine = [frame["type"] for frame in replies if frame["id"] == name]
        assert mine[-1] == "done" and set(mine[:-1]) == {"chunk"}


async def test_cancel_stops_the_engine_mid_answer(slow_server):
    model = slow_server.app.state.service.model
    async with WebSocketClient(slow_server.base_url) as ws:
        first_token = asyncio.Event()
        call = asyncio.create_task(
            ws.complete(
                "Go on and on",
                max_tokens=2000,
                ignore_eos=True,
                request_id="long",
                on_text=lambda index, text: first_token.set(),
            )
        )
        await first_token.wait()
        await ws.cancel("long")
        answer = await call
        assert answer.finish_reasons == ["cancelled"]
        assert len(answer.timing.token_times_s) < 2000
        # the server sends `cancelled` after the engine dropped the sequence
        assert model.num_running == 0 and model.num_waiting == 0
        again = await ws.complete("Still here", max_tokens=3)
    assert again.finish_reasons == ["length"]


async def test_a_client_that_hangs_up_frees_its_sequences(slow_server):
    model = slow_server.app.state.service.model
    all_gone = threading.Event()  # set by the engine's own step loop: no polling
    ws = await WebSocketClient(slow_server.base_url).connect()
    started = asyncio.Event()
    call = asyncio.create_task(
        ws.complete("Talk", max_tokens=2000, ignore_eos=True, on_text=lambda i, t: started.set())
    )
    await started.wait()
    model.step_listeners.append(lambda step: model.num_running or all_gone.set())
    await ws._socket.close()  # hang up without a word, as a closed browser tab does
    with pytest.raises(ConnectionLostError):
        await call
    await ws.aclose()
    assert await asyncio.to_thread(all_gone.wait, 10)
    assert model.num_running == 0


async def test_cancelling_the_call_cancels_the_request(slow_server):
    model = slow_server.app.state.service.model
    async with WebSocketClient(slow_server.base_url) as ws:
        started = asyncio.Event()
        call = asyncio.create_task(
            ws.complete(
                "Stop me", max_tokens=2000, ignore_eos=True, on_text=lambda *_: started.set()
            )
        )
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        after = await ws.complete("Next", max_tokens=2)  # frames in order: cancel came first
        assert after.text
    assert model.num_waiting == 0


@pytest.mark.parametrize(
    ("frame", "status", "says"),
    [
        ("not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "JSON object"),
        ('{"type": "completions", "body": {}}', 400, "`id`"),
        ('{"type": "embeddings", "id": "e"}', 400, "`type` must be one of"),
        ('{"type": "completions", "id": "n"}', 400, "`body`"),
        ('{"type": "completions", "id": "m", "body": {"max_tokens": 3}}', 400, "prompt"),
        ('{"type": "completions", "id": "t", "body": {"prompt": "x", "max_tokens": 0}}', 400, ""),
        ('{"type": "completions", "id": "w", "body": {"prompt": "x", "model": "gpt-9"}}', 404, ""),
        ('{"type": "cancel", "id": "nobody"}', 404, "no request"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_open(
    live_server, frame, status, says
):
    good = json.dumps({"type": "completions", "id": "ok", "body": {"prompt": "x", "max_tokens": 2}})
    error, *rest = await raw_frames(live_server.base_url, frame, good, replies=3)
    assert error["type"] == "error" and error["status"] == status
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert says in error["error"]["message"]
    assert [f["id"] for f in rest] == ["ok", "ok"]  # the next request is served


async def test_a_duplicate_id_in_flight_is_refused(slow_server):
    body = {"prompt": "x", "max_tokens": 50, "ignore_eos": True}
    frame = json.dumps({"type": "completions", "id": "same", "body": body})
    replies = await raw_frames(slow_server.base_url, frame, frame, replies=2)
    errors = [f for f in replies if f["type"] == "error"]
    assert errors and errors[0]["error"]["param"] == "id"


async def test_the_client_raises_the_servers_error(live_server):
    async with WebSocketClient(live_server.base_url) as ws:
        with pytest.raises(APIStatusError) as caught:
            await ws.complete("x", max_tokens=-1)
    assert caught.value.status_code == 400 and caught.value.param is None


async def test_a_wrong_api_key_closes_with_policy_violation(keyed_server):
    with pytest.raises(ConnectionLostError, match="1008"):
        async with WebSocketClient(keyed_server.base_url, api_key="wrong") as ws:
            await ws.complete("x", max_tokens=2)
    async with WebSocketClient(keyed_server.base_url, api_key="secret-key") as ws:
        assert (await ws.complete("x", max_tokens=2)).text


async def test_the_batching_proxy_says_it_does_not_pass_websockets_through(live_server):
    with ServerThread(create_proxy_app(live_server.base_url)) as proxy:
        with pytest.raises(ConnectionLostError, match="does not pass WebSockets through"):
            async with WebSocketClient(proxy.base_url) as ws:
                await ws.complete("x", max_tokens=2)


class _RecordingSocket:
    """Just enough of a Starlette WebSocket for one connection to send frames into a list."""

    def __init__(self) -> None:
        self.frames: list[dict] = []

    async def send_text(self, text: str) -> None:
        self.frames.append(json.loads(text))


async def test_a_request_that_fails_mid_answer_ends_with_its_error_frame_alone():
    """An engine failure after the first chunk: SSE sends the error event and then [DONE]; the
    socket sends the chunk, then the error frame as the request's last frame, no `done` after
    it (each request ends with exactly one of done, cancelled or error)."""

    async def failing_stream(kind: str, body: dict) -> AsyncGenerator[str, None]:
        yield 'data: {"choices": [{"index": 0, "text": " Hi"}]}\n\n'
        yield 'data: {"error": {"message": "the accelerator failed", "type": "server_error"}}\n\n'
        yield "data: [DONE]\n\n"

    socket = _RecordingSocket()
    gauges = Gauges(CollectorRegistry())
    connection = _Connection(socket, failing_stream, nullcontext(), gauges)  # type: ignore[arg-type]
    await connection.run("r1", "completions", {"prompt": "Hi"})
    assert [frame["type"] for frame in socket.frames] == ["chunk", "error"]
    assert socket.frames[-1]["error"]["message"] == "the accelerator failed"
