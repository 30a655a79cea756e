"""vLLM's own routes beside the OpenAI API: /tokenize, /detokenize, /version, /reset_prefix_cache.

As vLLM's `vllm/entrypoints/openai/api_server.py` serves them:

    curl localhost:8000/tokenize -d '{"prompt": "Hello, world!"}'
        -> {"count": 4, "max_model_len": 8192, "tokens": [...], "token_strs": null}
    curl localhost:8000/detokenize -d '{"tokens": [...]}'   -> {"prompt": "Hello, world!"}
    curl localhost:8000/version                              -> {"version": "0.1.0"}
    curl -X POST localhost:8000/reset_prefix_cache           -> 200

One difference on purpose: vLLM answers 200 to /reset_prefix_cache even when it could not
reset (blocks still in use; it only logs that); this server says so, with a 409.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from ..engine.model import SimulatedModel
from ..engine.text import detokenize, token_ids
from ..errors import OpenAIHTTPError
from ._http import api_key_dependency
from .schemas import ChatMessage, WholeNumber, render_chat

try:  # the installed package's version, as vLLM reports `vllm.__version__`
    _VERSION = metadata.version("inferlab")
except metadata.PackageNotFoundError:  # run from a source tree without installing
    _VERSION = "0+unknown"


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    return_token_strs: bool = False


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = None
    tokens: list[WholeNumber]


def vllm_router(model: SimulatedModel, *, api_key: str | None = None) -> APIRouter:
    """The routes above, over `model`; `api_key` guards the one that changes state."""
    router = APIRouter()

    @router.post("/tokenize")
    async def tokenize(request: TokenizeRequest) -> dict[str, Any]:
        if (request.prompt is None) == (request.messages is None):
            raise OpenAIHTTPError(400, "send exactly one of `prompt` or `messages`")
        text = request.prompt if request.prompt is not None else render_chat(request.messages or [])
        tokens = token_ids(text)
        strs = [detokenize([token]) for token in tokens] if request.return_token_strs else None
        return {
            "count": len(tokens),
            "max_model_len": model.profile.max_model_len,
            "tokens": tokens,
            "token_strs": strs,
        }

    @router.post("/detokenize")
    async def detokenize_route(request: DetokenizeRequest) -> dict[str, str]:
        try:
            return {"prompt": detokenize(request.tokens)}
        except ValueError as exc:
            raise OpenAIHTTPError(400, str(exc), param="tokens") from exc

    @router.get("/version")
    async def version() -> dict[str, str]:
        return {"version": _VERSION}

    @router.post(
        "/reset_prefix_cache",
        dependencies=[Depends(api_key_dependency(api_key))],
        response_class=Response,  # an empty 200, as vLLM's: the document must not say JSON
        responses={200: {"description": "The cache is empty now (no body)"}},
    )
    async def reset_prefix_cache() -> Response:
        if not model.reset_prefix_cache():
            raise OpenAIHTTPError(
                409,
                "Failed to reset prefix cache because some blocks are not freed yet; "
                "retry when no request is running",
            )
        return Response(status_code=200)

    return router
