"""wire: what travels between a caller and a server, seen from the caller's side.

`client` holds the timed clients (`Client`, `AsyncClient`) and their one timing record;
`websocket` streams many requests over one socket (`WebSocketClient`); `sse`
reads Server-Sent Events and turns OpenAI error bodies back into exceptions; `upstream` is the
client that the batching proxy and the job workers share to call a model server with a list of
prompts and split the answer back per caller; `warm_up` opens connections before a
measurement, resending what a server dropped unanswered. Under the async ones, `_http1` is a
lean HTTP/1.1 transport for httpx: the same API, a fraction of the CPU, a pool that does not
slow down as requests queue.

May import: `engine` (the token rule) and `inferlab.errors`; never a server.
"""

from ..errors import UpstreamError
from .client import DEFAULT_TIMEOUT, AsyncClient, Client, Completion
from .timing import Timing
from .upstream import Call, Reply, Upstream, batch_key
from .warmup import warm_up
from .websocket import WebSocketClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "Call",
    "Client",
    "Completion",
    "Reply",
    "Timing",
    "Upstream",
    "UpstreamError",
    "WebSocketClient",
    "batch_key",
    "warm_up",
]
