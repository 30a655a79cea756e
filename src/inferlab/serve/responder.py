"""A request's way through the engine: its choices, their merged tokens, and the answer.

One `_Choice` per prompt and sample (OpenAI numbers them prompt_number * n + sample); each is
one sequence in the engine, so the prompts of a list are batched together by the scheduler, as
in vLLM. `_Responder` turns their merged tokens into one JSON body or a stream of Server-Sent
Events, times them on the engine's clock (the engine's own account rides along with the
answer), and stops the engine's work for a client that hung up. The HTTP routes (`app.py`)
and the WebSocket (`websocket.py`) both answer through it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..engine.model import SimulatedModel, Token
from ..engine.text import count_tokens
from ..engine.timing import EngineTiming
from ..errors import InvalidRequestError
from ._http import error_body, error_response
from .metrics import ServerMetrics
from .schemas import _Sampling
from .settings import DEFAULT_MAX_TOKENS_PER_REQUEST
from .shapes import Shape, TokenChunks, sse, timing_headers, usage


@dataclass
class _Choice:
    index: int  # prompt_number * n + sample, as OpenAI numbers choices
    sample: int
    prompt: str
    prompt_tokens: int
    max_tokens: int
    seed: int


# ---------------------------------------------------------------------------------------------
# Generation: every choice is one sequence; their tokens are merged into one stream


def _plan_choices(
    model: SimulatedModel,
    prompts: list[str],
    request: _Sampling,
    max_tokens: int | None,
    budget_tokens: int = DEFAULT_MAX_TOKENS_PER_REQUEST,
) -> list[_Choice]:
    """One `_Choice` per prompt and sample, validated before anything is generated."""
    choices = []
    for number, prompt in enumerate(prompts):
        prompt_tokens = count_tokens(prompt)
        limit = max_tokens or max(1, model.profile.max_model_len - prompt_tokens)
        for sample in range(request.n):
            # No seed behaves as seed 0, so the course's outputs repeat; samples differ by +j.
            seed = (request.seed or 0) + sample
            index = number * request.n + sample
            choices.append(_Choice(index, sample, prompt, prompt_tokens, limit, seed))
    for choice in choices:
        model.check_fits(choice.prompt_tokens, choice.max_tokens)
    asked = sum(choice.max_tokens for choice in choices)
    if asked > budget_tokens:
        raise InvalidRequestError(
            f"This request asks for up to {asked:,} tokens ({len(prompts)} prompts x n={request.n}"
            f" x max_tokens={max_tokens}); this server allows {budget_tokens:,} per request. "
            "Send fewer prompts, a smaller n or a smaller max_tokens.",
            param="max_tokens",
        )
    return choices


def _tokens(model: SimulatedModel, choice: _Choice, request: _Sampling) -> AsyncIterator[Token]:
    return model.generate(
        choice.prompt,
        max_tokens=choice.max_tokens,
        temperature=request.temperature,
        seed=choice.seed,
        stop=request.stop_list,
        ignore_eos=request.ignore_eos,
        prompt_tokens=choice.prompt_tokens,
    )


async def _merged_tokens(
    model: SimulatedModel, choices: list[_Choice], request: _Sampling
) -> AsyncIterator[tuple[_Choice, Token]]:
    """Yield (choice, token) as the engine produces them, across all choices of a request.

    Closing this iterator (a client that hung up) cancels every choice still generating.
    """
    if len(choices) == 1:
        # The common case, read directly: no pump task and no queue, which per token per
        # stream is a task switch and two queue operations fewer (a fifth of the server's CPU
        # with hundreds of streams, in a profile). Closing closes the engine's generator too.
        (choice,) = choices
        tokens = _tokens(model, choice, request)
        try:
            async for token in tokens:
                yield choice, token
        finally:
            await tokens.aclose()  # type: ignore[attr-defined]
        return
    queue: asyncio.Queue[tuple[_Choice, Token | Exception]] = asyncio.Queue()

    async def pump(choice: _Choice) -> None:
        try:
            async for token in _tokens(model, choice, request):
                queue.put_nowait((choice, token))
        except Exception as exc:  # handed to the reader, which answers the client with it
            queue.put_nowait((choice, exc))

    tasks = [asyncio.create_task(pump(choice)) for choice in choices]
    unfinished = len(choices)
    try:
        while unfinished:
            choice, item = await queue.get()
            if isinstance(item, Exception):
                raise item
            unfinished -= item.finish_reason is not None
            yield choice, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Timer:
    """Times each choice on the model's clock: the TTFT and latency histograms of /metrics,
    and the engine's own account of the whole request that the response carries."""

    def __init__(self, model: SimulatedModel, metrics: ServerMetrics):
        self.metrics = metrics
        self.start_s = model.clock.now()
        self.time_scale = model.time_scale
        self.first_token_s: dict[int, float] = {}
        self.arrival_s: float | None = None
        self.queued_s: float | None = None
        self.admitted_s: float | None = None
        self.finished_s: float | None = None
        self.output_tokens = 0

    def saw(self, choice: _Choice, token: Token) -> None:
        self.first_token_s.setdefault(choice.index, token.time_s)
        self.output_tokens += not token.end_of_sequence
        if token.finish_reason is not None:
            ttft_s = self.first_token_s[choice.index] - self.start_s
            self.metrics.observe_choice(ttft_s, token.time_s - self.start_s, token.finish_reason)
            # A request of several choices: the earliest arrival and admission, the last finish.
            self.arrival_s = _earliest(self.arrival_s, token.arrival_s)
            self.queued_s = _earliest(self.queued_s, token.queued_s)
            self.admitted_s = _earliest(self.admitted_s, token.admitted_s)
            self.finished_s = max(self.finished_s or token.time_s, token.time_s)

    def engine_timing(self) -> EngineTiming | None:
        if self.finished_s is None or not self.first_token_s:
            return None
        arrival_s = self.arrival_s if self.arrival_s is not None else self.start_s
        # subtle: arrivals are stamped from the wall clock, steps on the exact simulated
        # timeline; a server running late can admit a sequence "before" it arrived. Clamp.
        queued_s = max(arrival_s, self.queued_s if self.queued_s is not None else arrival_s)
        admitted_s = max(queued_s, self.admitted_s if self.admitted_s is not None else queued_s)
        first_s = max(admitted_s, min(self.first_token_s.values()))
        return EngineTiming(
            queue_s=admitted_s - queued_s,
            prefill_s=first_s - admitted_s,
            ttft_s=first_s - arrival_s,
            e2e_latency_s=max(first_s, self.finished_s) - arrival_s,
            output_tokens=self.output_tokens,
            time_scale=self.time_scale,
            api_server_s=queued_s - arrival_s,
        )


