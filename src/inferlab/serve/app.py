"""The model server: an OpenAI-compatible HTTP API over a `SimulatedModel`.

    inferlab serve --port 8000            # then: curl localhost:8000/v1/completions -d ...

Routes: POST /v1/completions (a prompt or a list of prompts; one choice per prompt and sample,
index = prompt_number * n + sample), POST /v1/chat/completions, `stream: true` as Server-Sent
Events ending in `data: [DONE]`, GET /v1/models, GET /health, GET /metrics (Prometheus text),
and GET /v1/ws: the same streams over one WebSocket (`websocket.py`).
Every choice of every request is one sequence in the simulated engine, so the prompts of a list
are batched together by the engine's scheduler, exactly as in vLLM. `usage` counts the tokens of
the text (the course's token rule); the end-of-sequence marker costs a step but is not text, so
it is not counted, and `completion_tokens == count_tokens(text)` unless a stop string cut it.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from ..engine.model import SimulatedModel
from ..errors import OpenAIHTTPError
from ._http import Lifecycle, service_app, service_dependency
from ._openapi import json_or_stream
from ._settings import HttpLimits
from .faults import FaultInjection, Faults
from .metrics import ServerMetrics
from .responder import _plan_choices, _Responder
from .schemas import ChatCompletionRequest, CompletionRequest, render_chat
from .settings import ENGINE_KNOBS, ServerSettings
from .shapes import CHAT, COMPLETION
from .vllm_routes import vllm_router
from .websocket import install_websocket

# ---------------------------------------------------------------------------------------------
# The service: one object that owns the engine and its knobs, and the routes that serve it


class ModelServer(Lifecycle):
    """The OpenAI-compatible model server over one `SimulatedModel`, with its settings.

        server = ModelServer(ServerSettings(time_scale=0.1, batching="static"))
        server.app                          # the FastAPI app uvicorn serves
        server.configure(max_num_seqs=8)    # an engine knob, while it runs; checked first

    `max_concurrent_requests=1` makes it serve one HTTP request at a time, like a model wrapped
    in a web framework behind a lock: the prompts of one request are still batched together,
    but separate requests queue. That is the server a client-side batching proxy pays off for.
    `faults` makes a share of requests fail or stall on purpose (see `faults.py`).

    Give `model` to serve a model you built yourself (on a virtual clock, say); the settings
    then only say how the HTTP side behaves, and giving engine settings too is an error.
    """

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        model: SimulatedModel | None = None,
        faults: Faults | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings or ServerSettings()
        self.model = model if model is not None else _model_for(self.settings)
        self.faults = faults or Faults()
        self.metrics = ServerMetrics(self.model)
        limit = self.settings.max_concurrent_requests
        self.slots: AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(limit) if limit else nullcontext()
        )
        self.app = service_app(
            "inferlab model server",
            self,
            routers=[router],
            api_key=self.settings.api_key,
            max_body_bytes=self.settings.max_body_bytes,
            http_limits=self.settings.http_limits,
            metrics=self.metrics.render,
        )
        self.app.include_router(vllm_router(self.model, api_key=self.settings.api_key))
        install_websocket(  # GET /v1/ws: many streamed requests over one socket
            self.app, self.model, self.metrics, api_key=self.settings.api_key, slots=self.slots
        )
        self.app.add_middleware(FaultInjection, faults=self.faults, api_key=self.settings.api_key)

    def configure(self, **knobs: Any) -> ServerSettings:
        """Change the engine's knobs (batching, max_num_seqs, kv_capacity_tokens) while it runs;
        a bad or unknown value raises before anything changes. Returns the new settings."""
        unknown = sorted(set(knobs) - set(ENGINE_KNOBS))
        if unknown:
            raise TypeError(f"{unknown[0]!r} cannot change while serving; can: {ENGINE_KNOBS}")
        changed = self.settings.replace(**knobs)
        self.model.configure(**{name: getattr(changed, name) for name in ENGINE_KNOBS})
        self.settings = changed
        return changed

    def engine_knobs(self) -> dict[str, Any]:
        return {name: getattr(self.settings, name) for name in ENGINE_KNOBS}

    async def _close(self) -> None:
        await self.model.aclose()

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.model.name:
            raise OpenAIHTTPError(
                404,
                f"The model `{requested}` does not exist. This server serves `{self.model.name}`.",
                param="model",
                code="model_not_found",
            )


def _model_for(settings: ServerSettings) -> SimulatedModel:
    return SimulatedModel(
        settings.profile,
        batching=settings.batching,
        max_num_seqs=settings.max_num_seqs,
        kv_capacity_tokens=settings.kv_capacity_tokens,
        time_scale=settings.time_scale,
        name=settings.served_model_name,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        enable_chunked_prefill=settings.enable_chunked_prefill,
        block_size=settings.block_size,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        enable_prefix_caching=settings.enable_prefix_caching,
        num_gpu_blocks_override=settings.num_gpu_blocks_override,
        max_model_len=settings.max_model_len,
        api_server_cost=settings.api_server_cost,
        num_scheduler_steps=settings.num_scheduler_steps,
    )


router = APIRouter()
_server = service_dependency(ModelServer)


@router.get("/v1/models")
async def list_models(server: ModelServer = _server) -> dict[str, Any]:
    model = server.model
    card = {
        "id": model.name,
        "object": "model",
        "created": 0,
        "owned_by": "inferlab",
        "max_model_len": model.profile.max_model_len,
    }
    return {"object": "list", "data": [card]}


@router.post("/v1/completions", responses=json_or_stream("A completion, or its stream"))
async def completions(
    request: CompletionRequest, connection: Request, server: ModelServer = _server
) -> Response:
    server.check_model(request.model)
    budget = server.settings.max_tokens_per_request
    choices = _plan_choices(server.model, request.prompts, request, request.max_tokens, budget)
    return await _Responder(
        server.model, server.metrics, COMPLETION, choices, request, request.echo, server.slots
    ).respond(connection)


@router.post("/v1/chat/completions", responses=json_or_stream("A chat completion, or its stream"))
async def chat_completions(
    request: ChatCompletionRequest, connection: Request, server: ModelServer = _server
) -> Response:
    server.check_model(request.model)
    prompt = render_chat(request.messages)
    budget = server.settings.max_tokens_per_request
    choices = _plan_choices(server.model, [prompt], request, request.completion_limit, budget)
    return await _Responder(
        server.model, server.metrics, CHAT, choices, request, slots=server.slots
    ).respond(connection)


@router.put("/admin/faults")
async def put_faults(
    request: Request, server: ModelServer = _server
) -> dict[str, float | int | None]:
    """Change some fault settings (all or nothing); the answer is every setting now in force."""
    try:
        server.faults.update(**await request.json())
    except (ValueError, TypeError) as exc:
        raise OpenAIHTTPError(400, str(exc)) from exc
    return server.faults.settings()


@router.get("/admin/engine")
async def get_engine(server: ModelServer = _server) -> dict[str, Any]:
    """The engine's knobs that may change while it runs, and its time scale."""
    return {**server.engine_knobs(), "time_scale": server.model.time_scale}


