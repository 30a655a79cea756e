"""inferlab: the helper package of a course on serving model inference.

The names below are what the notebooks use; everything else is reachable through its module
(`inferlab.scheduler`, `inferlab.server`, ...), one concept per module.
"""

from ._serving import ServerThread
from ._text import count_tokens
from .batcher import BatcherStats, MicroBatcher
from .client import AsyncClient, Client, Completion, Timing
from .errors import (
    APIStatusError,
    BatchFailedError,
    BatchingError,
    InferlabError,
    InvalidRequestError,
    OverloadedError,
    RequestTimeoutError,
    ServerUnavailableError,
)
from .model import SimulatedModel, Token
from .profiles import PROFILES, Profile, get_profile
from .runtime import base_url, embedded_model, time_scale
from .scheduler import Batching, simulate
from .server import create_app

__version__ = "0.1.0"

__all__ = [
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
    "MicroBatcher",
    "OverloadedError",
    "PROFILES",
    "Profile",
    "RequestTimeoutError",
    "ServerThread",
    "ServerUnavailableError",
    "SimulatedModel",
    "Timing",
    "Token",
    "__version__",
    "base_url",
    "count_tokens",
    "create_app",
    "embedded_model",
    "get_profile",
    "simulate",
    "time_scale",
]
