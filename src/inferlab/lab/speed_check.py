"""How fast the embedded accelerator may run on this machine: a time scale chosen by measuring.

The simulated H100 can run faster than real time (`time_scale=0.1`: ten times faster), which
keeps the lessons short. But the host's own work (HTTP, JSON, Python in the server and in the
client) does not get faster with it: at `time_scale=0.1` every millisecond the host spends
counts as ten milliseconds of "H100 time". So before the embedded server starts serving, the
kernel measures what one request and one engine step cost this machine, and picks the fastest
scale on a short ladder at which that cost stays under a few percent of a decode step:

    1. start the server so fast (`PROBE_SCALE`) that its own sleeps vanish: what is left of a
       request's latency is the host's;
    2. time short answers (one token: the cost of a request) and long streamed ones (64 more
       tokens: the cost of a step), less what the engine says it spent;
    3. per generated token of a typical answer, host cost = step + request / 64;
    4. take the fastest scale at which that is at most `BUDGET` of a decode step's wall time.

The choice is made once per kernel; `INFERLAB_TIME_SCALE` overrides it (the test suite sets it,
so its runs do not depend on how busy the machine is). What it leaves out: a batch of 64 streams
sends 64 chunks a step, not one, and the machine can get busier after the check; the drift guard
(`load/drift.py`) is what notices that, run by run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..engine.profiles import get_profile
from ..wire.client import Client
from ..wire.timing import Timing

LADDER = (0.1, 0.2, 0.5, 1.0)  # fastest first; 1 is real H100 speed
BUDGET = 0.05  # half the 10% the drift guard tolerates, so a run has room for a busier machine
TOKENS_PER_ANSWER = 64  # a typical answer of the lessons: the request's cost spreads over these
PROBE_SCALE = 0.001  # a decode step sleeps ~8 µs: what the probe measures is the host
_PROMPT = "How long does the host take"


@dataclass(frozen=True)
class HostCosts:
    """Wall seconds the host adds, beyond what the simulated accelerator spends."""

    request_s: float  # one request: HTTP both ways, JSON, both processes' Python
    step_s: float  # one engine step: scheduling, and one token sent to the client

    @property
    def per_token_s(self) -> float:
        """Host cost per generated token of a typical answer."""
        return self.step_s + self.request_s / TOKENS_PER_ANSWER


@dataclass(frozen=True)
class ScaleChoice:
    """The time scale the embedded server runs at, and why."""

    time_scale: float
    source: str  # "measured", "INFERLAB_TIME_SCALE", or "external server"
    costs: HostCosts | None = None  # what was measured (None unless source is "measured")
    decode_step_s: float = 0.0  # one decode step of the served model, at H100 speed
    within_budget: bool = True  # False: even real H100 speed costs more than the budget

    def share(self, time_scale: float) -> float:
        """Host cost per token as a share of a decode step's wall time at `time_scale`."""
        if self.costs is None or self.decode_step_s <= 0:
            return 0.0
        return self.costs.per_token_s / (self.decode_step_s * time_scale)

    def explain(self) -> str:
        """What was measured and why this scale, in a few lines a learner can read."""
        if self.source == "external server":
            return "An external server runs in real time: time scale 1, nothing to choose."
        if self.costs is None:
            return f"time_scale {self.time_scale:g}, set by INFERLAB_TIME_SCALE (not measured)."
        costs = self.costs
        per_token = f"host cost per token of a {TOKENS_PER_ANSWER}-token answer:"
        lines = [
            f"{'host cost of one request:':<42}{costs.request_s * 1000:7.3f} ms",
            f"{'host cost of one engine step:':<42}{costs.step_s * 1000:7.3f} ms",
            f"{per_token:<42}{costs.per_token_s * 1000:7.3f} ms",
            f"{'one decode step at H100 speed:':<42}{self.decode_step_s * 1000:7.3f} ms",
        ]
        for scale in LADDER:
            share = self.share(scale)
            verdict = "ok" if share <= BUDGET else "too much"
            lines.append(
                f"  time_scale {scale:<4g}: a step is {self.decode_step_s * scale * 1000:5.2f} ms "
                f"of wall time, the host adds {share:6.1%}  {verdict}"
            )
        if self.within_budget:
            lines.append(
                f"chosen: time_scale {self.time_scale:g}, the fastest at which the host adds "
                f"at most {BUDGET:.0%} of a step"
            )
        else:
            lines.append(
                f"chosen: time_scale {self.time_scale:g} (real H100 speed): this machine is busy "
                f"enough that even then the host adds more than {BUDGET:.0%}"
            )
        return "\n".join(lines)


def choose_time_scale(costs: HostCosts, *, decode_step_s: float) -> ScaleChoice:
    """The fastest scale on the ladder whose host cost per token is within the budget.

    >>> choose_time_scale(HostCosts(request_s=0.004, step_s=0.0), decode_step_s=0.008).time_scale
    0.2
    """
    for scale in LADDER:
        if costs.per_token_s <= BUDGET * decode_step_s * scale:
            return ScaleChoice(scale, "measured", costs, decode_step_s)
    return ScaleChoice(max(LADDER), "measured", costs, decode_step_s, within_budget=False)


def decode_step_s(profile: str) -> float:
    """One decode step of a single sequence of a typical answer's length, at H100 speed."""
    return get_profile(profile).decode_ms([TOKENS_PER_ANSWER]) / 1000


def _host_s(timing: Timing) -> float:
    """What the client waited beyond what the engine spent (in wall seconds)."""
    engine = timing.engine
    spent_s = 0.0 if engine is None else engine.e2e_latency_s * engine.time_scale
    return max(0.0, timing.e2e_latency_s - spent_s)


def measure_host_costs(base_url: str, *, repeats: int = 7) -> HostCosts:
    """Time short and long answers from a server running at `PROBE_SCALE`; medians, so one
    hiccup of the machine does not decide."""
    with Client(base_url) as client:
        client.complete(_PROMPT, max_tokens=1)  # the first request opens the connection

        def one(tokens: int) -> float:
            # streamed, as most lessons' answers are: every token is one chunk on the wire
            answer = client.complete(_PROMPT, max_tokens=tokens, stream=True, ignore_eos=True)
            return _host_s(answer.timing)

        request_s = statistics.median(one(1) for _ in range(repeats))
        long_s = statistics.median(one(TOKENS_PER_ANSWER + 1) for _ in range(repeats))
    return HostCosts(request_s=request_s, step_s=max(0.0, long_s - request_s) / TOKENS_PER_ANSWER)