def _earliest(known: float | None, new: float | None) -> float | None:
    return new if known is None else known if new is None else min(known, new)


class _Responder:
    """Turns a request's merged token stream into one JSON body or an SSE stream."""

    def __init__(
        self,
        model: SimulatedModel,
        metrics: ServerMetrics,
        shape: Shape,
        choices: list[_Choice],
        request: _Sampling,
        echo: bool = False,
        slots: AbstractAsyncContextManager[Any] | None = None,
    ):
        self.model, self.metrics, self.shape = model, metrics, shape
        self.slots = slots or nullcontext()
        self.choices, self.request, self.echo = choices, request, echo
        self.head = {
            "id": shape.id_prefix + uuid.uuid4().hex,
            "created": int(time.time()),
            "model": model.name,
        }

    def _clean(self, choice: _Choice, text: str, started: bool) -> str:
        # A chat answer starts a new turn, so it does not open with the space a continuation has.
        return text.lstrip() if self.shape.chat and not started else text

    async def body(self) -> dict[str, Any]:
        texts = {c.index: (c.prompt if self.echo else "") for c in self.choices}
        finish: dict[int, str | None] = {}
        generated = 0
        timer = _Timer(self.model, self.metrics)
        async for choice, token in _merged_tokens(self.model, self.choices, self.request):
            timer.saw(choice, token)
            generated += not token.end_of_sequence
            texts[choice.index] += self._clean(choice, token.text, bool(texts[choice.index]))
            finish[choice.index] = token.finish_reason
        engine = timer.engine_timing()
        return {
            **self.head,
            "object": self.shape.object,
            "choices": [self.shape.choice(i, texts[i], finish[i]) for i in sorted(texts)],
            "usage": usage(self.choices, generated),
            **({EngineTiming.WIRE_NAME: engine.to_json()} if engine else {}),
        }

    async def events(self) -> AsyncIterator[str]:
        head = {**self.head, "object": self.shape.chunk_object}
        ordinary = TokenChunks(head, self.shape)
        started: set[int] = set()
        generated = finished = 0
        timer = _Timer(self.model, self.metrics)
        if self.echo:
            for choice in self.choices:
                yield sse(
                    {
                        **head,
                        "choices": [
                            self.shape.delta(choice.index, choice.prompt, None, first=False)
                        ],
                    }
                )
        try:
            async for choice, token in _merged_tokens(self.model, self.choices, self.request):
                timer.saw(choice, token)
                generated += not token.end_of_sequence
                first = choice.index not in started
                text = self._clean(choice, token.text, not first)
                if not first and text and token.finish_reason is None:
                    yield ordinary.event(choice.index, text)  # most tokens: a template
                    continue
                delta = self.shape.delta(choice.index, text, token.finish_reason, first=first)
                started.add(choice.index)
                chunk = {**head, "choices": [delta]}
                finished += token.finish_reason is not None
                if finished == len(self.choices):  # the last chunk carries the engine's
                    engine = timer.engine_timing()  # account: a stream has no headers left
                    if engine is not None:
                        chunk[EngineTiming.WIRE_NAME] = engine.to_json()
                yield sse(chunk)
        except Exception as exc:  # headers are sent: the error can only travel in the stream
            status = 400 if isinstance(exc, InvalidRequestError) else 500
            yield sse(error_body(str(exc), status))
        else:
            if self.request.include_usage_in_stream:
                yield sse({**head, "choices": [], "usage": usage(self.choices, generated)})
        yield sse("[DONE]")

    async def respond(self, connection: Request) -> Response:
        if self.request.stream:  # Starlette stops the stream itself when the client hangs up
            return StreamingResponse(self._events_in_slot(), media_type="text/event-stream")
        body = asyncio.ensure_future(self._body_in_slot())
        watcher = asyncio.ensure_future(_hung_up(connection))
        try:
            await asyncio.wait({body, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # a client that hung up: cancelling the body cancels its sequences
            watcher.cancel()
            body.cancel()
            await asyncio.gather(body, watcher, return_exceptions=True)
        if not body.done() or body.cancelled():
            # Nobody will read this; 499 is nginx's "client closed request", for the access log.
            return error_response("the client closed the request", 499)
        answer = body.result()
        return JSONResponse(answer, headers=timing_headers(answer.get(EngineTiming.WIRE_NAME)))

    async def _body_in_slot(self) -> dict[str, Any]:
        async with self.slots:
            return await self.body()

    async def _events_in_slot(self) -> AsyncIterator[str]:
        async with self.slots:  # a stream holds its request slot until its last chunk
            async for event in self.events():
                yield event


async def _hung_up(connection: Request) -> None:
    """Return once the client disconnects. The body is already read, so the next ASGI message
    can only be `http.disconnect` (uvicorn sends it when the socket closes)."""
    while (await connection.receive())["type"] != "http.disconnect":
        pass
