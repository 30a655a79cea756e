"""The proxy's upstream side: many callers' completions in one request, and the answers split.

    callers:   A: prompt "x"          B: prompts ["y", "z"]        (both n=1, same options)
    upstream:  POST /completions  {"prompt": ["x", "y", "z"], ...}
    split:     choice 0 -> A as index 0;  choice 1 -> B as 0;  choice 2 -> B as 1

With n > 1 the upstream numbers choices prompt·n + j, and so does each caller. Each caller's
usage is the server's own count (see usage.py), chosen by the server's profile
(server_profiles.py), which is detected on the first batch. A 4xx for a batch of several,
as a status or inside a stream that has sent nobody anything yet (llama.cpp answers 200, then
`{"error": {"code": 400}}`), is retried caller by caller, so one bad request cannot fail the
others; an upstream without list prompts gets the same callers concurrently, one request each.
A stream that fails after some callers have text tells those callers inside their stream (an
error event with code 502, then [DONE]) and gives the others a status of their own: never a
hang, never a stream that just stops. What each caller is answered is in `_replies.py`.
A request the server dropped before a byte of answer is sent once more (`resend.py`).
"""

from __future__ import annotations

import asyncio
import bisect
import http.cookiejar
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import UpstreamError
from . import usage as usages
from ._forward import forward
from ._http1 import Http1Transport
from ._replies import (
    Reply,
    error_reply,
    failure_reply,
    in_stream_error,
    sse_event,
    stream_error_reply,
    upstream_errors,
)
from .resend import resend_if_dropped
from .server_profiles import ServerProfile, detect
from .sse import DONE, choice_text, read_sse_line

__all__ = ["Call", "Reply", "Upstream", "UpstreamError", "batch_key", "in_stream_error"]

Json = dict[str, Any]

# What may differ between callers of one batch; everything else must match to share it.
_PER_CALLER = {"prompt", "stream_options", "user"}


@dataclass(eq=False)
class Call:
    """One caller's completion request, as the batcher queues it."""

    body: Json  # the caller's JSON, already validated
    prompts: list[str]
    n: int
    stream: bool
    include_usage: bool
    events: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)  # SSE, for streams


def batch_key(call: Call) -> str:
    """Calls with the same key may share one upstream request."""
    return json.dumps(
        {k: v for k, v in call.body.items() if k not in _PER_CALLER}, sort_keys=True, default=str
    )


