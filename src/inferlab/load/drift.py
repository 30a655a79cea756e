"""The drift guard: does what the client saw agree with the engine's own account?

The simulated accelerator keeps exact time on its own clock, and says so in every answer
(`engine_timing`). The client times the same requests on the wall clock. Converted to simulated
seconds (divided by the server's time scale), the two should agree to within the little that
HTTP costs. When they do not, the machine running the notebook distorted the measurement (a
busy core, a slow laptop, garbage collection), and the figures describe the laptop, not the
H100. No silent nonsense: a run whose times drifted says so in one plain sentence.

    drift = drift_of(run.records)
    if drift and drift.warning: print(drift.warning)

What it cannot tell: a request that waited outside the engine (in a batching proxy's queue, or
behind a server that takes one HTTP request at a time) spent real, simulated-H100 time the
engine never saw. There the two differ by design, so the comparison is meant for requests sent
straight to the server, as `inferlab bench` sends them; it does not print on its own.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..wire.timing import Timing

LIMIT = 0.10  # more than 10% apart: say so


@dataclass(frozen=True)
class Drift:
    """Mean end-to-end latency per request, as the client saw it and as the engine spent it,
    both in simulated seconds."""

    requests: int  # requests whose answer carried the engine's account
    client_e2e_s: float
    engine_e2e_s: float
    time_scale: float

    @property
    def relative(self) -> float:
        """How much longer the client saw than the engine spent (0.4: 40% longer)."""
        return self.client_e2e_s / self.engine_e2e_s - 1 if self.engine_e2e_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return abs(self.relative) <= LIMIT

    @property
    def warning(self) -> str | None:
        """One plain sentence when the two disagree by more than 10%, else None."""
        if self.ok:
            return None
        faster = f" or a slower time scale than {self.time_scale:g}" if self.time_scale < 1 else ""
        return (
            f"Your machine added {self.relative:.0%} to these times: the client saw "
            f"{self.client_e2e_s * 1000:.0f} ms per request where the simulated H100 spent "
            f"{self.engine_e2e_s * 1000:.0f} ms. Close other programs{faster}, then run it again."
        )


def drift_of(records: Sequence[Timing]) -> Drift | None:
    """The drift of a run's successful requests, or None if no answer carried the engine's
    account (a server that is not this course's: vLLM, llama.cpp, Ollama)."""
    accounted = [r for r in records if r.engine is not None and getattr(r, "ok", True)]
    if not accounted:
        return None
    scales = {r.engine.time_scale for r in accounted if r.engine is not None}
    scale = scales.pop() if len(scales) == 1 else 1.0
    return Drift(
        requests=len(accounted),
        client_e2e_s=statistics.fmean(r.e2e_latency_s / scale for r in accounted),
        engine_e2e_s=statistics.fmean(r.engine.e2e_latency_s for r in accounted if r.engine),
        time_scale=scale,
    )
