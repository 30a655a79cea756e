"""Do live measurements hold on a busy laptop? Lessons 05 and 07's live workloads, with and
without a CPU hog, against the engine's own account and against simulate().

    python benchmarks/live_drift.py                    # under a minute on two cores
    python benchmarks/live_drift.py --time-scale 0.1   # a scale of your own

By default the servers run at the time scale the lessons would run at on this machine (the
measured choice of `inferlab.lab.time_scale_choice()`, printed first).

For each workload it prints three throughputs in simulated (H100) time: what the client saw
(wall time divided by the time scale), what the engine's own account says, and what simulate()
predicts for the same requests sent at the same moments; then the drift between the first two,
which is what the notebooks' drift guard reports. "hog" runs the same with another process
keeping one core busy, as a learner's laptop often is.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os

from inferlab import get_profile, simulate
from inferlab.lab import time_scale_choice
from inferlab.lab.servers import start_model_server, start_proxy
from inferlab.load import Workload, drift_of, exponential, fixed, run_load


def _busy() -> None:
    while True:
        pass


def _throughputs(run, scale: float, profile) -> tuple[float, float, float]:
    ok = [r for r in run.records if r.ok]
    tokens = sum(r.output_tokens for r in ok)
    first = min(r.sent_s for r in ok)
    client_s = (max(r.done_s for r in ok) - first) / scale
    # the engine's account: each request from its arrival (its send, in simulated time) to
    # its last token, by the engine's own clock
    engine_s = max((r.sent_s - first) / scale + r.engine.e2e_latency_s for r in ok)
    arrivals = [((r.sent_s - first) / scale, r.prompt_tokens, r.output_tokens) for r in ok]
    simulated_s = max(s.finished_s for s in simulate(arrivals, profile))
    return tokens / client_s, tokens / engine_s, tokens / simulated_s


def lesson_07(server, time_scale: float) -> tuple[float, float, float, float]:
    workload = Workload(
        num_requests=256,
        prompt_tokens=fixed(512),
        output_tokens=exponential(128, 1024),
        seed=7,
    )
    run = asyncio.run(run_load(server.base_url, workload))
    drift = drift_of(run.records)
    return (*_throughputs(run, time_scale, get_profile("h100-llama3-8b")), drift.relative)


def lesson_05(proxy, time_scale: float) -> tuple[float, float, float, float]:
    workload = Workload(num_requests=32, prompt_tokens=fixed(8), output_tokens=fixed(64))
    run = asyncio.run(run_load(proxy.base_url, workload))
    client_s = max(r.done_s for r in run.records) - min(r.sent_s for r in run.records)
    rate = len(run.records) / (client_s / time_scale)
    return rate, float("nan"), float("nan"), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, help="default: the lessons' measured choice")
    time_scale = parser.parse_args().time_scale or time_scale_choice().time_scale
    print(f"time scale {time_scale:g}\n")
    print(f"{'':28}{'client':>10}{'engine':>10}{'simulate':>10}{'drift':>8}")
    for hog in (False, True):
        busy = multiprocessing.Process(target=_busy, daemon=True) if hog else None
        if busy:
            busy.start()
        try:
            with start_model_server(time_scale=time_scale) as server:
                asyncio.run(run_load(server.base_url, Workload(num_requests=8)))  # warm up
                c, e, s, d = lesson_07(server, time_scale)
                print(
                    f"{'07 Anyscale, ' + ('hog' if hog else 'quiet'):28}"
                    f"{c:10.0f}{e:10.0f}{s:10.0f}{d:+8.1%}  tokens/s"
                )
            slow = start_model_server(
                time_scale=time_scale, batching="static", max_concurrent_requests=1
            )
            with slow, start_proxy(slow.base_url, max_batch_size=8) as proxy:
                asyncio.run(run_load(proxy.base_url, Workload(num_requests=8)))
                c, *_ = lesson_05(proxy, time_scale)
                print(
                    f"{'05 burst via proxy, ' + ('hog' if hog else 'quiet'):28}{c:10.1f}"
                    f"{'':30}  req/s (H100 time)"
                )
        finally:
            if busy:
                busy.terminate()
    print(f"\nload average now: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
