"""The model server: an OpenAI-compatible HTTP API over a `SimulatedModel`.

    inferlab serve --port 8000            # then: curl localhost:8000/v1/completions -d ...

Routes: POST /v1/completions (a prompt or a list of prompts; one choice per prompt and sample,
index = prompt_number * n + sample), POST /v1/chat/completions, `stream: true` as Server-Sent
Events ending in `data: [DONE]`, GET /v1/models, GET /health, GET /metrics (Prometheus text).
Every choice of every request is one sequence in the simulated engine, so the prompts of a list
are batched together by the engine's scheduler, exactly as in vLLM. `usage` counts the tokens of
the text (the course's token rule); the end-of-sequence marker costs a step but is not text, so
it is not counted, and `completion_tokens == count_tokens(text)` unless a stop string cut it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..engine.model import SimulatedModel, Token
from ..engine.text import count_tokens
from ..errors import InvalidRequestError
from ._http import (
    BodySizeLimit,
    OpenAIHTTPError,
    api_key_dependency,
    error_body,
    error_response,
    install_error_handlers,
)
from .faults import FaultInjection, Faults
from .metrics import ServerMetrics
from .schemas import ChatCompletionRequest, CompletionRequest, _Sampling, render_chat
from .shapes import CHAT, COMPLETION, Shape, sse, usage

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
# The most tokens one request may ask for: prompts x n x max_tokens. Past it a request is a 400,
# as vLLM refuses what exceeds its limits: 1,024 prompts x n=16 x 8,000 tokens would otherwise
# keep the engine busy for minutes, starving everyone else, even after its client hung up.
DEFAULT_MAX_TOKENS_PER_REQUEST = 262_144


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


async def _merged_tokens(
    model: SimulatedModel, choices: list[_Choice], request: _Sampling
) -> AsyncIterator[tuple[_Choice, Token]]:
    """Yield (choice, token) as the engine produces them, across all choices of a request.

    Closing this iterator (a client that hung up) cancels every choice still generating.
    """
    queue: asyncio.Queue[tuple[_Choice, Token | Exception]] = asyncio.Queue()

    async def pump(choice: _Choice) -> None:
        try:
            async for token in model.generate(
                choice.prompt,
                max_tokens=choice.max_tokens,
                temperature=request.temperature,
                seed=choice.seed,
                stop=request.stop_list,
                ignore_eos=request.ignore_eos,
                prompt_tokens=choice.prompt_tokens,
            ):
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
    """Times each choice on the model's clock for the TTFT and latency histograms."""

    def __init__(self, model: SimulatedModel, metrics: ServerMetrics):
        self.metrics = metrics
        self.start_s = model.clock.now()
        self.first_token_s: dict[int, float] = {}

    def saw(self, choice: _Choice, token: Token) -> None:
        self.first_token_s.setdefault(choice.index, token.time_s)
        if token.finish_reason is not None:
            ttft_s = self.first_token_s[choice.index] - self.start_s
            self.metrics.observe_choice(ttft_s, token.time_s - self.start_s, token.finish_reason)


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
        return {
            **self.head,
            "object": self.shape.object,
            "choices": [self.shape.choice(i, texts[i], finish[i]) for i in sorted(texts)],
            "usage": usage(self.choices, generated),
        }

    async def events(self) -> AsyncIterator[str]:
        head = {**self.head, "object": self.shape.chunk_object}
        started: set[int] = set()
        generated = 0
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
                text = self._clean(choice, token.text, choice.index in started)
                delta = self.shape.delta(
                    choice.index, text, token.finish_reason, first=choice.index not in started
                )
                started.add(choice.index)
                yield sse({**head, "choices": [delta]})
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
        return JSONResponse(body.result())

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


# ---------------------------------------------------------------------------------------------
# The app


def create_app(
    model: SimulatedModel | None = None,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_concurrent_requests: int | None = None,
    max_tokens_per_request: int = DEFAULT_MAX_TOKENS_PER_REQUEST,
    faults: Faults | None = None,
    **model_options: Any,
) -> FastAPI:
    """The OpenAI-compatible app over `model` (or a new SimulatedModel(**model_options)).

    `max_concurrent_requests=1` makes it serve one HTTP request at a time, like a model wrapped
    in a web framework behind a lock: the prompts of one request are still batched together,
    but separate requests queue. That is the server a client-side batching proxy pays off for.
    `faults` makes a share of requests fail or stall on purpose (see `_faults.py`).

    >>> app = create_app(profile="h100-llama3-1b", batching="static", time_scale=0.1)
    """
    model = model if model is not None else SimulatedModel(**model_options)
    metrics = ServerMetrics(model)
    if max_concurrent_requests is not None and max_concurrent_requests < 1:
        raise ValueError(f"max_concurrent_requests must be >= 1, got {max_concurrent_requests}")
    slots = asyncio.Semaphore(max_concurrent_requests) if max_concurrent_requests else None
    if isinstance(max_tokens_per_request, bool) or not max_tokens_per_request >= 1:
        raise ValueError(f"max_tokens_per_request must be >= 1, got {max_tokens_per_request}")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await model.aclose()

    app = FastAPI(title="inferlab model server", lifespan=lifespan)
    app.state.model = model
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    faults = faults or Faults()
    app.state.faults = faults
    app.add_middleware(FaultInjection, faults=faults)

    def check_model(requested: str | None) -> None:
        if requested is not None and requested != model.name:
            raise OpenAIHTTPError(
                404,
                f"The model `{requested}` does not exist. This server serves `{model.name}`.",
                param="model",
                code="model_not_found",
            )

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(api_key_dependency(api_key))])

    @v1.get("/models")
    async def list_models() -> dict[str, Any]:
        card = {
            "id": model.name,
            "object": "model",
            "created": 0,
            "owned_by": "inferlab",
            "max_model_len": model.profile.max_model_len,
        }
        return {"object": "list", "data": [card]}

    @v1.post("/completions")
    async def completions(request: CompletionRequest, connection: Request) -> Response:
        check_model(request.model)
        choices = _plan_choices(
            model, request.prompts, request, request.max_tokens, max_tokens_per_request
        )
        responder = _Responder(model, metrics, COMPLETION, choices, request, request.echo, slots)
        return await responder.respond(connection)

    @v1.post("/chat/completions")
    async def chat_completions(request: ChatCompletionRequest, connection: Request) -> Response:
        check_model(request.model)
        prompt = render_chat(request.messages)
        limit = request.completion_limit
        choices = _plan_choices(model, [prompt], request, limit, max_tokens_per_request)
        responder = _Responder(model, metrics, CHAT, choices, request, slots=slots)
        return await responder.respond(connection)

    app.include_router(v1)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.put("/admin/faults", dependencies=[Depends(api_key_dependency(api_key))])
    async def put_faults(request: Request) -> dict[str, float]:
        try:
            faults.update(**await request.json())
        except (ValueError, TypeError) as exc:
            raise OpenAIHTTPError(400, str(exc)) from exc
        return {
            "fail_rate": faults.fail_rate,
            "stall_rate": faults.stall_rate,
            "stall_s": faults.stall_s,
            "cold_start_s": faults.cold_start_s,
        }

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
