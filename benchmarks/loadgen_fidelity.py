"""Does a live load run agree with the cost model? Three runs, measured against simulate().

    python benchmarks/loadgen_fidelity.py        # a few seconds on two cores

These were tests once; they compare wall-clock figures, which a busy machine can push past any
tolerance, so they live here and print their figures instead of asserting them:

1. one user, one request at a time: the p50 end-to-end latency against the model's prediction;
2. a burst of 16: mean latency and the whole span, against simulate() replaying the measured
   send times (sending each request costs the client about a millisecond);
3. an open loop at 30 req/s: Little's law, L = lambda x W, from sampled requests in flight.

The server runs in this process at time_scale 0.5, so a millisecond of Python is two simulated
milliseconds: the error column says how much this machine added.
"""

from __future__ import annotations

import asyncio

from inferlab import ServerThread, create_app, simulate
from inferlab.engine.profiles import H100_LLAMA3_8B
from inferlab.load import Workload, fixed, run_load

TIME_SCALE = 0.5


def _row(name: str, measured: float, predicted: float, unit: str = "ms") -> str:
    error = measured / predicted - 1
    return f"{name:38} {measured:10.1f} {predicted:10.1f} {unit:4} {error:+8.1%}"


def one_user(base_url: str) -> str:
    workload = Workload(num_requests=6, prompt_tokens=fixed(32), output_tokens=fixed(16))
    run = asyncio.run(run_load(base_url, workload, users=1))
    (predicted,) = simulate([(0.0, 32, 16)], H100_LLAMA3_8B)
    measured_ms = run.summary().e2e.p50 / TIME_SCALE * 1000
    return _row("one user: p50 e2e", measured_ms, predicted.finished_s * 1000)


def burst(base_url: str) -> list[str]:
    workload = Workload(num_requests=16, prompt_tokens=fixed(32), output_tokens=fixed(96))
    run = asyncio.run(run_load(base_url, workload))
    first_sent = min(r.sent_s for r in run.records)
    arrivals = [((r.sent_s - first_sent) / TIME_SCALE, 32, 96) for r in run.records]
    predicted = simulate(arrivals, H100_LLAMA3_8B)
    predicted_mean = sum(s.finished_s - s.arrival_s for s in predicted) / 16
    measured_mean = sum(r.e2e_latency_s for r in run.records) / 16 / TIME_SCALE
    span = (max(r.done_s for r in run.records) - first_sent) / TIME_SCALE
    return [
        _row("burst of 16: mean e2e", measured_mean * 1000, predicted_mean * 1000),
        _row("burst of 16: span", span * 1000, max(s.finished_s for s in predicted) * 1000),
    ]


def littles_law(base_url: str) -> str:
    workload = Workload(num_requests=40, prompt_tokens=fixed(16), output_tokens=fixed(16))
    run = asyncio.run(run_load(base_url, workload, request_rate=30.0, mode="stream"))
    law = run.summary().littles_law
    assert law is not None
    return _row(
        "open loop: requests in flight (L)", law.sampled_in_flight, law.predicted_in_flight, "reqs"
    )


def main() -> None:
    with ServerThread(create_app(time_scale=TIME_SCALE)) as server:
        rows = [one_user(server.base_url), *burst(server.base_url), littles_law(server.base_url)]
    print(f"{'':38} {'measured':>10} {'predicted':>10} {'':4} {'error':>8}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