class _NoCookies(http.cookiejar.CookieJar):
    """The proxy's callers are not the upstream's browser: keep no cookies. It also spares
    httpx turning every response's headers into an `email.message` to look for them."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass


class _Splitter:
    """Maps the upstream's choice indexes back to (caller, caller's own index)."""

    def __init__(self, calls: list[Call]):
        self.calls = calls
        self.starts: list[int] = []  # the first upstream prompt of each caller
        position = 0
        for call in calls:
            self.starts.append(position)
            position += len(call.prompts)
        self.texts: list[dict[int, str]] = [{} for _ in calls]

    def locate(self, upstream_index: int) -> tuple[int, int]:
        n = self.calls[0].n
        prompt, sample = divmod(upstream_index, n)
        caller = bisect.bisect_right(self.starts, prompt) - 1
        return caller, (prompt - self.starts[caller]) * n + sample

    def add(self, choice: Json) -> tuple[int, Json]:
        caller, index = self.locate(int(choice.get("index") or 0))
        texts = self.texts[caller]
        texts[index] = texts.get(index, "") + choice_text(choice)
        return caller, {**choice, "index": index}


class Upstream:
    """Sends batches of `Call`s to one OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        list_prompts: bool = True,
        profile: ServerProfile | None = None,
        timeout_s: float = 300.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.list_prompts = list_prompts
        self._profile = profile  # None: detected on the first batch
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._options: Json = {"headers": headers, "timeout": timeout_s}
        self._timeout = {"timeout": httpx.Timeout(timeout_s).as_dict()}
        self._http: httpx.AsyncClient | None = None
        self._transport: Http1Transport | None = None  # the client's, made with it
        self._loop: asyncio.AbstractEventLoop | None = None
        # Parsed once: httpx parses a URL given as a string on every request.
        self._completions_url = httpx.URL(self.base_url + "/completions")
        self.resends = 0  # requests sent again after a drop before any answer (resend.py)

    @property
    def http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()  # one connection pool per event loop
        if self._http is None or self._loop is not loop:
            # Drop idle upstream connections before any common server would (llama.cpp and
            # uvicorn: 5 s), so we never send on one the server is closing. The lean
            # transport is most of what makes the proxy cheap (see _http1.py).
            self._transport = Http1Transport(max_connections=1000, keepalive_expiry_s=2.0)
            self._http = httpx.AsyncClient(
                transport=self._transport, cookies=_NoCookies(), **self._options
            )
            self._loop = loop
        return self._http

    @asynccontextmanager
    async def _completions(self, body: Json) -> AsyncIterator[httpx.Response]:
        """POST /completions straight to the transport; the body is read by the caller.

        httpx's client layer (merging URLs, headers and cookies; auth, redirects, timers) was
        about a quarter of the proxy's CPU per request in a profile, and a proxy to one server
        needs none of it: the request is built here and handed to the transport as it is.
        """
        headers = self.http.headers  # the client's defaults and our key, merged once
        transport = self._transport
        assert transport is not None  # made with the client, just now if need be

        async def send(extensions: Json) -> httpx.Response:
            request = httpx.Request(
                "POST",
                self._completions_url,
                json=body,
                headers=headers,
                extensions={**self._timeout, **extensions},
            )
            response = await transport.handle_async_request(request)
            response.request = request
            return response

        # Returns at the response's head, so a stream that has begun is never sent again.
        response = await resend_if_dropped(send, on_resend=self._count_resend)
        try:
            yield response
        finally:
            await response.aclose()  # gives the connection back, or closes it if unread

    def _count_resend(self) -> None:
        self.resends += 1

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def profile(self) -> ServerProfile:
        """What this server can do; asked once (two first batches may both ask: harmless)."""
        if self._profile is None:
            with upstream_errors():
                self._profile = await detect(self.http, self.base_url)
        return self._profile

    async def complete(self, calls: list[Call]) -> list[Reply]:
        """One reply per call, in order; raises UpstreamError if the upstream fails them all."""
        profile = await self.profile()
        if len(calls) > 1 and not (self.list_prompts and profile.list_prompts):
            return await self._one_by_one(calls)
        body = dict(calls[0].body)  # a caller alone keeps its prompt exactly as it sent it
        if len(calls) > 1:
            body["prompt"] = [prompt for call in calls for prompt in call.prompts]
        body.pop("stream_options", None)  # we count each caller's usage ourselves
        if calls[0].stream and profile.stream_options:
            body["stream_options"] = profile.stream_options  # so that chunks carry usage
        if not calls[0].stream and profile.plain_usage == "token_ids":
            body["return_token_ids"] = True
        with upstream_errors():
            if calls[0].stream:
                return await self._stream(calls, body)
            async with self._completions(body) as response:
                await response.aread()
        if response.status_code >= 500:
            raise UpstreamError(
                f"the upstream failed: {response.status_code} {response.text[:300]}"
            )
        if response.status_code >= 400:
            return await self._retry_alone(calls, error_reply(response, response.content))
        return await self._split(calls, response.json())

    async def _one_by_one(self, calls: list[Call]) -> list[Reply]:
        """Each call on its own request, concurrently; each gets its own reply or error."""
        outcomes = await asyncio.gather(
            *(self.complete([call]) for call in calls), return_exceptions=True
        )
        return [
            outcome[0] if isinstance(outcome, list) else failure_reply(outcome)
            for outcome in outcomes
        ]

    async def _retry_alone(self, calls: list[Call], reply: Reply) -> list[Reply]:
        # A 4xx for a batch says one of its requests is bad, not which: ask for each alone.
        return [reply] if len(calls) == 1 else await self._one_by_one(calls)

    async def _split(self, calls: list[Call], body: Json) -> list[Reply]:
        splitter = _Splitter(calls)
        choices: list[list[Json]] = [[] for _ in calls]
        for choice in body.get("choices") or []:
            caller, local = splitter.add(choice)
            choices[caller].append(local)
        profile = await self.profile()
        own_usage = body.get("usage") if len(calls) == 1 else None
        if own_usage and (len(calls[0].prompts) == 1 or profile.counts_lists):
            counts = [own_usage]  # the server counted this caller alone: nothing to split
        else:
            counts = await asyncio.gather(
                *(
                    self._plain_usage(profile, call, own)
                    for call, own in zip(calls, choices, strict=True)
                )
            )
        replies = []
        for call, own, usage in zip(calls, choices, counts, strict=True):
            own.sort(key=lambda choice: choice["index"])
            for choice in own:
                for name in usages.TOKEN_ID_FIELDS:
                    if not call.body.get("return_token_ids"):
                        choice.pop(name, None)  # we asked for them, not the caller
            replies.append(Reply(200, {**body, "choices": own, "usage": usage}))
        return replies

    async def _plain_usage(
        self, profile: ServerProfile, call: Call, choices: list[Json]
    ) -> dict[str, int]:
        if profile.plain_usage == "token_ids":
            exact = usages.from_token_ids(choices, call.n)
            if exact is not None:
                return exact
        if profile.tokenize is not None:
            max_tokens = call.body.get("max_tokens")
            with upstream_errors():
                return await usages.from_tokenizer(
                    self.http, self.base_url, profile, call.prompts, choices, max_tokens
                )
        return usages.course_usage(call.prompts, [c.get("text") or "" for c in choices])

    def _stream_usage(
        self,
        call: Call,
        own: dict[int, Json],
        texts: dict[int, str],
        final: Json | None,
        calls: int,
    ) -> dict[str, int]:
        """From the usage each prompt's chunks carried; else the server's usage of the whole
        stream when it was this caller's alone; else the course's rule (an unknown server)."""
        if own and len(own) == len(texts):
            exact = usages.from_choices(list(own.values()), call.n)
            if exact is not None:
                return exact
        counts_all = self._profile is not None and self._profile.counts_lists
        if final and calls == 1 and (len(call.prompts) == 1 or counts_all):
            return final
        return usages.course_usage(call.prompts, list(texts.values()))

    async def _stream(self, calls: list[Call], body: Json) -> list[Reply]:
        splitter = _Splitter(calls)
        head: Json = {}
        final: Json | None = None  # the usage of the whole stream, in its last chunk
        usage_by_choice: list[dict[int, Json]] = [{} for _ in calls]
        started: set[int] = set()  # the callers who have had a chunk (their 200 is sent)
        async with self._completions(body) as response:
            if response.status_code >= 500:
                raise UpstreamError(f"the upstream failed: {response.status_code}")
            if response.status_code >= 400:
                return await self._retry_alone(calls, error_reply(response, await response.aread()))
            async for line in response.aiter_lines():
                payload = read_sse_line(line)
                if payload == DONE:
                    break
                if not isinstance(payload, dict):
                    continue  # llama.cpp's `data: null`, comments, blank lines
                if "error" in payload:
                    return await self._stream_failed(calls, started, stream_error_reply(payload))
                if not payload.get("choices") and isinstance(payload.get("usage"), dict):
                    final = payload["usage"]
                if "id" in payload:  # a usage-only chunk may have no id: keep the last one
                    head = {
                        key: payload[key]
                        for key in ("id", "object", "created", "model")
                        if key in payload
                    }
                for choice in payload.get("choices") or []:
                    caller, local = splitter.add(choice)
                    if isinstance(payload.get("usage"), dict):  # this prompt's own usage
                        usage_by_choice[caller][local["index"]] = {
                            "index": local["index"],
                            "usage": payload["usage"],
                        }
                    chunk = {**payload, "choices": [local]}
                    chunk.pop("usage", None)
                    calls[caller].events.put_nowait(sse_event(chunk))
                    started.add(caller)
        for call, own, texts in zip(calls, usage_by_choice, splitter.texts, strict=True):
            if call.include_usage:
                usage = self._stream_usage(call, own, texts, final, len(calls))
                call.events.put_nowait(sse_event({**head, "choices": [], "usage": usage}))
            call.events.put_nowait(sse_event(DONE))
            call.events.put_nowait(None)  # end of this caller's stream
        return [Reply(200) for _ in calls]

    async def _stream_failed(
        self, calls: list[Call], started: set[int], reply: Reply
    ) -> list[Reply]:
        """The upstream sent an error inside its stream. Before anyone had text, a 4xx is
        retried caller by caller, as for a plain batch. After, the callers with text hear it in
        their stream (UpstreamError's in-stream event) and the others, who have no 200 yet,
        get their own status: retried alone after a 4xx, else the 502 of a broken batch."""
        message = f"the upstream stream failed: {(reply.body or {}).get('error')}"
        if not started:
            if reply.status < 500:
                return await self._retry_alone(calls, reply)
            raise UpstreamError(message)
        if len(calls) == 1:  # a caller alone: the error is the server's answer to it
            raise UpstreamError(message, status=reply.status if reply.status < 500 else 502)
        # subtle: after text has gone out nobody can tell whose request the server refused,
        # so a caller with text is told 502 (the batch broke), never a 4xx it did not earn.
        waiting = [call for i, call in enumerate(calls) if i not in started]
        retried = iter(await self._one_by_one(waiting) if reply.status < 500 else [])
        failed = failure_reply(UpstreamError(message))
        replies = []
        for i, call in enumerate(calls):
            if i in started:
                replies.append(Reply(200))
                call.events.put_nowait(sse_event(in_stream_error(failed)))
                call.events.put_nowait(sse_event(DONE))
                call.events.put_nowait(None)
            else:
                replies.append(next(retried, failed))
        return replies

    async def forward(self, path: str, body: Json, events: asyncio.Queue[str | None]) -> Reply:
        """Send one request as it is (chat): a JSON reply, or its stream piped into `events`."""
        url = self.base_url + path
        return await forward(self.http, url, body, events, on_resend=self._count_resend)