@router.put("/admin/engine")
async def put_engine(request: Request, server: ModelServer = _server) -> dict[str, Any]:
    try:
        server.configure(**await request.json())
    except (ValueError, TypeError) as exc:
        raise OpenAIHTTPError(400, str(exc)) from exc
    return {**server.engine_knobs(), "time_scale": server.model.time_scale}


def create_app(
    model: SimulatedModel | None = None,
    *,
    faults: Faults | None = None,
    **settings: Any,
) -> FastAPI:
    """The app of a new `ModelServer`: `create_app(time_scale=0.1)` is
    `ModelServer(ServerSettings(time_scale=0.1)).app`. Unknown settings raise TypeError.

    >>> app = create_app(profile="h100-llama3-1b", batching="static", time_scale=0.1)
    """
    engine_settings = sorted(set(settings) & _ENGINE_SETTINGS)
    if model is not None and engine_settings:
        raise TypeError(
            f"{engine_settings[0]!r} is the model's to set: give it to SimulatedModel, or "
            "leave `model` out and the server builds one with these settings"
        )
    return ModelServer(ServerSettings.from_dict(settings), model=model, faults=faults).app


# What builds the model; the rest of ServerSettings is the HTTP side.
_ENGINE_SETTINGS = set(ServerSettings.__dataclass_fields__) - {
    "max_concurrent_requests",
    "max_body_bytes",
    "max_tokens_per_request",
    "api_key",
    *HttpLimits.__dataclass_fields__,
}
