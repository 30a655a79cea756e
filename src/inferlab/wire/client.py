"""Timed clients for any OpenAI-compatible server: `Client` (blocking) and `AsyncClient`.

Every call returns the text and a `Timing`: when the request was sent, when the first token
arrived (TTFT), each token after it (inter-token latency), and when the answer was complete.

    client = Client(inferlab.base_url())
    answer = client.complete("The capital of France is", max_tokens=8, stream=True)
    answer.text, answer.timing.ttft_s, answer.timing.e2e_latency_s

Real servers bend the protocol: llama.cpp sends `data: null` lines in streams of several prompts
and counts usage for the first prompt only, Ollama and vLLM differ in what chunks carry. The
stream reader tolerates all of it: unknown lines are skipped, never fatal. Usage is reported as
the server states it; the proxy (which must be exact) recounts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from ..engine.timing import EngineTiming
from ..errors import (
    ConnectionLostError,
    NoResponseError,
    ResponseTimeoutError,
    ServerUnavailableError,
    TransportError,
)
from ._http1 import Http1Transport
from .sse import (
    DONE,
    api_error,
    choice_text,
    error_from_response,
    read_sse_line,
    stream_error_status,
)
from .timing import Timing

Messages = list[dict[str, Any]]
OnText = Callable[[int, str], None]  # (choice index, text) as each piece arrives

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=30.0, pool=600.0)


@dataclass
class Completion:
    """One answer: a text per choice (in index order), the server's usage, and the timing."""

    texts: list[str]
    finish_reasons: list[str | None]
    timing: Timing
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


# ---------------------------------------------------------------------------------------------
# Parsing, shared by both clients


class _Answer:
    """Builds a Completion from a JSON body or from stream chunks, however they come."""

    def __init__(self, sent_s: float, on_text: OnText | None = None):
        self.timing = Timing(sent_s=sent_s)
        self.texts: dict[int, str] = {}
        self.finish: dict[int, str | None] = {}
        self.usage: dict[str, Any] = {}
        self.model: str | None = None
        self.on_text = on_text

    def add_choices(self, payload: dict[str, Any], now_s: float) -> None:
        self.model = payload.get("model") or self.model
        if isinstance(payload.get("usage"), dict):
            self.usage = payload["usage"]
        if EngineTiming.WIRE_NAME in payload:  # only this course's servers send it
            self.timing.engine = EngineTiming.from_json(payload[EngineTiming.WIRE_NAME])
        for choice in payload.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index") or 0
            text = choice_text(choice)
            self.texts[index] = self.texts.get(index, "") + text
            if choice.get("finish_reason") is not None or index not in self.finish:
                self.finish[index] = choice.get("finish_reason")
            if text:
                self.timing.first_token_s = self.timing.first_token_s or now_s
                self.timing.token_times_s.append(now_s)
                if self.on_text is not None:
                    self.on_text(index, text)

    def add_sse_line(self, line: str, now_s: float) -> bool:
        """Take one line of an SSE stream; True once the stream says [DONE]."""
        payload = read_sse_line(line)
        if payload == DONE:
            return True
        if isinstance(payload, dict):
            if "error" in payload:
                # The server's own code, from inside a 200 stream (llama.cpp: 400 for a prompt
                # over the context): a caller's mistake must not look like a retryable 500.
                raise api_error(payload, status_code=stream_error_status(payload))
            self.add_choices(payload, now_s)
        return False

    def result(self, now_s: float) -> Completion:
        self.timing.done_s = now_s
        completion_tokens = self.usage.get("completion_tokens")
        self.timing.output_tokens = completion_tokens or len(self.timing.token_times_s)
        order = sorted(self.texts)
        return Completion(
            texts=[self.texts[i] for i in order],
            finish_reasons=[self.finish.get(i) for i in order],
            timing=self.timing,
            prompt_tokens=self.usage.get("prompt_tokens"),
            completion_tokens=completion_tokens,
            model=self.model,
        )


def _payload(
    model: str, key: str, value: Any, stream: bool, params: dict[str, Any]
) -> dict[str, Any]:
    payload = {"model": model, key: value, **params, "stream": stream}
    if stream:
        payload.setdefault("stream_options", {"include_usage": True})
    return payload


def _as_messages(messages: str | Messages) -> Messages:
    return [{"role": "user", "content": messages}] if isinstance(messages, str) else messages


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class _Progress:
    """Whether the server has begun to answer: a broken connection means different things
    before (nothing came back: `NoResponseError`) and after (`ConnectionLostError`)."""

    responded = False


