"""inferlab: the helper package of a course on serving model inference.

Read it in the order data flows, which is also the order of the lessons (`README.md` beside
this file draws the map):

    engine  →  serve  →  wire  →  batching  →  proxy, jobs  →  load  →  lab  →  cli
    the        the HTTP  clients  the micro-    the two       load      what    the
    simulated  server             batcher       services      tools     note-   commands
    GPU                                                                 books
                                                                        use

Each subpackage may import only from those to its left (a test checks it). The names below
are what the notebooks use most; they load on first use, so `import inferlab` is quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from .errors import (
    APIStatusError,
    BatchFailedError,
    BatchingError,
    InferlabError,
    InvalidRequestError,
    JobFailedError,
    OverloadedError,
    RequestTimeoutError,
    ServerUnavailableError,
)

if TYPE_CHECKING:
    from .batching import BatcherStats, MicroBatcher
    from .engine import (
        PROFILES,
        Batching,
        Profile,
        SimulatedModel,
        Token,
        count_tokens,
        get_profile,
        simulate,
    )
    from .lab import base_url, embedded_model, model_clock, time_scale
    from .load import ModelClock
    from .serve import ServerThread, create_app
    from .wire import AsyncClient, Client, Completion, Timing, WebSocketClient

__version__ = "0.1.0"

SUBPACKAGES = ("engine", "serve", "wire", "batching", "proxy", "jobs", "load", "lab", "cli")

_WHERE = {
    # the subpackages themselves, so that `inferlab.load.run_load` works after `import inferlab`
    **{package: "." for package in SUBPACKAGES},
    "BatcherStats": ".batching",
    "MicroBatcher": ".batching",
    "PROFILES": ".engine",
    "Batching": ".engine",
    "Profile": ".engine",
    "SimulatedModel": ".engine",
    "Token": ".engine",
    "count_tokens": ".engine",
    "get_profile": ".engine",
    "simulate": ".engine",
    "base_url": ".lab",
    "embedded_model": ".lab",
    "model_clock": ".lab",
    "time_scale": ".lab",
    "ModelClock": ".load",
    "ServerThread": ".serve",
    "create_app": ".serve",
    "AsyncClient": ".wire",
    "Client": ".wire",
    "Completion": ".wire",
    "Timing": ".wire",
    "WebSocketClient": ".wire",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

__all__ = [
    "PROFILES",
    "SUBPACKAGES",
    "APIStatusError",
    "AsyncClient",
    "BatchFailedError",
    "BatcherStats",
    "Batching",
    "BatchingError",
    "Client",
    "Completion",
    "InferlabError",
    "InvalidRequestError",
    "JobFailedError",
    "MicroBatcher",
    "ModelClock",
    "OverloadedError",
    "Profile",
    "RequestTimeoutError",
    "ServerThread",
    "ServerUnavailableError",
    "SimulatedModel",
    "Timing",
    "Token",
    "WebSocketClient",
    "__version__",
    "base_url",
    "count_tokens",
    "create_app",
    "embedded_model",
    "get_profile",
    "model_clock",
    "simulate",
    "time_scale",
]
