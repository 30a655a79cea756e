"""Prometheus metrics of the model server: vLLM v1's families, names, kinds and buckets.

Follows `vllm/v1/metrics/loggers.py` (`PrometheusStatLogger`): every `vllm:` series carries
`model_name` and `engine` labels, so a vLLM Grafana dashboard or an inference gateway's router
reads this server as it reads vLLM. The request intervals follow vLLM's definitions
(`vllm/v1/metrics/stats.py`): queue = waiting until first scheduled; prefill = scheduled until
first token; decode = first token until last; inference = prefill + decode; TTFT and e2e from
arrival. Times are simulated seconds (what the H100 would have taken), so a dashboard reads the
same whatever `time_scale` the server runs at. A per-app registry keeps two servers in one
process (tests, notebooks) from mixing their numbers. `inferlab:` series are this course's own.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..engine.model import SimulatedModel
from ..engine.scheduler import Sequence, Step

# The *_created series (a timestamp per counter) only add noise for learners reading /metrics.
disable_created_metrics()  # type: ignore[no-untyped-call]

# vLLM's bucket boundaries (vllm/v1/metrics/loggers.py), so its dashboards' quantiles line up.
_TTFT_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
)
_TTFT_BUCKETS_S += (2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_ITL_BUCKETS_S: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
)
_ITL_BUCKETS_S += (5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
_REQUEST_BUCKETS_S: tuple[float, ...] = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
)
_REQUEST_BUCKETS_S += (50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
_ITERATION_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
_STEP_BUCKETS_S = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LABELS = ("model_name", "engine")


def one_two_five_buckets(max_value: int) -> list[int]:
    """vLLM's `build_1_2_5_buckets`: 1, 2, 5, 10, 20, 50, ... up to `max_value`.

    >>> one_two_five_buckets(100)
    [1, 2, 5, 10, 20, 50, 100]
    """
    buckets: list[int] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return buckets
            buckets.append(value)
        exponent += 1


class _TokenHistogram(Collector):
    """A labelled Prometheus histogram observed once per *token*: plain counters and bisect,
    about a tenth of prometheus_client's `observe()` (a lock and a loop over the buckets each
    time), which at 256 sequences a step was most of the step loop's time."""

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...], labels: dict[str, str]):
        self.name, self.doc, self.labels = name, doc, labels
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=list(self.labels))
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric(list(self.labels.values()), buckets, self.total)
        yield family


class _LiveState(Collector):
    """Read the scheduler's state at scrape time, so gauges and its counters are never stale."""

    def __init__(self, model: SimulatedModel, labels: dict[str, str]):
        self.model, self.labels = model, labels

    def _family(self, kind: type, name: str, doc: str, value: float) -> Metric:
        family = kind(name, doc, labels=list(self.labels))
        family.add_metric(list(self.labels.values()), value)
        return family  # type: ignore[no-any-return]

    def collect(self) -> Iterator[Metric]:
        scheduler = self.model.scheduler
        stats = scheduler.prefix_cache_stats
        gauge, counter = GaugeMetricFamily, CounterMetricFamily
        live = (  # (kind, vLLM's name, vLLM's help text, value now)
            (gauge, "vllm:num_requests_running", "Number of requests in model execution batches.",
             self.model.num_running),
            (gauge, "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
             self.model.num_waiting),
            (gauge, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
             scheduler.pool.usage),
            (counter, "vllm:num_preemptions", "Cumulative number of preemption from the engine.",
             scheduler.num_preemptions),
            (counter, "vllm:prefix_cache_queries",
             "Prefix cache queries, in terms of number of queried tokens.", stats.queries),
            (counter, "vllm:prefix_cache_hits",
             "Prefix cache hits, in terms of number of cached tokens.", stats.hits),
        )  # fmt: skip
        for kind, name, doc, value in live:
            yield self._family(kind, name, doc, value)
        yield self._cache_config_info()
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

    def _cache_config_info(self) -> Metric:
        """vLLM's `vllm:cache_config_info`: the cache settings as labels of a gauge set to 1."""
        config = self.model.scheduler.config
        info = {
            "block_size": str(config.block_size),
            "cache_dtype": "auto",
            "enable_prefix_caching": str(config.enable_prefix_caching),
            "gpu_memory_utilization": str(config.gpu_memory_utilization),
            "num_gpu_blocks": str(self.model.scheduler.pool.num_blocks),
            "engine": self.labels["engine"],
        }
        family = GaugeMetricFamily(
            "vllm:cache_config_info", "Information of the LLMEngine CacheConfig", labels=list(info)
        )
        family.add_metric(list(info.values()), 1.0)
        return family