@contextmanager
def transport_errors(base_url: str, progress: _Progress | None = None) -> Iterator[None]:
    """Map httpx's exceptions to the course's at the client boundary, as httpx maps httpcore's:
    a caller catches `TransportError` (or one of its three kinds), never an httpx class."""
    try:
        yield
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        if progress is not None and not progress.responded:
            raise NoResponseError(
                f"{base_url} closed the connection before answering: {exc!r}"
            ) from exc
        raise ConnectionLostError(f"the connection to {base_url} broke: {exc!r}") from exc
    except httpx.ConnectError as exc:
        raise ServerUnavailableError(f"nothing answered at {base_url}: {exc}") from exc
    except httpx.ConnectTimeout as exc:
        raise ServerUnavailableError(f"no connection to {base_url} in time: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise ResponseTimeoutError(f"{base_url} did not answer in time ({exc!r})") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"the request to {base_url} failed: {exc!r}") from exc


def _first_model_id(body: Any) -> str:
    try:
        return str(body["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise ServerUnavailableError(f"GET /models returned no model: {body!r}") from None


# ---------------------------------------------------------------------------------------------
# The clients


class Client:
    """A blocking client. `complete()` and `chat()` return a `Completion` with its `Timing`."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http: httpx.Client | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._model = model
        self._http = http or httpx.Client(timeout=timeout, headers=_headers(api_key))

    @property
    def model(self) -> str:
        """The model to ask for: given, or the first one the server lists."""
        if self._model is None:
            self._model = _first_model_id(self._get("/models"))
        return self._model

    def complete(
        self,
        prompt: str | list[str],
        *,
        stream: bool = False,
        on_text: OnText | None = None,
        **params: Any,
    ) -> Completion:
        """POST /completions; a list of prompts gives one text per prompt (times `n`)."""
        return self._generate(
            "/completions", _payload(self.model, "prompt", prompt, stream, params), on_text
        )

    def chat(
        self,
        messages: str | Messages,
        *,
        stream: bool = False,
        on_text: OnText | None = None,
        **params: Any,
    ) -> Completion:
        """POST /chat/completions; a plain string is sent as one user message."""
        payload = _payload(self.model, "messages", _as_messages(messages), stream, params)
        return self._generate("/chat/completions", payload, on_text)

    def _get(self, path: str) -> Any:
        with transport_errors(self.base_url):
            response = self._http.get(self.base_url + path)
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return response.json()

    def _generate(self, path: str, payload: dict[str, Any], on_text: OnText | None) -> Completion:
        answer, progress = _Answer(time.perf_counter(), on_text), _Progress()
        with transport_errors(self.base_url, progress):
            with self._http.stream("POST", self.base_url + path, json=payload) as response:
                progress.responded = True
                if response.status_code >= 400:
                    raise error_from_response(response.status_code, response.read())
                if not payload["stream"]:
                    answer.add_choices(json.loads(response.read()), time.perf_counter())
                    return answer.result(time.perf_counter())
                for line in response.iter_lines():
                    if answer.add_sse_line(line, time.perf_counter()):
                        break
        return answer.result(time.perf_counter())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient:
    """The asyncio twin of `Client`: the same calls, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_connections: int = 1000,
        http: httpx.AsyncClient | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._model = model
        # httpx's API with a lean transport: a connection per request in flight, up to
        # `max_connections`, then a queue (httpx's own pool slows down as its queue grows).
        self._http = http or httpx.AsyncClient(
            timeout=timeout,
            headers=_headers(api_key),
            transport=Http1Transport(max_connections=max_connections),
        )
        self._urls: dict[str, httpx.URL] = {}  # parsed once: httpx parses a str every call

    async def get_model(self) -> str:
        """The model to ask for: given, or the first one the server lists."""
        if self._model is None:
            self._model = _first_model_id(await self._get("/models"))
        return self._model

    async def complete(
        self,
        prompt: str | list[str],
        *,
        stream: bool = False,
        on_text: OnText | None = None,
        **params: Any,
    ) -> Completion:
        """POST /completions; a list of prompts gives one text per prompt (times `n`)."""
        payload = _payload(await self.get_model(), "prompt", prompt, stream, params)
        return await self._generate("/completions", payload, on_text)

    async def chat(
        self,
        messages: str | Messages,
        *,
        stream: bool = False,
        on_text: OnText | None = None,
        **params: Any,
    ) -> Completion:
        """POST /chat/completions; a plain string is sent as one user message."""
        payload = _payload(
            await self.get_model(), "messages", _as_messages(messages), stream, params
        )
        return await self._generate("/chat/completions", payload, on_text)

    async def _get(self, path: str) -> Any:
        with transport_errors(self.base_url):
            response = await self._http.get(self.base_url + path)
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return response.json()

    async def _generate(
        self, path: str, payload: dict[str, Any], on_text: OnText | None
    ) -> Completion:
        answer, progress = _Answer(time.perf_counter(), on_text), _Progress()
        url = self._urls.get(path) or self._urls.setdefault(path, httpx.URL(self.base_url + path))
        with transport_errors(self.base_url, progress):
            async with self._http.stream("POST", url, json=payload) as response:
                progress.responded = True
                if response.status_code >= 400:
                    raise error_from_response(response.status_code, await response.aread())
                if not payload["stream"]:
                    answer.add_choices(json.loads(await response.aread()), time.perf_counter())
                    return answer.result(time.perf_counter())
                async for line in response.aiter_lines():
                    if answer.add_sse_line(line, time.perf_counter()):
                        break
        return answer.result(time.perf_counter())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
