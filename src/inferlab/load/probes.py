"""One honest probe of a load level: did this arrival rate meet a p99 latency target?

    probe = judge(run.records, offered_rate=20, p99_target_s=0.5, warmup_s=2.0, ended_s=...)
    probe.meets, probe.why       # False, "achieved 14.1 of 20.0 req/s: the load generator lagged"

Three ways a p99 measured by a load generator lies, and what this module does about each:

1. **A cold start.** The first seconds of a run meet an empty queue and idle batches. Requests
   scheduled during the warm-up are sent, but left out of the figures.
2. **The queue it hides.** A p99 over the requests that *finished* leaves out those still
   waiting when the run ended, and they are the slowest of all. Each one counts at its age (how
   long it had waited by then): a lower bound on its latency, and enough to see a queue grow.
3. **A rate never offered.** When the load generator itself falls behind (a busy laptop), the
   server meets a lighter load than the one asked for, and a good p99 says nothing about the
   rate on the label. A probe "meets" only when the achieved arrival rate matches the schedule.

Every verdict carries its sample size: a p99 of 40 requests is the second-slowest of them.
Left out: confidence intervals; run a probe longer when its sample is small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .metrics import RequestResult, percentile

RATE_TOLERANCE = 0.10  # achieved within 10% of the schedule's own rate counts as "as offered"
STILL_WAITING = "TimeLimitExceeded"  # the load generator's record of a request cut off at the end


@dataclass(frozen=True)
class Probe:
    """One load level measured: what was offered, what arrived, the p99, and the verdict."""

    offered_rate: float  # requests per second asked for
    # Requests per second the load generator really sent, on the offered rate's scale: the
    # measured sends' rate times offered / the random schedule's own rate (scheduled_rate).
    achieved_rate: float
    scheduled_rate: float  # the rate the random schedule itself came out at, for these requests
    p99_s: float  # over finished requests and those still waiting, at their age; inf if failed
    samples: int  # requests behind the p99 (after the warm-up)
    still_waiting: int  # of those, unfinished when the run ended (counted at their age)
    failed: int  # of those, answered with an error (counted as infinitely slow)
    lag_p99_s: float  # the load generator's own lag: p99 of (sent - scheduled)
    p99_target_s: float
    meets: bool
    why: str

    def line(self, scale_s: float = 1.0) -> str:
        """One printable line; times divided by `scale_s` (1: as measured)."""
        p99 = "inf" if math.isinf(self.p99_s) else f"{self.p99_s / scale_s * 1000:.0f} ms"
        return (
            f"offered {self.offered_rate:7.2f} req/s, achieved {self.achieved_rate:7.2f}: "
            f"p99 {p99:>8} of n={self.samples} ({self.still_waiting} still waiting, "
            f"{self.failed} failed), lag p99 {self.lag_p99_s / scale_s * 1000:.0f} ms: "
            f"{'meets' if self.meets else 'misses'} ({self.why})"
        )


def sent_rate(times_s: Sequence[float]) -> float:
    """Arrivals per second over a list of send times: gaps between the first and the last.

    sent_rate([0.0, 0.5, 1.0, 1.5]) -> 2.0  (three gaps in 1.5 s)
    """
    if len(times_s) < 2:
        return math.nan
    span = max(times_s) - min(times_s)
    return (len(times_s) - 1) / span if span > 0 else math.inf


def judge(
    records: Sequence[RequestResult],
    *,
    offered_rate: float,
    p99_target_s: float,
    warmup_s: float = 0.0,
    min_samples: int = 20,
) -> Probe:
    """The verdict on one open-loop run at `offered_rate`: requests scheduled in the first
    `warmup_s` seconds are left out; requests cut off at the run's end count at their age,
    failures as infinitely slow. It meets when the p99 is within the target, the achieved
    arrival rate is within 10% of the schedule's, and at least `min_samples` were measured.

    Textbook: 100 requests measured, 97 in 0.2 s, 3 still waiting at 0.9 s; target 0.5 s ->
    p99 0.9 s of n=100 (the 99th percentile lands among the three): misses.
    """
    if not records:
        return _verdict(offered_rate, math.nan, math.nan, math.nan, [], 0, 0, p99_target_s)
    start_s = min(r.scheduled_s for r in records)
    measured = [r for r in records if r.scheduled_s >= start_s + warmup_s]
    latencies: list[float] = []
    still_waiting = failed = 0
    for record in measured:
        if record.ok:
            latencies.append(record.e2e_latency_s)
        elif record.error_type == STILL_WAITING:
            still_waiting += 1
            latencies.append(record.done_s - record.sent_s)  # its age when the run ended
        else:
            failed += 1
            latencies.append(math.inf)
    # subtle: compare the sends with the schedule of the same requests, not with the nominal
    # rate: a short random schedule is itself 10% off its nominal rate now and then, and that
    # is the load's doing, not the load generator's.
    schedule_rate = sent_rate([r.scheduled_s for r in measured])
    achieved = sent_rate([r.sent_s for r in measured])
    if math.isfinite(offered_rate) and schedule_rate > 0:
        achieved = achieved * offered_rate / schedule_rate  # on the nominal rate's scale
    lags = [r.sent_s - r.scheduled_s for r in measured]
    lag_p99 = percentile(lags, 99) if lags else math.nan
    return _verdict(
        offered_rate,
        achieved,
        schedule_rate,
        lag_p99,
        latencies,
        still_waiting,
        failed,
        p99_target_s,
        min_samples,
    )


def _verdict(
    offered_rate: float,
    achieved_rate: float,
    scheduled_rate: float,
    lag_p99_s: float,
    latencies: list[float],
    still_waiting: int,
    failed: int,
    p99_target_s: float,
    min_samples: int = 20,
) -> Probe:
    p99 = _p99(latencies)
    meets, why = verdict(
        p99_s=p99,
        samples=len(latencies),
        achieved_rate=achieved_rate,
        offered_rate=offered_rate,
        p99_target_s=p99_target_s,
        min_samples=min_samples,
    )
    return Probe(
        offered_rate=offered_rate,
        achieved_rate=achieved_rate,
        scheduled_rate=scheduled_rate,
        p99_s=p99,
        samples=len(latencies),
        still_waiting=still_waiting,
        failed=failed,
        lag_p99_s=lag_p99_s,
        p99_target_s=p99_target_s,
        meets=meets,
        why=why,
    )


def verdict(
    *,
    p99_s: float,
    samples: int,
    achieved_rate: float,
    offered_rate: float,
    p99_target_s: float,
    min_samples: int = 20,
) -> tuple[bool, str]:
    """Meets, and why: enough samples, the rate really offered, then the p99 within target.

    verdict(p99_s=0.3, samples=100, achieved_rate=50, offered_rate=300, p99_target_s=0.5)
    -> (False, "the load generator fell behind: ...")
    """
    as_offered = not math.isfinite(offered_rate) or (
        achieved_rate >= (1 - RATE_TOLERANCE) * offered_rate
    )
    if samples < min_samples:
        return False, f"only {samples} requests measured, {min_samples} needed"
    if not as_offered:
        return False, "the load generator fell behind: not the rate offered"
    if not p99_s <= p99_target_s:
        return False, f"p99 over the {p99_target_s * 1000:g} ms target"
    return True, f"p99 within the {p99_target_s * 1000:g} ms target"


def _p99(latencies: list[float]) -> float:
    if not latencies:
        return math.nan
    if any(math.isinf(value) for value in latencies):
        # percentile() interpolates; with infinities that gives nan. Rank them instead.
        ordered = sorted(latencies)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * (len(ordered) - 1)))]
    return percentile(latencies, 99)
