"""The highest arrival rate that meets a p99 SLO, found by probing and bracketing.

    search = await find_max_rate(measure, start_rate=8, max_rate=256)   # measure(rate) -> Probe
    for probe in search.probes: print(probe.line())
    print(search.why_stopped)        # "bracketed: 16 req/s meets, 18 misses (12% apart)"

How it searches, as `vllm bench sweep serve_sla` and GuideLLM's sweep do in spirit (bracket the
answer between the highest rate that passed and the lowest that failed, then close in):

1. Probe `start_rate`. While it meets, double it (up to `max_rate`); while it misses, halve
   it (down to `min_rate`). This finds a bracket: one rate that meets, the next that misses.
2. Bisect the bracket (geometric mean, since rates span orders of magnitude) until its ends
   are within `tolerance` of each other, or the probe budget is spent.

It assumes that a rate above one that misses also misses. Noise can break that (a lucky probe
meets above an unlucky one), so the answer is the highest rate that met *below* the lowest
that missed, and every probe is kept for the reader to judge. Each probe is an honest verdict
(`probes.judge`): warmed up, queue counted, achieved rate checked, sample size shown.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .clock import REAL_TIME, ModelClock
from .loadgen import run_load
from .probes import Probe, judge
from .workloads import Lengths, Workload, arrival_times, fixed

Measure = Callable[[float], Awaitable[Probe]]


async def probe_rate(
    base_url: str,
    rate: float,
    *,
    p99_target_s: float,
    warmup_s: float = 2.0,
    measure_s: float = 8.0,
    prompt_tokens: Lengths | None = None,
    output_tokens: Lengths | None = None,
    seed: int = 0,
    api_key: str | None = None,
    clock: ModelClock | None = None,
) -> Probe:
    """Offer `rate` req/s (Poisson) for `warmup_s` + `measure_s` and judge it (`probes.judge`).
    With a `clock`, the rate, the durations and the target are in model ("H100") time, and so
    is the probe.

    The run stops `p99_target_s` after the last scheduled arrival: a request still unanswered
    then has already waited longer than the target, so cutting it off and counting it at its
    age cannot turn a miss into a meet, and the probe never waits for a queue to drain.
    """
    num_requests = max(2, math.ceil(rate * (warmup_s + measure_s)))
    workload = Workload(
        num_requests, prompt_tokens or fixed(16), output_tokens or fixed(16), seed=seed
    )
    last_arrival_s = arrival_times(num_requests, rate, seed=seed)[-1]  # the loadgen's schedule
    clock = clock or REAL_TIME
    run = await run_load(
        base_url,
        workload,
        request_rate=rate,
        api_key=api_key,
        clock=clock,
        time_limit_s=clock.wall_s(last_arrival_s + p99_target_s),
    )
    return judge(run.records, offered_rate=rate, p99_target_s=p99_target_s, warmup_s=warmup_s)


@dataclass
class RateSearch:
    """Every probe in the order run, the answer, and why the search stopped."""

    probes: list[Probe] = field(default_factory=list)
    why_stopped: str = ""

    @property
    def lowest_miss(self) -> float:
        return min((p.offered_rate for p in self.probes if not p.meets), default=math.inf)

    @property
    def best(self) -> Probe | None:
        """The highest rate that met, below the lowest that missed (None: none met)."""
        ceiling = self.lowest_miss
        meeting = [p for p in self.probes if p.meets and p.offered_rate < ceiling]
        return max(meeting, key=lambda p: p.offered_rate, default=None)

    def conclusion(self) -> str:
        """The answer and why the search stopped, in two lines."""
        best = self.best
        answer = f"highest rate that meets: {best.offered_rate:.2f} req/s" if best else "none met"
        return f"{answer}\nstopped: {self.why_stopped}"

    def report(self, scale_s: float = 1.0) -> str:
        """Every probe, the answer and the reason it stopped, as lines to print."""
        lines = [f"probe {i + 1}: {p.line(scale_s)}" for i, p in enumerate(self.probes)]
        return "\n".join([*lines, self.conclusion()])


def _check(start_rate: float, min_rate: float, max_rate: float, tolerance: float) -> None:
    if not 0 < min_rate <= start_rate <= max_rate:
        raise ValueError(
            f"need 0 < min_rate <= start_rate <= max_rate, got {min_rate}, {start_rate}, {max_rate}"
        )
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")


async def find_max_rate(
    measure: Measure,
    *,
    start_rate: float,
    min_rate: float | None = None,
    max_rate: float | None = None,
    tolerance: float = 0.1,
    max_probes: int = 10,
) -> RateSearch:
    """Probe `measure(rate)` to find the highest rate whose probe meets, within `tolerance`
    (0.1: the bracket's ends at most 10% apart). Returns every probe and why it stopped.

    Textbook, with a server that meets up to 20 req/s: start 8 -> 8 meets, 16 meets, 32 misses;
    then 22.63 misses, 19.03 meets, 20.75 misses: 9.1% apart -> stop at 19.03.
    """
    low_limit = min_rate if min_rate is not None else start_rate / 64
    high_limit = max_rate if max_rate is not None else start_rate * 64
    _check(start_rate, low_limit, high_limit, tolerance)
    search = RateSearch()

    async def probe(rate: float) -> Probe:
        result = await measure(rate)
        search.probes.append(result)
        return result

    # 1. Find a bracket: double while meeting, halve while missing.
    rate = start_rate
    first = await probe(rate)
    step = 2.0 if first.meets else 0.5
    while True:
        meets = search.probes[-1].meets
        if meets and step < 1:
            break  # halving found a rate that meets, above it one that missed
        if not meets and step > 1:
            break  # doubling found a rate that misses, below it one that met
        if len(search.probes) >= max_probes:
            search.why_stopped = f"the budget of {max_probes} probes was spent finding a bracket"
            return search
        nxt = rate * step
        if nxt > high_limit * (1 + 1e-9) or nxt < low_limit * (1 - 1e-9):
            edge = "ceiling" if step > 1 else "floor"
            verdict = "still meets" if meets else "already misses"
            limit = high_limit if step > 1 else low_limit
            search.why_stopped = f"the {edge} of {limit:g} req/s {verdict}: widen the range"
            return search
        rate = nxt
        await probe(rate)

    # 2. Close in on the edge between the highest meeting rate and the lowest missing one.
    while True:
        best, lowest_miss = search.best, search.lowest_miss
        assert best is not None and math.isfinite(lowest_miss)
        gap = lowest_miss / best.offered_rate - 1
        if gap <= tolerance:
            search.why_stopped = (
                f"bracketed: {best.offered_rate:.2f} req/s meets, {lowest_miss:.2f} misses "
                f"({gap:.1%} apart, within {tolerance:.0%})"
            )
            return search
        if len(search.probes) >= max_probes:
            search.why_stopped = (
                f"the budget of {max_probes} probes was spent: the answer lies between "
                f"{best.offered_rate:.2f} and {lowest_miss:.2f} req/s"
            )
            return search
        await probe(math.sqrt(best.offered_rate * lowest_miss))
