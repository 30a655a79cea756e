"""load: what to send and when, and what it measured.

`workloads` describes requests (lengths, arrival times: Poisson, bursty, fixed); `senders` says
how one request is sent in each mode (sync, async, stream, jobs); `loadgen` sends a workload open
loop or closed loop and records each request; `metrics` turns the records into the serving
metrics of `vllm bench serve` (throughput, goodput, TTFT, TPOT, ITL, E2E percentiles); `clock`
converts between wall time and the model's ("H100") time, in one place.

May import: `engine`, `wire`, `jobs.client`; never a server.
"""

from .clock import REAL_TIME, ModelClock
from .drift import Drift, drift_of
from .loadgen import LoadRun, run_closed_loop, run_load, run_open_loop
from .metrics import SLO, Distribution, LittlesLaw, RequestResult, Summary, percentile, summarize
from .prometheus import parse_metrics, scrape_metrics
from .workloads import (
    Lengths,
    PlannedRequest,
    Workload,
    arrival_gaps,
    arrival_times,
    exponential,
    fixed,
    uniform,
)

__all__ = [
    "REAL_TIME",
    "SLO",
    "Distribution",
    "Drift",
    "Lengths",
    "LittlesLaw",
    "LoadRun",
    "ModelClock",
    "PlannedRequest",
    "RequestResult",
    "Summary",
    "Workload",
    "arrival_gaps",
    "arrival_times",
    "drift_of",
    "exponential",
    "fixed",
    "parse_metrics",
    "percentile",
    "run_closed_loop",
    "run_load",
    "run_open_loop",
    "scrape_metrics",
    "summarize",
    "uniform",
]
