"""serve: the OpenAI-compatible HTTP server over an engine.

`app` holds the routes (completions with a prompt or a list of prompts, chat, SSE streaming,
usage, /health, /metrics); `websocket` streams many requests over one socket (GET /v1/ws);
`schemas` validates requests at the edge, `shapes` builds OpenAI's response bodies, `metrics`
exports the engine's counters for Prometheus, `faults` fails, stalls, delays or breaks
requests on purpose, `_http` is the scaffold every server of the project shares (error bodies,
body limit, API key), and `hosting` runs an app under uvicorn in a thread.

May import: `engine` and `inferlab.errors`.
"""

from .app import DEFAULT_MAX_BODY_BYTES, create_app
from .faults import Faults
from .hosting import UVICORN_DEFAULTS, ServerThread

__all__ = ["DEFAULT_MAX_BODY_BYTES", "UVICORN_DEFAULTS", "Faults", "ServerThread", "create_app"]
