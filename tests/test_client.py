import json
import socket

import httpx
import pytest

from inferlab import APIStatusError, AsyncClient, Client, ServerUnavailableError
from inferlab.errors import ResponseTimeoutError

pytestmark = pytest.mark.anyio


def _sse(*events: object) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


def _mock(body: bytes, status: int = 200, content_type: str = "text/event-stream"):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return httpx.Client(transport=httpx.MockTransport(handler))


LLAMA_CPP_LIST_STREAM = _sse(
    "null",  # llama.cpp opens streams of several prompts with these
    {"choices": [{"index": 1, "text": " b1"}]},
    {"choices": [{"index": 0, "text": " a1"}]},
    ": a comment line",
    {"choices": [{"index": 0, "text": " a2", "finish_reason": "length"}]},
    {
        "choices": [{"index": 1, "text": "", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2},
    },  # only the first prompt's usage
    "[DONE]",
)


def test_the_stream_reader_tolerates_llama_cpp_quirks():
    client = Client("http://llama.test/v1", model="m", http=_mock(LLAMA_CPP_LIST_STREAM))
    answer = client.complete(["a", "b"], max_tokens=2, stream=True)
    assert answer.texts == [" a1 a2", " b1"]
    assert answer.finish_reasons == ["length", "stop"]
    assert answer.completion_tokens == 2  # as the server said it; the proxy recounts
    assert len(answer.timing.token_times_s) == 3


def test_a_stream_without_done_still_ends_and_errors_in_stream_raise():
    client = Client("http://x/v1", model="m", http=_mock(_sse({"choices": [{"text": "hi"}]})))
    assert client.complete("p", stream=True).text == "hi"
    broken = _sse({"choices": [{"text": "hi"}]}, {"error": {"message": "GPU on fire"}})
    with pytest.raises(APIStatusError, match="GPU on fire"):
        Client("http://x/v1", model="m", http=_mock(broken)).complete("p", stream=True)


def test_error_bodies_become_api_status_errors_with_their_details():
    body = json.dumps(
        {
            "error": {
                "message": "bad",
                "type": "invalid_request_error",
                "param": "max_tokens",
                "code": None,
            }
        }
    ).encode()
    client = Client("http://x/v1", model="m", http=_mock(body, 400, "application/json"))
    with pytest.raises(APIStatusError) as raised:
        client.complete("p")
    assert (raised.value.status_code, raised.value.param) == (400, "max_tokens")
    proxy_page = Client("http://x/v1", model="m", http=_mock(b"<html>Bad Gateway</html>", 502))
    with pytest.raises(APIStatusError, match="502: <html>Bad Gateway"):
        proxy_page.complete("p")


def test_nothing_listening_is_a_clear_error():
    with pytest.raises(ServerUnavailableError, match="nothing answered"):
        Client("http://127.0.0.1:9/v1", model="m").complete("p")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_sync_client_timing_against_the_real_server(live_server, stream):
    with Client(live_server.base_url) as client:
        answer = client.complete("Time me", max_tokens=6, ignore_eos=True, stream=stream)
    timing = answer.timing
    assert answer.completion_tokens == 6 and answer.prompt_tokens == 2
    assert 0 < timing.ttft_s <= timing.e2e_latency_s
    assert len(timing.token_times_s) == (6 if stream else 1)
    assert len(timing.itl_s) == len(timing.token_times_s) - 1
    assert all(gap >= 0 for gap in timing.itl_s)
    # TPOT is over tokens and needs a stream: a whole answer at once shows no gaps to divide
    if stream:
        assert timing.tpot_s == pytest.approx((timing.done_s - timing.first_token_s) / (6 - 1))
    else:
        assert timing.tpot_s is None


def test_a_read_timeout_is_the_courses_error_not_httpx():
    """Transport errors are mapped at the client boundary: a caller catches TimeoutError (or
    inferlab's ResponseTimeoutError), never httpx.ReadTimeout."""
    # A socket that listens and never answers: the kernel completes the handshake and takes
    # the request, and no response ever comes, so the read timeout must fire however slow
    # or fast this machine is.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        with Client(url, timeout=httpx.Timeout(5.0, read=0.05)) as client:
            with pytest.raises(ResponseTimeoutError) as caught:
                client.complete("Slow", max_tokens=64, ignore_eos=True)
    assert isinstance(caught.value, TimeoutError)
    assert not isinstance(caught.value, httpx.HTTPError)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_async_client_against_the_real_server(live_server, stream):
    async with AsyncClient(live_server.base_url) as client:
        answer = await client.chat("Hello", max_tokens=4, ignore_eos=True, stream=stream)
        seen: list[str] = []
        await client.complete(
            "Hi", max_tokens=3, stream=True, on_text=lambda index, text: seen.append(text)
        )
    assert answer.text and answer.completion_tokens == 4
    assert len(seen) == 3