class ServerMetrics:
    """The server's registry; the engine's step listener feeds it, scrapes read it."""

    def __init__(self, model: SimulatedModel):
        self.registry = CollectorRegistry()
        self.labels = {"model_name": model.name, "engine": "0"}
        values = tuple(self.labels.values())

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, _LABELS, registry=self.registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            metric = Histogram(name, doc, _LABELS, buckets=buckets, registry=self.registry)
            return metric.labels(*values)

        token_buckets = tuple(one_two_five_buckets(model.profile.max_model_len))
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter(
            "vllm:generation_tokens", "Number of generation tokens processed."
        )
        self.request_success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*_LABELS, "finished_reason"],
            registry=self.registry,
        )
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
            _TTFT_BUCKETS_S,
        )  # fmt: skip
        self.itl = _TokenHistogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
            _ITL_BUCKETS_S, self.labels,
        )  # fmt: skip
        self.registry.register(self.itl)
        self.request_times = {
            phase: histogram(f"vllm:{name}_seconds", doc, _REQUEST_BUCKETS_S)
            for phase, name, doc in (
                ("e2e", "e2e_request_latency", "Histogram of e2e request latency in seconds."),
                ("queue", "request_queue_time", "Time spent in WAITING phase for request."),
                ("prefill", "request_prefill_time", "Time spent in PREFILL phase for request."),
                ("decode", "request_decode_time", "Time spent in DECODE phase for request."),
                ("inference", "request_inference_time", "Time spent in RUNNING phase."),
            )
        }
        self.request_prompt_tokens = histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", token_buckets
        )
        self.request_generation_tokens = histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.",
            token_buckets,
        )  # fmt: skip
        self.iteration_tokens = histogram(
            "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
            _ITERATION_BUCKETS,
        )  # fmt: skip
        self.step_duration = Histogram(
            "inferlab:step_duration_seconds",
            "Simulated duration of one engine step",
            buckets=_STEP_BUCKETS_S,
            registry=self.registry,
        )
        self.step_batch_size = Histogram(
            "inferlab:step_batch_size",
            "Sequences computed in one step",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LiveState(model, self.labels))
        model.step_listeners.append(self._on_step)

    def _on_step(self, step: Step) -> None:
        """Called after each step with the sequences that sampled a token in it."""
        prompt_tokens = computed = generated = 0
        for seq in step.sequences:
            times = seq.token_times_s
            if seq.generated == 1:  # its first token: vLLM counts the prompt then
                prompt_tokens += seq.prompt_tokens
                computed += seq.prompt_tokens - seq.num_cached_tokens
                self.ttft.observe(seq.first_token_s - seq.arrival_s)  # type: ignore[operator]
                generated += 1
            else:
                # a multi-step burst hands out several tokens at once: one gap since the
                # last burst, then gaps of 0 (multi_step.py); an ordinary step, one token.
                new = 1
                while step.num_steps > 1 and new < len(times) - 1 and times[-new - 1] == times[-1]:
                    new += 1  # the burst's tokens share its end time
                for index in range(len(times) - new, len(times)):
                    self.itl.observe(times[index] - times[index - 1])
                generated += new
            if seq.finished_s is not None:
                self._on_finished(seq)
        self.prompt_tokens.labels(**self.labels).inc(prompt_tokens)
        self.generation_tokens.labels(**self.labels).inc(generated)
        # vLLM observes, per step that sampled any token, the prompt tokens it computed (not
        # those the prefix cache gave) of requests that got their first token, plus the tokens
        # sampled: loggers.py `prompt_token_stats.computed + num_generation_tokens`, where
        # stats.py's PromptTokenStats has computed = total - cached. A step of partial chunks
        # only has no outputs and is not observed (async_llm.py output_handler:
        # `IterationStats() if (log_stats and num_outputs) else None`).
        if generated:
            self.iteration_tokens.observe(computed + generated)
        self.step_duration.observe(step.duration_s)
        self.step_batch_size.observe(step.batch_size)

    def _on_finished(self, seq: Sequence) -> None:
        assert seq.admitted_s is not None and seq.first_token_s is not None
        assert seq.finished_s is not None
        times = self.request_times
        times["e2e"].observe(seq.finished_s - seq.arrival_s)
        # vLLM's queue time starts in the engine core's queue, after the API server's work
        queued_s = seq.queued_s if seq.queued_s is not None else seq.arrival_s
        times["queue"].observe(seq.admitted_s - queued_s)
        times["prefill"].observe(seq.first_token_s - seq.admitted_s)
        times["decode"].observe(seq.finished_s - seq.first_token_s)
        times["inference"].observe(seq.finished_s - seq.admitted_s)
        self.request_prompt_tokens.observe(seq.prompt_tokens)
        self.request_generation_tokens.observe(seq.generated)

    def observe_choice(self, ttft_s: float, e2e_s: float, finish_reason: str) -> None:
        """The HTTP side's view of a finished choice. As in vLLM, the frontend counts finishes
        by reason; the latency histograms come from the engine's own timestamps above."""
        self.request_success.labels(**self.labels, finished_reason=finish_reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
