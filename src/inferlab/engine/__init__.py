"""engine: the simulated accelerator, with no I/O.

A measured cost profile (`profiles`) says how long a step takes; a clock (`clock`) sleeps for
it, scaled or virtual; deterministic text (`text`) fills the tokens; the scheduler
(`scheduler`) decides which sequences run each step, as vLLM's does; the API server's own work
(`api_server`) comes before and after it; the model (`model`) runs
that loop and hands each sequence its tokens. `simulate()` runs the same scheduler in virtual
time: the reference every live measurement is checked against.

May import: the standard library and `inferlab.errors`. Nothing here knows about HTTP.
"""

from .api_server import ApiServerCost
from .clock import ManualClock, ScaledClock, VirtualClock
from .config import Batching, SchedulerConfig
from .model import SimulatedModel, Token
from .profiles import DEFAULT_PROFILE, PROFILES, Profile, calibration, get_profile
from .scheduler import Scheduler, Sequence, Step
from .text import count_tokens, detokenize, generate_tokens, token_ids
from .timing import EngineTiming
from .virtual_time import simulate

__all__ = [
    "ApiServerCost",
    "DEFAULT_PROFILE",
    "PROFILES",
    "Batching",
    "ManualClock",
    "Profile",
    "ScaledClock",
    "Scheduler",
    "SchedulerConfig",
    "Sequence",
    "SimulatedModel",
    "Step",
    "EngineTiming",
    "Token",
    "VirtualClock",
    "calibration",
    "count_tokens",
    "detokenize",
    "generate_tokens",
    "get_profile",
    "simulate",
    "token_ids",
]
