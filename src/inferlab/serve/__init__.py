"""serve: the OpenAI-compatible HTTP server over an engine.

`app` holds `ModelServer`, one object per running server (its engine, faults, metrics and
typed `settings`), and its routes: completions with a prompt or a list of prompts, chat, SSE
streaming, usage, /health, /metrics, and /admin to turn knobs while it runs. `websocket`
streams many requests over one socket (GET /v1/ws). `schemas` validates requests at the edge,
`shapes` builds OpenAI's response bodies, `metrics` exports the engine's counters for
Prometheus, `faults` fails, stalls, delays or breaks requests on purpose, `_http` is the
scaffold every service of the project shares (lifecycle, error bodies, body limit, API key),
`settings` and `_settings` are the typed knobs (the HTTP limits every service shares among them),
`http_limits` enforces those limits under uvicorn, `_openapi` is what the documents add, and
`hosting` runs an app in a thread or a process of its own.

May import: `engine` and `inferlab.errors`.
"""

from ._http import ServiceState
from .app import ModelServer, create_app
from .faults import Faults
from .hosting import UVICORN_DEFAULTS, ServerProcess, ServerThread
from .settings import DEFAULT_MAX_BODY_BYTES, ServerSettings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "UVICORN_DEFAULTS",
    "Faults",
    "ModelServer",
    "ServerProcess",
    "ServerSettings",
    "ServerThread",
    "ServiceState",
    "create_app",
]
