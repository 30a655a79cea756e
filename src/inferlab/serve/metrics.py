"""Prometheus metrics of the model server, named as vLLM names them where vLLM has one.

Times are in simulated seconds (what the H100 would have taken), so a dashboard reads the same
whatever `time_scale` the server runs at. A per-app registry keeps two servers in one process
(tests, notebooks) from mixing their numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..engine.model import SimulatedModel
from ..engine.scheduler import Step

# The *_created series (a timestamp per counter) only add noise for learners reading /metrics.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_STEP_BUCKETS_S = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _LiveGauges(Collector):
    """Read the scheduler's state at scrape time, so the gauges are never stale."""

    def __init__(self, model: SimulatedModel):
        self.model = model

    def collect(self) -> Iterator[Metric]:
        scheduler = self.model.scheduler
        yield GaugeMetricFamily(
            "vllm:num_requests_running", "Sequences in the running batch", self.model.num_running
        )
        yield GaugeMetricFamily(
            "vllm:num_requests_waiting", "Sequences waiting to be admitted", self.model.num_waiting
        )
        yield GaugeMetricFamily(
            "vllm:kv_cache_usage_perc",
            "Fraction of KV-cache token slots reserved (1 = full)",
            scheduler.kv_used_tokens / scheduler.kv_capacity,
        )
        yield GaugeMetricFamily(
            "inferlab:clock_lag_seconds",
            "How late the wall clock woke for the last step (simulated seconds)",
            self.model.lag_s,
        )
        yield GaugeMetricFamily(
            "inferlab:clock_lag_max_seconds",
            "Worst lag since the engine last became busy (simulated seconds)",
            self.model.max_lag_s,
        )


class ServerMetrics:
    def __init__(self, model: SimulatedModel):
        self.registry = CollectorRegistry()
        registry = self.registry
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefilled tokens", registry=registry)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens", registry=registry
        )
        self.request_success = Counter(
            "vllm:request_success", "Finished choices", ["finished_reason"], registry=registry
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token",
            buckets=_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end latency of a choice",
            buckets=_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.step_duration = Histogram(
            "inferlab:step_duration_seconds",
            "Simulated duration of one engine step",
            buckets=_STEP_BUCKETS_S,
            registry=registry,
        )
        self.step_batch_size = Histogram(
            "inferlab:step_batch_size",
            "Sequences computed in one step",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        registry.register(_LiveGauges(model))
        model.step_listeners.append(self._on_step)

    def _on_step(self, step: Step) -> None:
        self.prompt_tokens.inc(sum(seq.prompt_tokens for seq in step.prefill))
        self.generation_tokens.inc(step.batch_size)
        self.step_duration.observe(step.duration_s)
        self.step_batch_size.observe(step.batch_size)

    def observe_choice(self, ttft_s: float, e2e_s: float, finish_reason: str) -> None:
        self.ttft.observe(ttft_s)
        self.e2e.observe(e2e_s)
        self.request_success.labels(finished_reason=finish_reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
