"""Serving metrics, in vLLM's benchmark vocabulary: what one load run measured, summed up.

    records = run.records                       # one RequestResult per request (loadgen.py)
    summary = summarize(records, slo=SLO(ttft_s=0.2))
    print(summary.table())

Latency is split the way a user feels it: queue delay (scheduled -> sent, the load generator's
own backlog), TTFT (sent -> first token), TPOT (time per output token after the first), ITL
(each gap between tokens), end-to-end (sent -> last token). Percentiles, not means: a p99 is
what one request in a hundred gets, and with enough users that is someone every second.
Goodput, as vLLM defines it: requests per second that met every SLO.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..wire.timing import Timing
from .clock import ModelClock
from .drift import Drift, drift_of

PERCENTILES = (50, 90, 95, 99)
_LATENCIES = ("e2e", "ttft", "tpot", "itl", "queue_delay")


@dataclass(kw_only=True)
class RequestResult(Timing):
    """One request of a load run: its `Timing` (TTFT, TPOT, ITL and E2E defined there, once)
    and the run's bookkeeping. Times are `time.perf_counter()` seconds."""

    index: int
    scheduled_s: float  # when the load generator meant to send it
    ok: bool = True
    error_type: str | None = None  # the exception's class name, e.g. "APIStatusError"
    error: str | None = None
    prompt_tokens: int = 0
    acked_s: float | None = None  # job API only: when the acknowledgement (202) arrived

    @property
    def ack_latency_s(self) -> float | None:
        return None if self.acked_s is None else self.acked_s - self.sent_s

    @property
    def queue_delay_s(self) -> float:
        return self.sent_s - self.scheduled_s


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation (numpy's default).

    percentile([1, 2, 3, 4], 50) -> 2.5;  percentile([1, 2, 3, 4], 100) -> 4
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class SLO:
    """Service-level objectives; a request is 'good' when it meets every one that is set."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None

    def met_by(self, record: RequestResult) -> bool:
        if not record.ok:
            return False
        checks = [
            (self.ttft_s, record.ttft_s),
            (self.e2e_s, record.e2e_latency_s),
            (self.tpot_s, record.tpot_s or 0.0),
        ]
        return all(limit is None or value <= limit for limit, value in checks)


@dataclass(frozen=True)
class Distribution:
    """Mean and percentiles of one latency, in seconds."""

    mean: float
    p50: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        mean = statistics.fmean(values) if values else math.nan
        return cls(mean, *(percentile(values, q) for q in PERCENTILES))

    def converted(self, clock: ModelClock) -> Distribution:
        """The same latencies in model seconds."""
        return Distribution(
            *(clock.model_s(v) for v in (self.mean, self.p50, self.p90, self.p95, self.p99))
        )


@dataclass(frozen=True)
class LittlesLaw:
    """L = λW: the mean number in flight, measured by sampling, against arrival rate × latency."""

    sampled_in_flight: float  # L, from samples taken on a clock during the run
    arrival_rate: float  # λ, requests per second
    mean_latency_s: float  # W

    @property
    def predicted_in_flight(self) -> float:
        return self.arrival_rate * self.mean_latency_s

    @property
    def relative_error(self) -> float:
        return abs(self.sampled_in_flight - self.predicted_in_flight) / self.predicted_in_flight


@dataclass(frozen=True)
class Summary:
    requests: int
    failed: int
    duration_s: float
    request_throughput: float  # completed requests per second
    output_throughput: float  # generated tokens per second
    goodput: float | None  # requests per second that met the SLO
    e2e: Distribution
    ttft: Distribution
    tpot: Distribution
    itl: Distribution
    queue_delay: Distribution
    errors: dict[str, int]
    littles_law: LittlesLaw | None = None
    ack: Distribution | None = None  # job API runs: submit -> acknowledgement
    drift: Drift | None = None  # the client's times against the engine's own account

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def in_model_time(self, clock: ModelClock) -> Summary:
        """This summary in model ("H100") time: latencies divided by the time scale, rates
        multiplied by it. For a summary of wall-clock records; `run_load(..., clock=...)`
        gives one in model time already."""
        law = self.littles_law
        return dataclasses.replace(
            self,
            duration_s=clock.model_s(self.duration_s),
            request_throughput=clock.model_rate(self.request_throughput),
            output_throughput=clock.model_rate(self.output_throughput),
            goodput=None if self.goodput is None else clock.model_rate(self.goodput),
            **{name: getattr(self, name).converted(clock) for name in _LATENCIES},
            ack=None if self.ack is None else self.ack.converted(clock),
            littles_law=None
            if law is None
            else LittlesLaw(
                law.sampled_in_flight,  # a count: the same on every clock
                clock.model_rate(law.arrival_rate),
                clock.model_s(law.mean_latency_s),
            ),
        )

    def table(self) -> str:
        """A readable table, as `vllm bench serve` prints one."""
        lines = [
            f"{'requests':<28}{self.requests:>12}",
            f"{'failed':<28}{self.failed:>12}   ({self.error_rate:.1%})",
            f"{'duration (s)':<28}{self.duration_s:>12.2f}",
            f"{'throughput (req/s)':<28}{self.request_throughput:>12.2f}",
            f"{'output tokens/s':<28}{self.output_throughput:>12.1f}",
        ]
        if self.goodput is not None:
            lines.append(f"{'goodput (req/s within SLO)':<28}{self.goodput:>12.2f}")
        lines.append(f"\n{'(ms)':<16}{'mean':>9}{'p50':>9}{'p90':>9}{'p95':>9}{'p99':>9}")
        names = ["e2e", "ttft", "tpot", "itl", "queue_delay"] + (["ack"] if self.ack else [])
        for name in names:
            d: Distribution = getattr(self, name)
            values = (d.mean, d.p50, d.p90, d.p95, d.p99)
            cells = ("-" if math.isnan(v) else f"{v * 1000:.1f}" for v in values)
            lines.append(f"{name:<16}" + "".join(f"{cell:>9}" for cell in cells))
        for error, count in sorted(self.errors.items()):
            lines.append(f"error {error}: {count}")
        if self.littles_law is not None:
            law = self.littles_law
            lines.append(
                f"\nLittle's law: sampled L = {law.sampled_in_flight:.2f} in flight, "
                f"λW = {law.predicted_in_flight:.2f} ({law.relative_error:.1%} apart)"
            )
        if self.drift is not None and self.drift.warning:
            lines.append("\n" + self.drift.warning)
        return "\n".join(lines)


def summarize(
    records: Sequence[RequestResult],
    *,
    duration_s: float | None = None,
    slo: SLO | None = None,
    in_flight_samples: Sequence[int] = (),
) -> Summary:
    """Sum a run up. `duration_s` defaults to first send -> last answer.

    Textbook: two requests, sent at 0 s and 1 s, done at 2 s and 3 s, 10 tokens each:
    duration 3 s, 2/3 req/s, 20/3 tokens/s, e2e mean 2 s.
    """
    good = [r for r in records if r.ok]
    if duration_s is None:
        duration_s = (
            (max(r.done_s for r in records) - min(r.sent_s for r in records)) if records else 0.0
        )
    per_s = 1 / duration_s if duration_s > 0 else math.nan
    errors: dict[str, int] = {}
    for record in records:
        if not record.ok:
            errors[record.error_type or "error"] = errors.get(record.error_type or "error", 0) + 1
    law = None
    if in_flight_samples and good:
        law = LittlesLaw(
            statistics.fmean(in_flight_samples),
            len(records) * per_s,
            statistics.fmean(r.e2e_latency_s for r in records),
        )
    return Summary(
        requests=len(records),
        failed=len(records) - len(good),
        duration_s=duration_s,
        request_throughput=len(good) * per_s,
        output_throughput=sum(r.output_tokens for r in good) * per_s,
        goodput=sum(slo.met_by(r) for r in records) * per_s if slo else None,
        e2e=Distribution.of([r.e2e_latency_s for r in good]),
        ttft=Distribution.of([r.ttft_s for r in good]),
        tpot=Distribution.of([t for r in good if (t := r.tpot_s) is not None]),
        itl=Distribution.of([gap for r in good for gap in r.itl_s]),
        queue_delay=Distribution.of([r.queue_delay_s for r in records]),
        errors=errors,
        littles_law=law,
        ack=Distribution.of(acks)
        if (acks := [a for r in good if (a := r.ack_latency_s)])
        else None,
        drift=drift_of(records),
    )
